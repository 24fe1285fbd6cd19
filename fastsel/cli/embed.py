"""``fastsel embed``: features of a dataset, written as .npy for ``fastsel select``."""
from __future__ import annotations

import contextlib
import os
import time

import click
import numpy as np

from .. import data as D
from .. import features
from .. import features as Fe
from ..io import (DataError, atomic_path, check_outputs, folder_lock, npy_header, read_json_object, save_json,
                  save_npy)
from ._common import (DEVICE, SEED, SEED_HELP, ImageSide, RegistryChoice, color_channels, emit_json, handle_errors,
                      one_line)


PROVENANCE = ("extractor", "source", "data", "count", "dim")  # keys of the OUT.json embed writes (written last)


def _provenance(path: str):
    """The provenance record an earlier ``fastsel embed`` wrote at ``path`` (OUT.json), else None."""
    d = read_json_object(path)
    return d if d is not None and all(k in d for k in PROVENANCE) else None


def check_ours(out: str, labels: str, sidecar: str) -> None:
    """Before any work: OUT, its labels and OUT.json are replaced only as the set an earlier embed wrote
    (OUT.json, written last, holds its provenance record, and the labels are its (count,) integer
    array); an existing file of any other origin -- the user's own labels or notes -- is refused in one
    line and nothing is written."""
    rec = _provenance(sidecar)
    if rec is None:
        there = [p for p in (out, labels, sidecar) if os.path.lexists(p)]
        why = f"no provenance record of fastsel embed in {one_line(sidecar)}"
    else:
        h = npy_header(labels) if os.path.lexists(labels) else None
        ok = not os.path.lexists(labels) or (h is not None and h[0] == (rec["count"],) and h[1].kind in "iu")
        there = [] if ok else [labels]
        why = f"not the ({rec['count']},) integer labels {one_line(sidecar)} records"
    if there:
        raise DataError(f"{', '.join(map(one_line, there))}: already there and not an embedding fastsel embed "
                        f"wrote ({why}): nothing was written -- move {'it' if len(there) == 1 else 'them'} away "
                        "or choose another --out")


@click.command("embed")
@click.argument("data")
@click.option("--features", "feat", default="dinov2-s", show_default=True,
              type=RegistryChoice(features.names))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output .npy (float32, N x d); OUT's labels and OUT.json are written beside it. Existing files "
                   "there are replaced only as an earlier embedding (OUT.json its provenance); any other file is "
                   "refused, never overwritten.")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="A seeded uniform subset of this many images (paper: cifar10 32768, mnist 12000, ffhq32 8192).")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="A named dataset's split (a path refuses it).")
@click.option("--seed", type=SEED, default=0, show_default=True, help=SEED_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--device", type=DEVICE, default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
@click.option("--size", type=ImageSide(min=1), default=None, help="Resize folder images to SIZE x SIZE (an array of images refuses it).")
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
    given = click.get_current_context().get_parameter_source
    if given("split") == click.core.ParameterSource.COMMANDLINE and D.source(data) is None and os.path.exists(data):
        raise click.UsageError(f"--split chooses a named dataset's split (cifar10, mnist ...); {one_line(data)} is a "
                               "path, whose images are all read")
    if size is not None and os.path.isfile(data):
        raise click.UsageError(f"--size resizes an image folder's files; {one_line(data)} is an array of images "
                               "(resize them before saving it)")
    stem = out[:-4] if out.endswith(".npy") else out
    check_outputs([out, stem + ".labels.npy", out + ".json"], [data])
    # one embed at a time writes OUT's set (OUT, its labels, OUT.json): a second gets one line, never a mix
    lock = folder_lock(out + ".lock", f"--out {one_line(out)} is being written by another fastsel embed (PID {{pid}}); "
                       "wait for it or choose another --out")
    try:
        _embed_locked(data, feat, out, stem, n, split, seed, batch_size, device, size, download, as_json, quiet)
    finally:
        if lock is not None:
            lock.close()
            with contextlib.suppress(OSError):
                os.unlink(out + ".lock")


def _embed_locked(data, feat, out, stem, n, split, seed, batch_size, device, size, download, as_json, quiet):
    check_ours(out, stem + ".labels.npy", out + ".json")  # under the lock: what the last writer left
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
