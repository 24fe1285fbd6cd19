"""``fastsel fid``: Fréchet Inception Distance between two image sets or saved statistics."""
from __future__ import annotations

import os

import click

from .. import data as D
from .. import features as Fe
from .. import fid as FID
from ..io import check_outputs, npz_names
from ._common import DEVICE, SEED, SEED_HELP, clean_warnings, color_channels, emit_json, handle_errors


def _stats(src, n, seed, batch_size, device, quiet, save, download=False):
    if os.path.isfile(src) and src.endswith((".npy", ".npz")):
        names = npz_names(src)  # by content: one line for a truncated, pickled or torch.save file
        if "mu" in names and "sigma" in names:
            return FID.load_stats(src)
    ds = D.load(src, n=n, seed=seed, download=download)
    images = color_channels(ds.images, src, quiet)
    feats = Fe.embed(images, Fe.get("inception", device), batch_size, quiet=quiet)
    s = FID.stats(feats)
    if save:
        FID.save_stats(save, s)
    return s


@click.command("fid")
@click.argument("a")
@click.argument("b")
@click.option("--n", "n", type=click.IntRange(min=2), default=None, help="Seeded subset of each image set.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=SEED_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", type=DEVICE, default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
@click.option("--save-stats", nargs=2, type=click.Path(dir_okay=False), default=None,
              help="Write the statistics of A and B (.npz with mu, sigma) for reuse.")
@click.option("--download", is_flag=True, help="Fetch a missing dataset from its official source (checksummed).")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@handle_errors
def fid(a, b, n, seed, batch_size, device, save_stats, download, as_json, quiet):
    """FID between A and B: each a dataset name, image folder, uint8 .npy/.npz of images, or a
    statistics .npz (mu, sigma) written by --save-stats. InceptionV3 pool3 (pytorch-fid weights).

    \b
    Example:
      fastsel fid mnist generated/ --n 10000
    """
    if save_stats:
        check_outputs(list(save_stats), [a, b])
    sa = _stats(a, n, seed, batch_size, device, quiet, save_stats[0] if save_stats else None, download)
    sb = _stats(b, n, seed, batch_size, device, quiet, save_stats[1] if save_stats else None, download)
    with clean_warnings():  # a singular covariance: one "warning:" line, not scipy's raw warnings
        value = FID.frechet(sa, sb, names=(a, b))
    if as_json:
        emit_json({"fid": value, "n_a": sa.n, "n_b": sb.n})
    else:
        click.echo(f"FID {value:.4f}  (A: {sa.n} images, B: {sb.n} images)")
