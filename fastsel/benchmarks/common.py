"""What every benchmark shares: one timing routine, one set of baselines, the machine's facts."""
from __future__ import annotations

import importlib
import math
import os
import platform
import statistics
import subprocess
import time
from typing import Callable

import torch


# ------------------------------------------------------------------ timing

def sync(device=None) -> None:
    """Wait for queued device work (a no-op on the CPU)."""
    dev = torch.device(device) if device is not None else None
    if (dev is None and torch.cuda.is_available() and torch.cuda.is_initialized()) or (dev is not None and dev.type == "cuda"):
        torch.cuda.synchronize(dev)


def timed(fn: Callable, reps: int = 3, warmup: int = 1, stat: str = "min", device=None, result: bool = False):
    """Seconds of ``fn()``: ``warmup`` untimed calls, then ``reps`` timed ones (device work waited
    for), reduced by ``stat`` ("min": the best, the machine's noise only adds; "median").
    ``result=True``: (the last call's result, the seconds). Every benchmark times with this one routine."""
    for _ in range(warmup):
        fn()
    ts, out = [], None
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    t = min(ts) if stat == "min" else statistics.median(ts)
    return (out, t) if result else t


def timed_result(fn: Callable, reps: int = 1, warmup: int = 0, device=None) -> tuple:
    """(the last call's result, the best of ``reps`` timed calls, in seconds): :func:`timed` keeping what
    ``fn`` returned; by default one call, no warm-up."""
    return timed(fn, reps=reps, warmup=warmup, device=device, result=True)


def best_time(fn: Callable, repeats: int = 3) -> float:
    return timed(fn, reps=repeats, warmup=1, stat="min")


def median_time(fn: Callable, reps: int = 5, warmup: int = 1, device=None) -> float:
    return timed(fn, reps=reps, warmup=warmup, stat="median", device=device)


def wall(fn: Callable, device=None) -> float:
    """One timed call, no warm-up."""
    return timed(fn, reps=1, warmup=0, device=device)


# ------------------------------------------------------------------ baselines

def plain_torch_greedy(x: torch.Tensor, n: int, start: int = 0) -> torch.Tensor:
    """(a) The plain PyTorch FPS loop most people write well: a matrix-vector product per pick, the
    arg-max left on the device (no host sync per pick), on x's device."""
    xf = x.float() if x.dtype != torch.float64 else x
    xn = (xf * xf).sum(1)
    md = torch.full((x.shape[0],), float("inf"), dtype=xf.dtype, device=x.device)
    idx = torch.empty(n, dtype=torch.int64, device=x.device)
    pick = torch.tensor(start, device=x.device)
    for t in range(n):
        idx[t] = pick
        md = torch.minimum(md, xn - 2.0 * (xf @ xf[pick]) + xn[pick])
        md[pick] = -1.0
        pick = torch.argmax(md)
    return idx


def authors_greedy(x: torch.Tensor, n: int, start: int = 0) -> list:
    """(b) The authors' released procedure: per pick cdist to the new centre, minimum, argmax().item()."""
    xf = x.float()
    md = torch.full((x.shape[0],), float("inf"), device=x.device)
    sel = [start]
    for _ in range(n - 1):
        md = torch.minimum(md, torch.cdist(xf, xf[sel[-1]][None]).squeeze(1))
        sel.append(int(torch.argmax(md).item()))
    return sel


def authors_threshold(x: torch.Tensor, n: int, tau: float, alpha: float, budget_s: float) -> tuple:
    """(b) The authors' threshold filter: per candidate, the norm of its difference to every accepted row.
    Runs until ``n`` accepts or ``budget_s``; returns (accepts, seconds)."""
    xf = x.float()
    acc = [0]
    t0 = time.perf_counter()
    while len(acc) < n and time.perf_counter() - t0 < budget_s:
        for i in range(1, xf.shape[0]):
            if time.perf_counter() - t0 >= budget_s or len(acc) >= n:
                break
            if bool((torch.norm(xf[acc] - xf[i], dim=1) > tau).all()):
                acc.append(i)
        tau *= alpha
    return len(acc), time.perf_counter() - t0


def plain_torch_nn(q, r, block=4096):
    """(a) 1-NN by blocked GEMMs (the GEMM form: fast, loses digits on clustered data)."""
    qf, rf = q.float(), r.float()
    out = torch.empty(q.shape[0], dtype=torch.int64)
    rn = (rf * rf).sum(1)
    for a in range(0, q.shape[0], block):
        out[a:a + block] = (rn[None, :] - 2.0 * (qf[a:a + block] @ rf.T)).argmin(1)
    return out


def first_divergence(picks, ref) -> int:
    """How many leading picks agree with the float64 reference sequence (len(ref): all)."""
    p = torch.as_tensor(picks).reshape(-1).long()
    r = torch.as_tensor(ref).reshape(-1).long()[: len(p)]
    bad = (p != r).nonzero()
    return len(r) if len(bad) == 0 else int(bad[0])


# ------------------------------------------------------------------ machine and run facts

def try_import(name: str):
    """The module ``name`` (dotted names give the submodule, not the top package), or None if absent."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def clean(o):
    """JSON-safe: non-finite floats become null."""
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
