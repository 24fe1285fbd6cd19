"""Selector throughput benchmark: every backend, always beside its baselines in the same run.

For each case it times the fastsel backends, the plain PyTorch loop (a
matrix-vector product per pick) and measures the per-pick memory floor: the
bytes one pick must read (the whole pool, N*d*itemsize) divided by the read
bandwidth measured in this run on that same pool (the best of fastsel's
streaming probe and torch.sum). Results are ratios: to the baseline, to the floor.
Writes JSON (keyed by machine, torch version, commit) and a Markdown table.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field

import torch

from . import _backend, ops
from .io import save_json, save_text

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
QUICK = {"greedy": [(16384, 384, 256), (65536, 384, 256)], "threshold": [(65536, 384, 256)],
         "nn": [(4096, 16384, 384)], "dtypes": ["float32", "float16"]}
FULL = {"greedy": [(16384, 384, 1024), (65536, 384, 2048), (65536, 768, 1024), (262144, 384, 1024)],
        "threshold": [(65536, 384, 2048)], "nn": [(16384, 32768, 384)], "dtypes": ["float32", "float16"]}
SLOW_PICKS = 32  # picks timed for baselines that read the pool once per pick


@dataclass
class Row:
    op: str
    impl: str
    dtype: str
    N: int
    d: int
    n: int
    seconds: float
    per_pick_ms: float = float("nan")
    vs_baseline: float = float("nan")   # baseline time / this time (> 1: faster than the baseline)
    vs_floor: float = float("nan")      # this time / floor time (1.0 = at the memory floor)
    extra: dict = field(default_factory=dict)


def _best(fn, repeats: int = 3, min_time: float = 0.0) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def read_bandwidth(x: torch.Tensor) -> tuple[float, str]:
    """Bytes/s of one streaming read of ``x`` (best of fastsel's probe and torch.sum)."""
    nbytes = x.numel() * x.element_size()
    cands = {"torch.sum": lambda: x.sum()}
    if _backend.has_kernel("_stream_read", "cpu") and x.dtype == torch.float32:
        cands["fastsel._stream_read"] = lambda: torch.ops.fastsel._stream_read(x)
    times = {k: _best(f, repeats=5) for k, f in cands.items()}
    k = min(times, key=times.get)
    return nbytes / times[k], k


def plain_torch_greedy(x: torch.Tensor, n: int, start: int = 0) -> torch.Tensor:
    """The plain PyTorch FPS loop most people write well: a matrix-vector product per pick."""
    xf = x.float() if x.dtype != torch.float64 else x
    xn = (xf * xf).sum(1)
    md = torch.full((x.shape[0],), float("inf"), dtype=xf.dtype)
    out = torch.empty(n, dtype=torch.int64)
    pick = start
    for t in range(n):
        out[t] = pick
        c = xf[pick]
        md = torch.minimum(md, xn - 2.0 * (xf @ c) + xn[pick])
        md[out[: t + 1]] = -1.0
        pick = int(torch.argmax(md))
    return out


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _pool(N: int, d: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, d, generator=g).to(dtype)


def bench_greedy(N, d, n, dtype_name, backends, log) -> list[Row]:
    x = _pool(N, d, DTYPES[dtype_name])
    bw, probe = read_bandwidth(x) if x.dtype == torch.float32 else read_bandwidth(x.float())
    bytes_per_pick = N * d * x.element_size()
    floor_pick = bytes_per_pick / bw
    rows = []
    nb = min(n, SLOW_PICKS)
    t_base = _best(lambda: plain_torch_greedy(x, nb), repeats=1) / nb
    base = Row("greedy", "plain-torch-gemv", dtype_name, N, d, n, t_base * n, t_base * 1e3, 1.0, t_base / floor_pick,
               {"picks_timed": nb})
    rows.append(base)
    for be in backends:
        picks = n if be == "cpp" else nb
        t = _best(lambda: ops.greedy(x, picks, 0, backend=be), repeats=2 if be == "cpp" else 1) / picks
        rows.append(Row("greedy", f"fastsel-{be}", dtype_name, N, d, n, t * n, t * 1e3, t_base / t, t / floor_pick,
                        {"picks_timed": picks}))
    rows.append(Row("greedy", "memory-floor", dtype_name, N, d, n, floor_pick * n, floor_pick * 1e3,
                    t_base / floor_pick, 1.0, {"read_GBps": bw / 1e9, "probe": probe, "bytes_per_pick": bytes_per_pick}))
    for r in rows:
        log(r)
    return rows


def bench_threshold(N, d, n, dtype_name, backends, log) -> list[Row]:
    x = _pool(N, d, DTYPES[dtype_name])
    tau = ops.default_tau(x, n)
    rows = []
    t_greedy = _best(lambda: ops.greedy(x, n, 0, backend="auto"), repeats=1)
    bw, _ = read_bandwidth(x) if x.dtype == torch.float32 else read_bandwidth(x.float())
    floor_pick = N * d * x.element_size() / bw
    rows.append(Row("threshold", "fastsel-greedy(same N,n)", dtype_name, N, d, n, t_greedy, t_greedy / n * 1e3, 1.0,
                    t_greedy / n / floor_pick))
    for be in backends:
        picks = n if be == "cpp" else min(n, SLOW_PICKS)
        t = _best(lambda: ops.threshold_decay(x, picks, 0, tau, 0.9, backend=be), repeats=1) / picks
        rows.append(Row("threshold", f"fastsel-{be}", dtype_name, N, d, n, t * n, t * 1e3, t_greedy / n / t,
                        t / floor_pick, {"tau0": tau, "picks_timed": picks}))
    for r in rows:
        log(r)
    return rows


def plain_torch_nn(q, r, block=4096):
    qf, rf = q.float(), r.float()
    out = torch.empty(q.shape[0], dtype=torch.int64)
    rn = (rf * rf).sum(1)
    for a in range(0, q.shape[0], block):
        d = rn[None, :] - 2.0 * (qf[a:a + block] @ rf.T)
        out[a:a + block] = d.argmin(1)
    return out


def bench_nn(Q, R, d, dtype_name, backends, log) -> list[Row]:
    q = _pool(Q, d, DTYPES[dtype_name], 1)
    r = _pool(R, d, DTYPES[dtype_name], 2)
    t_base = _best(lambda: plain_torch_nn(q, r), repeats=1)
    rows = [Row("nn", "plain-torch-blocked-mm", dtype_name, Q, d, 1, t_base, vs_baseline=1.0, extra={"R": R})]
    for be in backends:
        t = _best(lambda: ops.nn(q, r, k=1, backend=be), repeats=1)
        rows.append(Row("nn", f"fastsel-{be}", dtype_name, Q, d, 1, t, vs_baseline=t_base / t, extra={"R": R}))
    for row in rows:
        log(row)
    return rows


def run(grid: dict | None = None, backends=("cpp", "torch"), out_dir: str = "bench/results", log=print) -> dict:
    grid = grid or QUICK
    backends = [b for b in backends if b != "cpp" or _backend.loaded()]
    rows: list[Row] = []
    for dt in grid["dtypes"]:
        for (N, d, n) in grid["greedy"]:
            rows += bench_greedy(N, d, n, dt, backends, log)
        for (N, d, n) in grid["threshold"]:
            rows += bench_threshold(N, d, n, dt, backends, log)
        for (Q, R, d) in grid["nn"]:
            rows += bench_nn(Q, R, d, dt, backends, log)
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": _commit(),
        "device": "cpu",
    }
    result = {"meta": meta, "rows": [asdict(r) for r in rows]}
    os.makedirs(out_dir, exist_ok=True)
    save_json(os.path.join(out_dir, "bench_select.json"), json.loads(json.dumps(result).replace("NaN", "null")))
    save_text(os.path.join(out_dir, "bench_select.md"), markdown(result))
    return result


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = [f"# fastsel selector benchmark", "",
             f"{m['date']} · {m['machine']} · {m['cpu_count']} cores · {m['threads']} threads · torch {m['torch']}"
             f" · commit {m['commit']}", "",
             "| op | impl | dtype | N | d | n | total s | ms/pick | × baseline | × floor |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, p=2):
        return "" if v is None or v != v else f"{v:.{p}f}"
    for r in result["rows"]:
        lines.append(f"| {r['op']} | {r['impl']} | {r['dtype']} | {r['N']} | {r['d']} | {r['n']} | {f(r['seconds'], 3)}"
                     f" | {f(r['per_pick_ms'], 3)} | {f(r['vs_baseline'])} | {f(r['vs_floor'])} |")
    lines += ["", "× baseline: the plain PyTorch time divided by this one (for threshold: greedy's time for the "
              "same N and n). × floor: this time divided by the per-pick memory floor (one read of the pool at "
              "the read bandwidth measured in the same run); below 1 is faster than any one-read-per-pick method.",
              "Slow baselines are timed over a few picks and reported per pick (column extra.picks_timed in the JSON).",
              ""]
    return "\n".join(lines)
