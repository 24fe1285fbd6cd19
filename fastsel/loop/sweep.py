"""Sweeps of the loop: one sub-run per (n, alpha, seed) under one folder (``n{N}[-alpha{A}][-seed{S}]``),
listed with their configurations in ``RUN/sweep.json``; each sub-run resumes like any run. The
report merges them (seeds as replicates). Sizes are nested: for one seed, a smaller n's real images
lie inside a larger n's. Sub-runs run one after another, or up to ``jobs`` at once, each in its own
spawned process with cores // jobs threads (a sub-run's numbers equal those of running it alone
with that thread count).

``fastsel loop`` (several ``-n``, ``--alpha`` or ``--seeds``, or ``--resume`` of a sweep) calls
:func:`plan`, :func:`start` or :func:`load`, then :func:`run`.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional

import torch

from .._runtime import keep_freed_memory
from .._threads import _cpus
from ..errors import DataError
from ..io import save_json
from .config import LoopConfig
from .rundir import check_sweep_folder
from .run import run_loop

SWEEP_FILE = "sweep.json"


def is_sweep(run_dir: str) -> bool:
    """Whether ``run_dir`` holds a sweep (its sweep.json), not one run."""
    return os.path.exists(os.path.join(run_dir, SWEEP_FILE))


def plan(cfg: LoopConfig, ns, alphas, seeds=None) -> list:
    """[(name, config)] of every sub-run, seed-major (a partial sweep has every size of the first
    seeds); a name carries only the values that vary."""
    seeds = seeds or [cfg.seed]
    subs = []
    for s in seeds:
        for n in ns:
            for a in alphas:
                name = "-".join(([f"n{n}"] if len(ns) > 1 else []) + ([f"alpha{a:g}"] if len(alphas) > 1 else [])
                                + ([f"seed{s}"] if len(seeds) > 1 else []))
                sub = dataclasses.replace(cfg, n=n, seed=s)
                sub.set_option("alpha", a)  # a new mapping: the sub-runs share none
                subs.append((name, sub))
    return subs


def start(run_dir: str, subs: list) -> None:
    """Make ``run_dir`` the sweep of ``subs``: a new or empty folder (one of the user's own files is
    refused before anything is written), or the same sweep begun earlier; sweep.json lists them."""
    check_sweep_folder(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, SWEEP_FILE)
    mine = {"runs": [name for name, _ in subs], "configs": {name: c.to_json() for name, c in subs}}
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f) != json.loads(json.dumps(mine)):
                raise DataError(f"{run_dir} holds another sweep; use --resume {run_dir} or a new --run-dir")
    save_json(path, mine)


def load(run_dir: str) -> list:
    """[(name, config)] of the sweep in ``run_dir``, each configuration checked whole (one line)."""
    path = os.path.join(run_dir, SWEEP_FILE)
    try:
        with open(path) as f:
            d = json.load(f)
        return [(name, LoopConfig.from_json(d["configs"][name], f"{path} ({name})")) for name in d["runs"]]
    except DataError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a fastsel sweep ({str(e).splitlines()[0][:80]})") from None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(run_dir: str, subs: list, download: bool = False, logger: str = "none", jobs: int = 1,
        done: Optional[Callable] = None, note: Callable[[str], None] = _stderr) -> None:
    """Run (or resume) every sub-run of ``subs`` under ``run_dir``: one after another, or up to
    ``jobs`` at once in spawned processes of cores // jobs threads each (progress in
    ``SUB-RUN/progress.log``). ``done(name, config, records)`` is called in sub-run order as each
    finishes; ``note`` gets the progress lines. A failure stops the sweep with its error (the
    sub-runs not started are dropped; a running one finishes, and all resume)."""
    if jobs > 1 and len(subs) > 1:
        _run_parallel(run_dir, subs, download, logger, jobs, done, note)
        return
    for name, c in subs:
        note(f"sub-run {name}")
        recs = run_loop(c, os.path.join(run_dir, name), download=download, report=False, logger=logger)
        if done is not None:
            done(name, c, recs)


def _sub_init(threads: int):
    """A worker process of ``jobs``: a fixed thread count (the core governor never raises it)."""
    torch.set_num_threads(threads)
    keep_freed_memory()


def _sub_run(cfg_json: dict, path: str, download: bool, logger: str):
    """One sub-run in a worker process; its progress bars and lines go to PATH/progress.log."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "progress.log"), "a", buffering=1) as log:
        sys.stderr = log
        try:
            return run_loop(LoopConfig.from_json(cfg_json, path), path, download=download, report=False, logger=logger)
        finally:
            sys.stderr = sys.__stderr__


def _run_parallel(run_dir, subs, download, logger, jobs, done, note):
    threads = max(1, _cpus() // jobs)
    note(f"{len(subs)} sub-runs, {jobs} at a time, {threads} thread{'s' if threads > 1 else ''} each "
         f"(progress in {os.path.join(run_dir, '<sub-run>', 'progress.log')})")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_sub_init, initargs=(threads,)) as ex:
        futs = [ex.submit(_sub_run, c.to_json(), os.path.join(run_dir, name), download, logger) for name, c in subs]
        try:
            for (name, c), f in zip(subs, futs):
                recs = f.result()
                note(f"sub-run {name}: done")
                if done is not None:
                    done(name, c, recs)
        except BaseException:
            for f in futs:  # the sub-runs not started yet are dropped; a running one finishes (resumable)
                f.cancel()
            raise
