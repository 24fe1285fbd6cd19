"""Where a loop run keeps its files: the one module that both the loop (run.py) and the report
(report.py) read paths from.

Run directory (every file written atomically; a rerun of the same command, or ``--resume RUN``,
continues from the last complete step -- a finished stage is never redone, an interrupted training
resumes from its checkpoint, an interrupted sampler from its last finished batch)::

    config.json                     the resolved configuration (a rerun must match it, but for
                                    iterations, device and ckpt_every: config.FREE_SETTINGS)
    */settings.json                 in real/ and every iteration folder: the settings it ran with
    real/images.npy labels.npy      the real training data (uint8 NHWC), its features
         feats.npy fid_feats.npy
    shared/iter_000/                iteration 0 (trained on real data: the same for every arm)
        ckpt.pt model.pt parts/ samples.npy sample_labels.npy feats.npy fid_feats.npy
    <paradigm>-<selector>/iter_NNN/ iterations >= 1 of each arm, the same files plus
        train_src.npy train_idx.npy the training set as (source, row): source 0 real, j generation j
    <arm>/iter_NNN/metrics.json     that iteration's metrics; metrics.csv / metrics.json: all of them
    report/                         plots + report.md (rewritten after every iteration)
"""
from __future__ import annotations

import glob
import json
import math
import os
import re

import numpy as np

from ..errors import DataError
from . import columns
from .config import load_config


def iter_path(run_dir: str, arm: str, t: int) -> str:
    """Where iteration t of an arm keeps its model and samples (iteration 0 is shared by every arm)."""
    return os.path.join(run_dir, "shared", "iter_000") if t == 0 else os.path.join(run_dir, arm, f"iter_{t:03d}")


def gather_rows(run_dir: str, arm: str, src: np.ndarray, idx: np.ndarray, real=None, where: str = None) -> tuple:
    """Images, labels and selection features of (source, row) pairs: source 0 the real data
    (``real`` = (images, labels, feats), read from run_dir/real when None), source j the samples
    of generation j (iteration j - 1). ``where``: the file the pairs came from (named when a pair
    points past its source)."""
    if real is None:
        r = os.path.join(run_dir, "real")
        im = load_array(run_dir, os.path.join(r, "images.npy"), 4, "u", mmap=True)
        real = (im, load_array(run_dir, os.path.join(r, "labels.npy"), 1, "iu", rows=len(im)),
                load_array(run_dir, os.path.join(r, "feats.npy"), 2, "f", rows=len(im)))
    real_im, _, real_f = real
    ims = np.empty((len(src),) + real_im.shape[1:], np.uint8)
    labs = np.empty(len(src), np.int64)
    fs = np.empty((len(src), real_f.shape[1]), np.float32)
    for s in np.unique(src):
        rows = np.flatnonzero(src == s)
        if s == 0:
            im, lab, f = real
        else:
            d = iter_path(run_dir, arm, int(s) - 1)
            im = load_array(run_dir, os.path.join(d, "samples.npy"), 4, "u", tail=real_im.shape[1:], mmap=True)
            lab = load_array(run_dir, os.path.join(d, "sample_labels.npy"), 1, "iu", rows=len(im))
            f = load_array(run_dir, os.path.join(d, "feats.npy"), 2, "f", rows=len(im), tail=(real_f.shape[1],))
        if len(rows) and not 0 <= idx[rows].min() <= idx[rows].max() < min(len(im), len(lab), len(f)):
            raise damaged(run_dir, where or os.path.join(run_dir, arm), f"a row of source {int(s)} past its "
                          f"{min(len(im), len(lab), len(f))} rows")
        ims[rows], labs[rows], fs[rows] = im[idx[rows]], lab[idx[rows]], f[idx[rows]]
    return ims, labs, fs


# fastsel.io.atomic_path's temporary files: ".fs-" + mkstemp's 8 characters + ".tmp" (earlier versions:
# "." + the target's name + "." + the 8 characters + ".tmp")
TEMP_NAME = re.compile(r"^\.(fs-|.+\.)[a-z0-9_]{8}\.tmp$")


def stale_temp_files(run_dir: str) -> list:
    """Temporary files that a killed process left in the run's own folders (run_dir, real/, report/,
    every iteration and its parts/): only names of fastsel's pattern, only plain files. Remove them
    only while holding the run directory's lock (no other writer)."""
    folders = [run_dir] + [os.path.join(run_dir, f) for f in ("real", "report")]
    folders += glob.glob(os.path.join(glob.escape(run_dir), "*", "iter_[0-9][0-9][0-9]"))
    folders += glob.glob(os.path.join(glob.escape(run_dir), "*", "iter_[0-9][0-9][0-9]", "parts"))
    out = []
    for d in folders:
        if os.path.isdir(d) and not os.path.islink(d):
            out += [os.path.join(d, f) for f in sorted(os.listdir(d)) if TEMP_NAME.match(f)
                    and os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f))]
    return out


# ------------------------------------------------------------------ damaged files: one line, what to do

def fix_hint(run_dir: str, path: str) -> str:
    """What to do about a damaged file of a run directory: delete the stage that wrote it and resume."""
    resume = f"`fastsel loop --resume {run_dir}`"
    parts = os.path.relpath(path, run_dir).split(os.sep)
    if len(parts) == 1:
        return f"delete it and run {resume} to rewrite it"
    if parts[0] == "real":
        return f"delete {os.path.join(run_dir, 'real')} and resume with {resume}"
    if len(parts) >= 3 and parts[1].startswith("iter_"):
        folder = os.path.join(run_dir, parts[0], parts[1])
        if parts[2] == "metrics.json":
            return f"delete it and resume with {resume} (that iteration's metrics are recomputed)"
        later = "every arm's later iterations" if parts[0] == "shared" else "that arm's later iterations"
        return f"delete {folder} (and {later}) and resume with {resume}"
    return f"delete it and resume with {resume}"


def damaged(run_dir: str, path: str, why: str) -> DataError:
    return DataError(f"{path} is damaged ({why}): {fix_hint(run_dir, path)}")


def read_json(run_dir: str, path: str, kind=dict):
    """A JSON file of the run (of type ``kind``); one line naming it when it is not readable JSON."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise damaged(run_dir, path, f"not valid JSON: {str(e).splitlines()[0][:80]}") from None
    if not isinstance(d, kind):
        raise damaged(run_dir, path, f"a JSON {type(d).__name__}, not {'an object' if kind is dict else 'a list'}")
    return d


def load_array(run_dir: str, path: str, ndim: int, kinds: str = "", rows: int = None, tail: tuple = None,
               mmap: bool = False) -> np.ndarray:
    """A .npy of the run checked against what the loop wrote: ``ndim`` dimensions, a dtype kind in
    ``kinds`` (numpy's letters: "u" unsigned, "i" signed, "f" float), at least ``rows`` rows and the
    trailing shape ``tail`` (None entries: any). A missing file raises OSError (callers that can
    redo the stage check existence first); anything else unexpected is one line naming the file."""
    try:
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise damaged(run_dir, path, f"unreadable: {str(e).splitlines()[0][:80]}") from None
    if not isinstance(a, np.ndarray):
        raise damaged(run_dir, path, "not a .npy array")
    if a.ndim != ndim:
        raise damaged(run_dir, path, f"a {a.ndim}-D array of shape {a.shape}, expected {ndim}-D")
    if kinds and a.dtype.kind not in kinds:
        raise damaged(run_dir, path, f"dtype {a.dtype}")
    if rows is not None and len(a) < rows:
        raise damaged(run_dir, path, f"{len(a)} rows, expected {rows}")
    if tail is not None and any(w is not None and w != h for w, h in zip(tail, a.shape[1:])):
        raise damaged(run_dir, path, f"shape {a.shape}, expected (N, {', '.join('*' if w is None else str(w) for w in tail)})")
    return a


def _num(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def check_record(run_dir: str, path: str, rec, arm: str = None, t: int = None) -> dict:
    """An iteration's metrics record as the loop wrote it (the keys the tables and the report read)."""
    if not isinstance(rec, dict):
        raise damaged(run_dir, path, "a record is not a JSON object")
    if not isinstance(rec.get("arm"), str) or (arm is not None and rec["arm"] != arm):
        raise damaged(run_dir, path, f"arm {rec.get('arm')!r}" + (f", expected {arm!r}" if arm else ""))
    it = rec.get("iteration")
    if isinstance(it, bool) or not isinstance(it, int) or it < 0 or (t is not None and it != t):
        raise damaged(run_dir, path, f"iteration {it!r}" + (f", expected {t}" if t is not None else ""))
    sh = rec.get("shares")
    if not isinstance(sh, list) or not sh or not all(_num(v) and v is not None and math.isfinite(v) for v in sh):
        raise damaged(run_dir, path, f"shares {sh!r}")
    bad = [c.key for c in columns.COLUMNS if c.key != "share_real" and not _num(rec.get(c.key))]
    if bad:
        raise damaged(run_dir, path, f"{bad[0]} {rec.get(bad[0])!r} is not a number")
    ps = rec.get("pool_sources", [])
    if not isinstance(ps, list) or not all(isinstance(x, dict) and isinstance(x.get("source"), int)
                                           and all(_num(v) for v in x.values()) for x in ps):
        raise damaged(run_dir, path, "pool_sources is not a list of numbers by source")
    sel = rec.get("selection", {})
    if not isinstance(sel, dict) or not all(_num(sel.get(k)) for k in ("tau0", "tau_end", "decays", "passes",
                                                                       "n_filled")):
        raise damaged(run_dir, path, "selection is not an object of numbers")  # a selector's facts
    return rec


def check_metrics(run_dir: str, path: str, m) -> dict:
    """A run's metrics.json: {"config": {...}, "iterations": [records]} with the settings the report reads."""
    if not isinstance(m, dict) or not isinstance(m.get("config"), dict) or not isinstance(m.get("iterations"), list):
        raise damaged(run_dir, path, "not {\"config\": {...}, \"iterations\": [...]}")
    c = m["config"]
    want = {"dataset": str, "paradigm": str, "unet": str, "features": str, "fid_features": str, "n": int,
            "seed": int, "selectors": list}
    for k, typ in want.items():
        if not isinstance(c.get(k), typ) or isinstance(c.get(k), bool):
            raise damaged(run_dir, path, f"config {k} {c.get(k)!r}")
    if c.get("alpha") is None or not _num(c.get("alpha")):
        raise damaged(run_dir, path, f"config alpha {c.get('alpha')!r}")
    seen = set()
    for r in m["iterations"]:
        key = (check_record(run_dir, path, r)["arm"], r["iteration"])
        if key in seen:  # two records of one step: a damaged file, never two seeds
            raise damaged(run_dir, path, f"arm {key[0]} iteration {key[1]} is recorded twice")
        seen.add(key)
    return m


# ------------------------------------------------------------------ whose folder: the loop's or empty

LEFTOVERS = (".lock", "progress.log")  # what a run that stopped before its first step may leave,
LEFT_TEMP = re.compile(r"^\..*\.tmp$")      # with a killed write's temporary file (never a name it writes)


def check_run_folder(run_dir: str) -> None:
    """Before anything is written: ``run_dir`` is new, empty (but for LEFTOVERS) or a loop run (its
    config.json, checked whole); a folder of other files -- the user's own -- is refused in one line."""
    if not os.path.lexists(run_dir):
        return
    if not os.path.isdir(run_dir):
        raise DataError(f"--run-dir {run_dir} exists and is not a folder: choose a new or empty folder")
    if os.path.lexists(os.path.join(run_dir, "config.json")):
        load_config(run_dir)  # a loop's configuration, or one line naming what is wrong with it
        return
    if os.path.isfile(os.path.join(run_dir, "sweep.json")):
        raise DataError(f"{run_dir} holds a sweep (sweep.json): use --resume {run_dir} or a new --run-dir")
    left = [f for f in sorted(os.listdir(run_dir)) if f not in LEFTOVERS and not LEFT_TEMP.match(f)]
    _refuse_others(run_dir, left, "fastsel loop run (no config.json)")


def check_sweep_folder(run_dir: str) -> None:
    """Before anything is written: a sweep's ``run_dir`` is new, empty or an earlier sweep (sweep.json)."""
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise DataError(f"--run-dir {run_dir} exists and is not a folder: choose a new or empty folder")
    if os.path.isdir(run_dir) and not os.path.lexists(os.path.join(run_dir, "sweep.json")):
        _refuse_others(run_dir, sorted(os.listdir(run_dir)), "fastsel sweep (no sweep.json)")


def _refuse_others(run_dir: str, names: list, what: str) -> None:
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise DataError(f"--run-dir {run_dir} holds files the loop did not write ({shown}): not a {what}; "
                        "nothing was written -- choose a new or empty folder")
