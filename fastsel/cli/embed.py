"""``fastsel embed``: features of a dataset, written as .npy for ``fastsel select``."""
from __future__ import annotations

import os
import time

import click
import numpy as np

from ..io import atomic_path, check_outputs, save_json, save_npy
from .. import features
from ._common import (DEVICE, SEED, SEED_HELP, ImageSide, RegistryChoice, color_channels, emit_json, handle_errors,
                      one_line)


@click.command("embed")
@click.argument("data")
@click.option("--features", "feat", default="dinov2-s", show_default=True,
              type=RegistryChoice(features.names))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npy (float32, N x d).")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="A seeded uniform subset of this many images (paper: cifar10 32768, mnist 12000, ffhq32 8192).")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help=SEED_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--device", type=DEVICE, default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
@click.option("--size", type=ImageSide(min=1), default=None, help="Resize folder images to SIZE x SIZE.")
@click.option("--download", is_flag=True, help="Fetch a missing dataset from its official source.")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@handle_errors
def embed(data, feat, out, n, split, seed, batch_size, device, size, download, as_json, quiet):
    """Embed DATA (cifar10, mnist, fashion-mnist, ffhq32, an image folder, a uint8 .npy/.npz)
    with a feature extractor; writes OUT, OUT.json (provenance) and OUT's labels (.labels.npy).

    \b
    Example (offline):
      fastsel embed mnist --features inception --n 12000 --out mnist.npy
      fastsel select --in mnist.npy --n 4096
    """
    from .. import data as D
    from .. import features as Fe
    stem = out[:-4] if out.endswith(".npy") else out
    check_outputs([out, stem + ".labels.npy", out + ".json"], [data])
    ds = D.load(data, split=split, n=n, seed=seed, download=download, size=size)
    images = color_channels(ds.images, data, quiet or as_json)
    ext = Fe.get(feat, device)
    t0 = time.perf_counter()
    dim = ext(images[:1]).shape[1]
    with atomic_path(out) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(ds.images), dim))
        Fe.embed(images, ext, batch_size, out=mm, quiet=quiet)
        mm.flush()
        del mm
    seconds = time.perf_counter() - t0
    save_npy(stem + ".labels.npy", ds.labels)
    info = {"extractor": feat, "source": ds.source, "data": data, "split": split, "count": len(ds.images),
            "dim": dim, "dtype": "float32", "seconds": seconds, "seed": seed, "subset": n,
            "image_shape": list(ds.images.shape[1:]), "device": str(ext.device)}
    save_json(out + ".json", info)
    if as_json:
        emit_json(dict(info, out=os.path.abspath(out)))
    else:
        click.echo(f"embedded {len(ds.images)} images of {data} with {feat} ({dim}-d) in {seconds:.1f} s -> {one_line(out)}")
