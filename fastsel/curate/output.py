"""The output folder: one run at a time (a lock), never a folder of other files or the source's own, the
subset replaced whole, and the files a run writes beside it (selected.csv, unreadable.txt, the pool files)."""
from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import DataError, UsageProblem
from ..io import atomic_path, folder_lock, same_file, save_text
from .embed import _read_shard
from .sources import FolderSource, Source, WebDatasetSource


SUBSET_MARK = ".fastsel-subset"
OUT_MARK = ".fastsel-curate"  # in --out: a folder this command made (or took over while empty)
LOCK = ".fastsel-curate.lock"  # in --out: held (flock) by the run writing there


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def prepare_out(out_dir: str, src: Source):
    """Check ``out_dir`` is ours (or new or empty), create it and lock it; returns the open lock file
    (the lock lasts until it is closed; None where there is no fcntl) -- :func:`owned_out` closes it."""
    out = os.path.realpath(out_dir)
    if isinstance(src, WebDatasetSource) and os.path.isdir(src.spec) and _inside(out, os.path.realpath(src.spec)):
        raise DataError(f"--out {out_dir} is inside the folder of shards {src.spec}: its subset shards would be read as "
                        "source shards on the next run; choose a folder outside it")
    if isinstance(src, FolderSource) and any(_inside(out, d) for d in [os.path.realpath(src.root), *src.real_dirs]):
        raise DataError(f"--out {out_dir} is inside the source folder {src.spec} (or a folder linked from it): its "
                        "files would be read as images on the next run; choose a folder outside it")
    if os.path.exists(src.spec):
        real = os.path.realpath(src.spec)
        if _inside(real, out):  # e.g. curating OUT/subset into OUT: the new subset would replace its own source
            raise DataError(f"the source {src.spec} lies inside --out {out_dir}, whose files this run rewrites; "
                            "choose another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"--out {out_dir} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not any(
            os.path.exists(os.path.join(out, f)) for f in (OUT_MARK, LOCK, "curate.json",
                                                            os.path.join("embeddings", "manifest.json"))):
        raise DataError(f"--out {out_dir} is a folder with other files in it (not an earlier fastsel curate "
                        "output): choose a new or empty folder")
    _check_subset_ours(out_dir)  # before anything is written, not after
    os.makedirs(out, exist_ok=True)
    lock = _lock(out_dir)
    try:
        open(os.path.join(out, OUT_MARK), "a").close()  # ours from now on: a run that fails later can be rerun
        _drop_temps(out)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    return lock


@contextlib.contextmanager
def owned_out(out_dir: str, src: Source):
    """:func:`prepare_out`, its lock held until the block ends."""
    lock = prepare_out(out_dir, src)
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


def _lock(out_dir: str):
    """curate's lock on ``out_dir/LOCK`` (fastsel.io.folder_lock: the loop takes the same kind)."""
    return folder_lock(os.path.join(out_dir, LOCK), f"--out {out_dir} is in use by another fastsel process (PID {{pid}}); "
                       "wait for it or choose another --out")


_TEMP = re.compile(r"\.fs-[a-z0-9_]+\.tmp")  # io.atomic_path's temporary files
_SUBSET_TEMP = re.compile(r"\.subset\.(tmp|old)[0-9]+")  # _replace_subset's folders


def _drop_temps(out: str) -> None:
    """Remove what a killed run left in our folder (the caller holds its lock): atomic_path's temporary
    files in it and in its embeddings/, and _replace_subset's half-built or old subset folders."""
    for d in (out, os.path.join(out, "embeddings")):
        if os.path.islink(d) or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.islink(p):
                continue
            if _TEMP.fullmatch(name) and os.path.isfile(p):
                os.unlink(p)
            elif d == out and _SUBSET_TEMP.fullmatch(name) and os.path.isdir(p):
                shutil.rmtree(p)


def _subset_files(folder: str) -> list:
    """Every file (or link) under ``folder``, relative, sorted; the mark itself left out."""
    out = []
    for dirpath, _, names in os.walk(folder):
        out += [os.path.relpath(os.path.join(dirpath, n), folder) for n in names]
    return sorted(f for f in out if f != SUBSET_MARK)


def _check_subset_ours(out_dir: str) -> None:
    """Refuse an ``out_dir/subset`` that fastsel curate did not write, or one a user has added files to
    since (its mark lists what curate wrote): it is never replaced then."""
    dest = os.path.join(out_dir, "subset")
    mark = os.path.join(dest, SUBSET_MARK)
    if os.path.lexists(dest) and not os.path.exists(mark):
        raise DataError(f"{dest} exists and was not written by fastsel curate: move it away first")
    if os.path.isdir(dest):
        with open(mark, encoding="utf-8", errors="surrogateescape") as f:
            listed = set(f.read().splitlines())
        extra = [p for p in _subset_files(dest) if p not in listed] if listed else []
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            raise DataError(f"{dest} holds files fastsel curate did not write ({shown}): move them away first "
                            "(the subset is replaced whole on a rerun)")


def _replace_subset(out_dir: str, build: Callable[[str], str]) -> str:
    """Build the subset in a fresh folder, then swap it in for the previous one (ours only)."""
    dest = os.path.join(out_dir, "subset")
    _check_subset_ours(out_dir)
    tmp = os.path.join(out_dir, f".subset.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        what = build(tmp)
        with open(os.path.join(tmp, SUBSET_MARK), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("".join(p + "\n" for p in _subset_files(tmp)))  # what curate wrote: checked on a rerun
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.lexists(dest):
        old = os.path.join(out_dir, f".subset.old{os.getpid()}")
        os.rename(dest, old)
    os.rename(tmp, dest)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return what.replace(tmp, dest)


def _write_pool_files(out_dir: str, src: Source, shard_rows: int, M: int, d: int, bad: list, log: Callable) -> None:
    """Rank 0: embeddings.npy and rows.npy streamed from the embedding shards one shard at a time (the
    files one process writes, byte for byte, never the pool in memory), and unreadable.txt."""
    sdir = os.path.join(out_dir, "embeddings")
    with atomic_path(os.path.join(out_dir, "embeddings.npy")) as tmp_e, \
            atomic_path(os.path.join(out_dir, "rows.npy")) as tmp_r:
        fe = np.lib.format.open_memmap(tmp_e, mode="w+", dtype=np.float32, shape=(M, d))
        fr = np.lib.format.open_memmap(tmp_r, mode="w+", dtype=np.int64, shape=(M,))
        at = 0
        for s in range(0, len(src), shard_rows):
            z = _read_shard(os.path.join(sdir, f"shard_{s // shard_rows:06d}.npz"))
            m = len(z["rows"])
            if m:
                fe[at:at + m] = z["features"]
                fr[at:at + m] = z["rows"]
            at += m
        fe.flush()
        fr.flush()
        del fe, fr
    _write_unreadable(out_dir, sorted(bad), log)


OUTPUTS = ("embeddings.npy", "rows.npy", "selected.csv", "unreadable.txt", "curate.json", "report.md",
           "first_picks.png", "redundant.png", OUT_MARK, LOCK)


def _check_inputs_kept(out_dir: str, embeddings: Optional[str]) -> None:
    """An input is never one of the files this run writes (``--embeddings OUT/embeddings.npy``, an
    earlier run's output, would be replaced by this run's copy of it)."""
    if embeddings is None:
        return
    mine = [os.path.join(out_dir, f) for f in OUTPUTS]
    hit = next((p for p in mine if same_file(embeddings, p)), None)
    if hit is None and _inside(os.path.realpath(embeddings), os.path.realpath(os.path.join(out_dir, "subset"))):
        hit = os.path.join(out_dir, "subset")
    if hit is not None:
        raise UsageProblem(f"--embeddings {embeddings} is {hit}, which this run rewrites: copy it out of --out "
                           "first, or choose another --out")


def _write_unreadable(out_dir: str, bad: list, log: Callable) -> None:
    if not bad:
        _drop_stale(out_dir, "unreadable.txt")  # an earlier run's list, not this one's
        return
    save_text(os.path.join(out_dir, "unreadable.txt"), "".join(f"{i}\t{p}\t{w}\n" for i, p, w in bad))
    log(f"warning: {len(bad)} unreadable image(s) skipped, listed in {os.path.join(out_dir, 'unreadable.txt')}")


def _write_selected(out_dir: str, src: Source, idx: torch.Tensor, src_idx: np.ndarray, dist: np.ndarray) -> None:
    with atomic_path(os.path.join(out_dir, "selected.csv")) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:  # names as on disk
            w = csv.writer(f)
            w.writerow(["rank", "row", "source_index", "id", "distance_at_pick", *src.columns()])
            for r, (e, si, dd) in enumerate(zip(idx.tolist(), src_idx.tolist(), dist)):
                w.writerow([r, e, int(si), src.ids[int(si)], f"{dd:.6g}", *src.column_values(int(si))])


def _drop_stale(out_dir: str, *names: str) -> None:
    """Remove files an earlier run wrote in ``out_dir`` (ours: prepare_out checked) that this run does not."""
    for f in names:
        if os.path.exists(os.path.join(out_dir, f)):
            os.unlink(os.path.join(out_dir, f))
