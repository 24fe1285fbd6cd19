"""Where a loop run keeps its files: the one module that both the loop (run.py) and the report
(report.py) read paths from.

Run directory (every file written atomically; a rerun of the same command, or ``--resume RUN``,
continues from the last complete step -- a finished stage is never redone, an interrupted training
resumes from its checkpoint, an interrupted sampler from its last finished batch)::

    config.json                     the resolved configuration (a rerun must match it)
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

import os

import numpy as np


def iter_path(run_dir: str, arm: str, t: int) -> str:
    """Where iteration t of an arm keeps its model and samples (iteration 0 is shared by every arm)."""
    return os.path.join(run_dir, "shared", "iter_000") if t == 0 else os.path.join(run_dir, arm, f"iter_{t:03d}")


def gather_rows(run_dir: str, arm: str, src: np.ndarray, idx: np.ndarray, real=None) -> tuple:
    """Images, labels and selection features of (source, row) pairs: source 0 the real data
    (``real`` = (images, labels, feats), read from run_dir/real when None), source j the samples
    of generation j (iteration j - 1)."""
    if real is None:
        r = os.path.join(run_dir, "real")
        real = tuple(np.load(os.path.join(r, f), mmap_mode="r", allow_pickle=False)
                     for f in ("images.npy", "labels.npy", "feats.npy"))
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
            im = np.load(os.path.join(d, "samples.npy"), mmap_mode="r", allow_pickle=False)
            lab = np.load(os.path.join(d, "sample_labels.npy"), allow_pickle=False)
            f = np.load(os.path.join(d, "feats.npy"), allow_pickle=False)
        ims[rows], labs[rows], fs[rows] = im[idx[rows]], lab[idx[rows]], f[idx[rows]]
    return ims, labs, fs
