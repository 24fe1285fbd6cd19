"""``fastsel select``: choose a training subset from a feature file."""
from __future__ import annotations

import os
import time

import click
import numpy as np
import torch

from .. import _dist
from .. import metrics as M
from .. import ops
from ..io import DataError, check_outputs, check_replaceable, load_features, npy_header, save_npy
from ..selectors import check_start_applies, get_selector, selector_names, select as run_select
from ._common import (DEVICE, SEED, SEED_HELP, RegistryChoice, clean_warnings, emit_json, fmt, handle_errors,
                      one_line, progress_bar)
from ._options import SelectorOptionsCommand, given_options, refuse_undeclared
from ..errors import FastselError

POOL_METRIC_ROWS = 16384


def default_out(path: str, method: str, n: int) -> str:
    stem = path[:-4] if path.endswith((".npy", ".npz")) else path
    return f"{stem}.{method}-{n}.npy"


OURS = "a selection fastsel select wrote (a 1-D int64 .npy of indices)"


def is_selection(path: str) -> bool:
    """Whether ``path`` is what select writes -- a 1-D int64 .npy -- and so may be replaced by a rerun."""
    h = npy_header(path)
    return h is not None and len(h[0]) == 1 and h[1] == np.dtype(np.int64)


def pool_rows(N: int, seed: int) -> torch.Tensor | None:
    """Rows the pool metrics use: all when N <= 16384, else a seeded uniform sample."""
    if N <= POOL_METRIC_ROWS:
        return None
    g = torch.Generator().manual_seed(int(seed) + 1)
    return torch.randperm(N, generator=g)[:POOL_METRIC_ROWS].sort().values


def set_metrics(x: torch.Tensor, backend: str) -> dict:
    if x.shape[0] < 2:
        return {"entropy": None, "mnnd": None}
    return {"entropy": M.kl_entropy(x, backend=backend), "mnnd": M.mnnd(x, backend=backend)}


@click.command("select", cls=SelectorOptionsCommand, after="seed")
@click.option("--in", "inp", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Feature file: .npy (memory-mapped) or .npz (see --key), shape (N, d).")
@click.option("--key", default=None, help="Array name inside a .npz file.")
@click.option("-n", "--n", "n", required=True, type=click.IntRange(min=1),
              help="Number of rows to select (-n under torchrun, whose own parser claims --n).")
@click.option("--method", type=RegistryChoice(selector_names), default="greedy", show_default=True)
@click.option("--start", type=click.IntRange(min=0), default=None,
              help="First pick (default: drawn from --seed).")
@click.option("--seed", type=SEED, default=ops.DEFAULT_SEED, show_default=True, help=SEED_HELP)
@click.option("--backend", type=click.Choice(ops.BACKENDS), default="auto", show_default=True)
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="Where the pool is selected: cpu, cuda or cuda:K (the CUDA kernels).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output .npy of int64 indices in pick order (default: beside the input). An existing file "
                   "is replaced only when it is an earlier selection (a 1-D int64 .npy); any other file is "
                   "refused, never overwritten.")
@click.option("--no-metrics", is_flag=True, help="Skip the entropy/MNND summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def select(inp, key, n, method, start, seed, backend, device, out, no_metrics, as_json, quiet, **options):
    """Select N rows of a feature pool (greedy FPS, threshold-decay filter or random).

    \b
    Example:
      fastsel select --in feats.npy --n 32768
    """
    sel = get_selector(method)
    options = given_options(options)  # the selector's own options (its declarations' flags)
    sharded = _dist.launched() and sel.sharded is not None
    refuse_undeclared(method, options, sharded=sharded)
    dev = torch.device(device)
    out = out or default_out(inp, method, n)
    check_outputs([out], [inp])
    check_replaceable(out, is_selection, OURS)
    arr = load_features(inp, key)
    N, d = arr.shape
    if n > N:
        raise FastselError(f"--n {n} is larger than the pool ({N} rows in {inp})")
    if start is not None and start >= N:
        raise FastselError(f"--start {start} is out of range for a pool of {N} rows")
    check_start_applies(method, start)
    if sharded:
        return _select_sharded(arr, inp, n, method, start, seed, options, backend, out, no_metrics, as_json)
    x = ops.as_tensor(np.asarray(arr), inp).to(dev)
    used_backend = "torch" if sel.op is None else ops.resolve_backend(sel.op, dev.type, backend)
    t0 = time.perf_counter()
    with progress_bar(n, f"{method}", quiet) as bar:
        idx, info = run_select(x, n, method, start=start, seed=seed, backend=backend, progress=bar.update,
                               return_info=True, **options)
    seconds = time.perf_counter() - t0
    idx = idx.cpu()
    save_npy(out, idx.numpy().astype(np.int64))
    summary = {"N": N, "d": d, "n": n, "method": method, "backend": used_backend, "device": str(dev),
               "seconds": seconds, "out": out, **info}
    _report(summary, x, idx, N, seed, backend, no_metrics, as_json)


def _report(summary, x, idx, N, seed, backend, no_metrics, as_json):
    n, method, d = summary["n"], summary["method"], summary["d"]
    if not no_metrics:
        rows = pool_rows(N, seed)
        with clean_warnings():
            summary["selection"] = set_metrics(x[idx], backend)
            summary["pool"] = dict(set_metrics(x if rows is None else x[rows], backend),
                                   rows=N if rows is None else int(rows.numel()))
    if as_json:
        emit_json(summary)
        return
    used_backend, seconds, out = summary["backend"], summary["seconds"], summary["out"]
    click.echo(f"selected {n} of {N} rows (d={d}) with {method} [{used_backend}] in {seconds:.3f} s -> {one_line(out)}")
    if "tau0" in summary:
        click.echo(f"  tau {fmt(summary['tau0'])} -> {fmt(summary['tau_end'])}: {summary['decays']} decays, "
                   f"{summary['passes']} passes, {summary['n_filled']} filled, {summary['order']} order")
    if not no_metrics:
        s, p = summary["selection"], summary["pool"]
        click.echo(f"  {'':10s} {'entropy':>12s} {'mnnd':>10s}")
        click.echo(f"  {'selection':10s} {fmt(s['entropy'], 2):>12s} {fmt(s['mnnd']):>10s}")
        label = "pool" if p["rows"] == N else f"pool~{p['rows']}"
        click.echo(f"  {label:10s} {fmt(p['entropy'], 2):>12s} {fmt(p['mnnd']):>10s}")


def pool_fingerprint(path: str, arr) -> list:
    """[N, d, dtype, file size, hash of the first and last 64 KiB]: what every rank must agree on."""
    import hashlib
    size = os.path.getsize(path)
    h = hashlib.blake2b(digest_size=7)
    with open(path, "rb") as f:
        h.update(f.read(65536))
        if size > 65536:
            f.seek(max(65536, size - 65536))
            h.update(f.read(65536))
    dt = int.from_bytes(hashlib.blake2b(str(arr.dtype).encode(), digest_size=6).digest(), "little")
    return [int(arr.shape[0]), int(arr.shape[1]), dt, int(size), int.from_bytes(h.digest(), "little")]


def _agree_on_pool(path: str, arr, dist) -> None:
    """Every rank must read the same pool (N, d, dtype, size and a hash of the file's ends), else
    all ranks stop with one line (no rank waits in a collective, no output is written)."""
    mine = torch.tensor(pool_fingerprint(path, arr), dtype=torch.int64)
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        mine = mine.cuda()
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    rows = [e.cpu().tolist() for e in every]
    if any(r != rows[0] for r in rows):
        desc = "; ".join(f"rank {k}: N={r[0]} d={r[1]} {r[3]} bytes" for k, r in enumerate(rows))
        raise DataError(f"ranks disagree on the pool {path} ({desc}): every rank must read the same file")


def _select_sharded(arr, inp, n, method, start, seed, options, backend, out, no_metrics, as_json):
    """Under torchrun: each rank memory-maps only its row slice; rank 0 writes the one output."""
    import torch.distributed as dist

    from .. import distributed as D

    with _dist.group("auto"):
        rank, world = dist.get_rank(), dist.get_world_size()
        _agree_on_pool(inp, arr, dist)
        N, d = arr.shape
        lo, hi = D.shard_rows(N, rank, world)
        x_local = torch.from_numpy(np.array(arr[lo:hi]))  # the ops check it; all ranks fail together
        t0 = time.perf_counter()
        sel = get_selector(method)
        out_ = sel.sharded(x_local, n, start=start, seed=seed, backend=backend, **options)
        idx, info = out_ if isinstance(out_, tuple) else (out_, {})
        seconds = time.perf_counter() - t0
        if rank != 0:
            return
        save_npy(out, idx.numpy().astype(np.int64))
        summary = {"N": N, "d": d, "n": n, "method": method,
                   "backend": ops.resolve_backend(sel.sharded_op or sel.op, "cpu", backend),
                   "seconds": seconds, "out": out, "world_size": world, **info}
        x = ops.as_tensor(np.asarray(arr)) if not no_metrics else None
        _report(summary, x, idx, N, seed, backend, no_metrics, as_json)
