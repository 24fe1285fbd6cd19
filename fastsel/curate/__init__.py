"""``fastsel curate``: a diverse subset of an image collection, in the collection's own form.

Sources (:func:`open_source`): a folder of images (recursive; every format Pillow reads: PNG, JPEG,
WebP, BMP, GIF, TIFF, PGM/PPM ...; EXIF orientation applied), a uint8 ``.npy`` / ``.npz``, a Hugging
Face dataset saved with ``save_to_disk``, a parquet file with an image column, WebDataset tar shards
(a brace pattern, one .tar, a folder of .tar files; :mod:`fastsel.wds`), or a hub dataset name
(``datasets.load_dataset``; online, Hugging Face's conventions: the hub cache, ``HF_HUB_OFFLINE``),
or a dataset registered with :mod:`fastsel.data` (by name, or a file kind of its own; what ``fastsel
loop`` reads).
Under torchrun the ranks embed and select together (:func:`curate`, docs/curating.md).
Images are brought to one shape: ``image_size`` when given, else the first image's size; grayscale
when the first image is grayscale, else RGB.

Embedding (:func:`embed_source`) is written in shards under ``DIR/embeddings/`` beside a manifest
(source fingerprint, extractor, shape, row count): a killed run resumes with the first missing
shard, and a run whose manifest differs is refused rather than mixed. Unreadable images are listed
and skipped -- the rows of ``DIR/embeddings.npy`` are the readable ones, in source order, and
``DIR/rows.npy`` maps them back to the source's indices.

Precomputed features (``embeddings``) are read as ``fastsel select`` reads them (:func:`fastsel.io.load_features`,
:func:`fastsel.ops._inputs.as_tensor`): float64 and integer rows are kept exact, never cast to float32.

One run per output folder: an exclusive lock on ``DIR/.fastsel-curate.lock`` (a second run is refused),
under which an earlier killed run's temporary files are removed.

Then :func:`curate` selects with any registered selector (optionally after a SemDeDup pass), and
writes ``selected.csv`` (rank, embedding row, source index, id, distance to the earlier picks),
the subset (links or copies for a folder; ``save_to_disk`` for a dataset; a parquet / .npy
otherwise) and ``report.md`` with coverage, entropy against a random subset of the same size and two
image grids.

The package, one job a module: ``sources`` (the collections read, :func:`open_source`), ``embed``
(shards, one image shape), ``output`` (the output folder's safety and the files written beside the
subset), ``pool`` (the features selection ran on: coverage, pick distances, the memory share),
``run`` (one process's steps: features, selection, writing), ``ranks`` (the same under torchrun) and
``report`` (report.md and its grids); :func:`curate` here runs them.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Optional

from .. import _dist
from ..errors import FastselError, UsageProblem
from ..io import save_json
from ..selectors import check_options, check_start_applies
from .output import _check_inputs_kept, owned_out
from .ranks import _curate_ranks
from .run import _check_applies, _curate_one, _peak_rss_mib
from .sources import _quiet_datasets, open_source

# the names this module had before it became a package (docs, tests and users import them from here)
from ..data.folder import image_extensions  # noqa: E402,F401
from .embed import GRAY_MODES, MAX_SIDE, embed_source, target_shape  # noqa: E402,F401
from .output import LOCK, OUT_MARK, OUTPUTS, SUBSET_MARK, prepare_out  # noqa: E402,F401
from .pool import coverage, coverage_of, memory_limit, ops_nn_first, pick_distances  # noqa: E402,F401
from .report import _g  # noqa: E402,F401 -- the CLI's summary line formats with it
from .sources import (ArraySource, DatasetSource, FolderSource, HFSource, ParquetSource, Source,  # noqa: E402,F401
                      WebDatasetSource)


def curate(source: str, n: int, out_dir: str, *, features: str = "dinov2-s", embeddings: Optional[str] = None,
           key: Optional[str] = None, method: str = "greedy", seed: int = 0, start: Optional[int] = None,
           column: Optional[str] = None, split: str = "train", image_size: Optional[int] = None, copy: bool = False,
           dedup: Optional[float] = None, batch_size: int = 64, shard_rows: int = 4096, device=None,
           quiet: bool = False, log: Callable = print, grid: int = 64, options: Optional[dict] = None) -> dict:
    """Pick a diverse n-image subset of a collection and write it in the collection's own form
    (what ``fastsel curate`` runs; the module docstring describes the sources and the files).

    Args:
        source: a folder of images, a uint8 .npy/.npz, a Hugging Face dataset folder, a .parquet with an
            image column, WebDataset shards, a hub dataset name (online), or a dataset registered with
            :mod:`fastsel.data`.
        n: the subset's size.
        out_dir: the output folder (created; a rerun resumes the embedding in it; never the source; one
            run at a time).
        features: the extractor (:func:`fastsel.features.get`) when ``embeddings`` is not given.
        embeddings: a precomputed (rows, dim) .npy or .npz, one row per source row in source order, read
            as ``fastsel select`` reads its input (its own dtype: float64 and integers stay exact).
        key: the array of an ``embeddings`` .npz that holds several.
        method: a registered selector (:func:`fastsel.select`).
        seed: the selector's seed and the random baseline's.
        start: the first pick, a source index (default: drawn from ``seed``).
        column: the image column of a parquet file or dataset (default: its Image column).
        split: the split of a Hugging Face dataset.
        image_size: resize every image to this side (default: the first image's size, at most 512).
        copy: folder sources: copy the selected files (default: symbolic links).
        dedup: run SemDeDup first with this cosine-distance eps > 0 (:func:`fastsel.clusters.semdedup`:
            rows closer than eps to an earlier row of their cluster go; 1e-6 removes exact duplicates).
        batch_size: images per embedding batch.
        shard_rows: rows per embedding shard (the unit a killed run resumes from).
        device: where the extractor runs (default: cuda when available).
        quiet: no progress bars (datasets' own included).
        log: called with each note and warning line.
        grid: how many of the first picks the report's image grid shows.
        options: the method's own options (:class:`fastsel.selectors.Option`, e.g. ``{"knn": 16}`` for
            facility), passed to it as :func:`fastsel.select` does; recorded in curate.json when given.

    Returns:
        The summary written to ``out_dir/curate.json``: rows read and unreadable, the embedding's and
        the selection's times, coverage (max / mean distance to the subset) and entropy beside a
        seeded random subset of the same size (None, with ``entropy_note`` saying why, where exact
        duplicates make it -inf), and what was written.

    Raises:
        fastsel.io.DataError: an unreadable source or embeddings file, or one whose row count differs;
            an ``out_dir`` another run holds.
        fastsel.errors.UsageProblem: an option that does not apply to the source (``column``, ``copy``,
            ``key``), or an input that is one of the files this run writes.
        fastsel.errors.FastselError: n larger than the source's rows (before any work) or the readable
            ones, a start row not available, a start with a method that has no first pick, an option the
            method does not declare, or dedup <= 0.
    """
    t_all = time.perf_counter()
    check_start_applies(method, start)
    options = dict(options or {})
    check_options(method, options)
    if dedup is not None and not dedup > 0:
        raise FastselError(f"--dedup {dedup} removes nothing: rows closer than EPS (cosine distance) to an earlier "
                           "row of their cluster go; for exact duplicates use a small EPS such as 1e-6")
    if key is not None and embeddings is None:
        raise UsageProblem("--key names an array of the --embeddings .npz file, and no --embeddings was given")
    kw = dict(features=features, embeddings=embeddings, key=key, method=method, seed=seed, start=start,
              image_size=image_size, copy=copy, dedup=dedup, batch_size=batch_size, shard_rows=shard_rows,
              device=device, quiet=quiet, log=log, grid=grid, t_all=t_all, options=options)
    if _dist.launched():
        return _curate_ranks(source, n, out_dir, column=column, split=split, **kw)
    with contextlib.ExitStack() as held:
        held.enter_context(_quiet_datasets(quiet))
        src = open_source(source, column, split)
        _check_applies(src, n, start, column, copy)
        _check_inputs_kept(out_dir, embeddings)
        held.enter_context(owned_out(out_dir, src))  # one run per folder, from here to the end
        res = _curate_one(src, n, out_dir, **kw)
        res["peak_rss_mib"] = [_peak_rss_mib()]
        save_json(os.path.join(out_dir, "curate.json"), res)
        return res
