"""One run's steps in one process: read or embed the features, select, write (:func:`curate`, the
command's entry, is here; under torchrun it hands over to :mod:`fastsel.curate.ranks`)."""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

import numpy as np
import torch

from .. import streaming
from ..clusters import semdedup
from ..errors import DataError, FastselError, UsageProblem
from ..io import load_features, save_json, save_npy, save_text
from ..selectors import select
from .embed import embed_source, target_shape
from .output import _replace_subset, _write_pool_files, _write_selected, _write_unreadable
from .pool import _LocalPool, _MappedPool, _pick_distances, _size, _start_position, memory_limit, ops_nn_first
from .report import _entropies, _report_md, _report_pngs
from .sources import HFSource, ParquetSource, Source
from ..ops._inputs import as_tensor


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB; Linux reports KiB, macOS bytes)."""
    import resource  # optional: Unix only (Windows has no resource module)
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (2**20 if sys.platform == "darwin" else 1024), 1)


def _curate_one(src, n, out_dir, *, features, embeddings, key, method, seed, start, image_size, copy, dedup,
                batch_size, shard_rows, device, quiet, log, grid, t_all, options, emb_info=None, ranks=1,
                note_resume=True):
    """One process holds the pool: embed (or read) it, select, write (the caller holds the folder's lock)."""
    if embeddings is None:
        _, rows, bad, info = embed_source(src, features, out_dir, image_size=image_size, log=log,
                                          batch_size=batch_size, shard_rows=shard_rows, device=device, quiet=quiet,
                                          note_resume=note_resume, collect=False)
        # the in-memory path holds the features about 3 times at its peak (the shards' list and their
        # concatenation, the tensor the selector takes): compare 3 copies with the share
        need, limit = 3 * len(rows) * info["dim"] * 4, memory_limit()
        if need > limit:
            return _curate_mapped(src, n, out_dir, rows, bad, emb_info or info, need, limit, method=method,
                                  seed=seed, start=start, dedup=dedup, shard_rows=shard_rows, features=features,
                                  copy=copy, grid=grid, log=log, t_all=t_all, ranks=ranks)
        emb_info = emb_info or info  # this run's embedding (the second pass below only reads the shards)
    feats, x, rows, bad, info = _features_of(src, out_dir, embeddings, key, features, image_size, log,
                                             batch_size=batch_size, shard_rows=shard_rows, device=device,
                                             quiet=True, note_resume=False)
    save_npy(os.path.join(out_dir, "embeddings.npy"), feats)
    save_npy(os.path.join(out_dir, "rows.npy"), rows)
    _write_unreadable(out_dir, bad, log)
    cand, start, dedup_info = _candidates(x, rows, len(src), n, start, dedup, seed, log)
    t0 = time.perf_counter()
    idx = cand[select(x[cand], n, method, seed=seed, start=start, **options)]
    t_sel = time.perf_counter() - t0
    return _finish(src, _LocalPool(x, rows), len(cand), lambda p: cand[p], idx, out_dir, n=n, method=method,
                   seed=seed, features=features, embeddings=embeddings, dim=int(feats.shape[1]), unreadable=len(bad),
                   dedup=dedup, dedup_info=dedup_info, emb_info=emb_info or info, t_sel=t_sel, copy=copy,
                   grid=grid, log=log, t_all=t_all, ranks=ranks, options=options)


def _curate_mapped(src, n, out_dir, rows, bad, info, need, limit, *, method, seed, start, dedup, shard_rows, features,
                   copy, grid, log, t_all, ranks) -> dict:
    """A pool larger than the memory share: embeddings.npy written shard by shard, then memory-mapped;
    greedy streams it (fastsel.streaming.greedy: the same picks as in memory) and the report reads it
    in chunks. Other selectors and --dedup need the pool in memory: refused, saying what to do."""
    gib = (f"{_size(need)} (the features, about 3 copies at the peak) > the {_size(limit)} curate holds in memory "
           "(FASTSEL_CURATE_MEMORY)")
    if method != "greedy" or dedup is not None:
        what = "--dedup" if dedup is not None else f"--method {method}"
        raise FastselError(f"{gib}: {what} needs the pool in memory; use --method greedy (streams from disk), run "
                           "under torchrun on more machines, or raise FASTSEL_CURATE_MEMORY (bytes)")
    M = len(rows)
    if n > M:
        raise FastselError(f"--n {n} is more than the {M} readable rows")
    log(f"note: {gib}: greedy streams a memory-mapped {os.path.join(out_dir, 'embeddings.npy')}")
    _write_pool_files(out_dir, src, shard_rows, M, info["dim"], bad, log)
    mm = np.load(os.path.join(out_dir, "embeddings.npy"), mmap_mode="r")
    pos = None if start is None else _start_position(rows, start, 0)
    if start is not None and pos is None:
        raise FastselError(f"--start {start}: that source row is {'not readable' if start < len(src) else 'out of range'}")
    t0 = time.perf_counter()
    idx = streaming.greedy(mm, n, pos, seed=seed).indices.cpu()
    t_sel = time.perf_counter() - t0
    return _finish(src, _MappedPool(mm, rows), M, lambda p: p, idx, out_dir, n=n, method=method, seed=seed,
                   features=features, embeddings=None, dim=info["dim"], unreadable=len(bad), dedup=None,
                   dedup_info=None, emb_info={**info, "mapped": True}, t_sel=t_sel, copy=copy, grid=grid, log=log,
                   t_all=t_all, ranks=ranks)


def _finish(src, pool, n_cand, cand_at, idx, out_dir, *, n, method, seed, features, embeddings, dim, unreadable,
            dedup, dedup_info, emb_info, t_sel, copy, grid, log, t_all, ranks, options=None) -> dict:
    """selected.csv, the subset, the report: the same for one process and for sharded ranks (every
    rank calls it; only rank 0 writes). ``cand_at(positions)``: pool rows of candidate positions."""
    # every collective first (all ranks), then rank 0's writing: a write that fails there leaves no rank
    # waiting in a collective (the caller's step tells the others)
    sub = pool.take(idx)
    src_idx = pool.source_index(idx)
    # the report: coverage and entropy of the selection against a seeded random subset of the same size
    cov, dsub = pool.coverage(sub)
    g = torch.Generator().manual_seed(int(seed) + 7)
    ridx = cand_at(torch.randperm(n_cand, generator=g)[:n])
    rsub = pool.take(ridx)
    rcov, _ = pool.coverage(rsub)
    order, dord = pool.nearest_rejected(idx, dsub, 12)
    near = ops_nn_first(pool.take(order), sub) if len(order) else torch.zeros(0, dtype=torch.int64)
    rej_src = pool.source_index(order)
    if not pool.main:
        return {}
    _write_selected(out_dir, src, idx, src_idx, _pick_distances(sub))
    what = _replace_subset(out_dir, lambda d: src.write_subset(src_idx, d, copy=copy))
    ent, rent, dup_note = _entropies(sub, rsub, dedup, log)
    k = min(grid, len(idx))
    res = {"source": src.spec, "kind": src.kind, "rows": len(src), "readable": pool.M, "unreadable": unreadable,
           "features": features if embeddings is None else f"from {embeddings}", "dim": dim,
           "method": method, **({"options": dict(options)} if options else {}), "n": n, "seed": seed,
           "dedup": dedup_info, "embedding": emb_info,
           "select_seconds": t_sel, "coverage": cov, "coverage_random": rcov, "entropy": ent,
           "entropy_random": rent, "entropy_note": dup_note, "subset": what, "ranks": ranks}
    pairs = [(int(r), float(dd), int(src_idx[j]), int(j)) for r, dd, j in zip(rej_src.tolist(), dord.tolist(),
                                                                          near.tolist())]
    pngs = _report_pngs(src, src_idx[:k], pairs, emb_info["shape"], out_dir, log)
    res["seconds"] = time.perf_counter() - t_all
    save_json(os.path.join(out_dir, "curate.json"), res)
    save_text(os.path.join(out_dir, "report.md"), _report_md(res, pngs))
    return res


_KIND_WORDS = {"folder": "a folder of images", "array": "an array of images", "webdataset": "WebDataset tar shards",
               "dataset": "a dataset registered with fastsel.data"}


def _check_applies(src: Source, n: int, start: Optional[int], column: Optional[str], copy: bool) -> None:
    """Before any work: an option that does not apply to this source, and n or start beyond its rows."""
    if column is not None and not isinstance(src, (ParquetSource, HFSource)):
        raise UsageProblem(f"--column applies to a parquet file or a Hugging Face dataset, not to {src.spec} "
                           f"({_KIND_WORDS.get(src.kind, src.kind)})")
    if copy and src.kind != "folder":
        raise UsageProblem(f"--copy applies to a folder of images (whose files are linked or copied); the subset of "
                           f"{src.spec} is written as a new file")
    if n > len(src):
        raise FastselError(f"--n {n} is more than the {len(src)} rows of {src.spec}")
    if start is not None and start >= len(src):
        raise FastselError(f"--start {start}: that source row is out of range ({src.spec} has {len(src)} rows)")


# the files a run writes in --out (besides embeddings/ and subset/, which are folders of its own)


def _read_embeddings(path: str, key: Optional[str], src: Source) -> np.ndarray:
    """``--embeddings`` as ``fastsel select`` reads its input (:func:`fastsel.io.load_features`: a .npy,
    or a .npz's ``key``), in the file's own dtype: float64 and integer rows are never rounded."""
    feats = np.asarray(load_features(path, key, mmap=False))
    if len(feats) != len(src):
        raise DataError(f"--embeddings {path}: {len(feats)} rows, but the source has {len(src)}")
    bad_rows = np.nonzero(~np.isfinite(feats).all(axis=1))[0]
    if len(bad_rows):
        raise DataError(f"--embeddings {path}: {len(bad_rows)} row(s) hold NaN or Inf values (first: row "
                        f"{int(bad_rows[0])})")
    return feats


def _features_of(src, out_dir, embeddings, key, features, image_size, log, **embed_kw) -> tuple:
    """(features as given or embedded, the same as the selectors take them -- as_tensor, as
    ``fastsel select`` does --, their source rows, the unreadable rows, the embedding's info)."""
    if embeddings is not None:
        feats = _read_embeddings(embeddings, key, src)
        rows, bad = np.arange(len(src), dtype=np.int64), []
        info = {"seconds": 0.0, "load_seconds": 0.0, "embedded": 0, "img_per_s": None,
                "shape": target_shape(src, image_size), "from": embeddings}
    else:
        feats, rows, bad, info = embed_source(src, features, out_dir, image_size=image_size, log=log, **embed_kw)
    return feats, as_tensor(feats, f"--embeddings {embeddings}" if embeddings else "features"), rows, bad, info


def _candidates(x, rows, n_src, n, start, dedup, seed, log) -> tuple:
    """(the rows selection may pick: all, or SemDeDup's survivors; ``start`` -- a source index -- as a
    position among them; the dedup info)."""
    M_ = len(x)
    cand, info = torch.arange(M_), None
    if dedup is not None:
        keep, info = semdedup(x, eps=dedup, seed=seed)
        cand = torch.sort(keep).values
        info = {**info, "kept": int(len(cand)), "removed": int(M_ - len(cand))}
        log(f"dedup (SemDeDup, eps {dedup}): {M_ - len(cand)} near-duplicates removed, {len(cand)} rows left")
    if n > len(cand):
        raise FastselError(f"--n {n} is more than the {len(cand)} readable{' deduplicated' if dedup else ''} rows")
    if start is not None:
        e = int(np.searchsorted(rows, start))
        pos = torch.nonzero(cand == e)[:, 0] if e < len(rows) and int(rows[e]) == start else torch.zeros(0)
        if len(pos) == 0:
            why = "not readable" if start < n_src else "out of range"
            raise FastselError(f"--start {start}: that source row is {why}"
                               f"{' or was removed by --dedup' if dedup is not None else ''}")
        start = int(pos[0])
    return cand, start, info
