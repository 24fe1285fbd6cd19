"""GPU benchmark of the CUDA kernels, every figure beside its baselines in the same run.

Run by ``bench/gpu_check.sh`` (or ``fastsel bench gpu --out DIR``) on a machine
with a CUDA device. Per case:
  * the device-to-device copy bandwidth measured now (bytes read + written / time), and
    from it the per-pick floor: one read of the pool per pick, N*d*itemsize / bandwidth;
  * fastsel multi (exact multi-pick passes), timed over all n picks;
  * fastsel single (one launch and one read of the pool per pick): achieved read bytes/s;
  * (a) the plain PyTorch loop on the GPU (matrix-vector product, minimum, argmax, no sync),
    (b) the authors' released procedure (cdist to the new centre, minimum, argmax().item()),
    (c) one-thread-block-per-set FPS (the torch_cluster / pytorch3d scheme, fastsel::_fps_one_block);
    per-pick methods are timed over a few hundred picks and scaled to n (marked "per-pick x n");
  * threshold filter at the same N, n; k-NN against a cuBLAS matmul of the same shapes.
Exactness is checked in the same run: multi vs single picks, k-NN vs a float64 brute force.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys

import torch

from ..io import save_json, save_text
from ..ops.nn import nn
from ..ops.threshold import default_tau
from .common import authors_greedy, plain_torch_greedy
from .common import median_time as _median, wall as _wall


def wall(fn) -> float:
    return _wall(fn, device="cuda")


def median_time(fn, reps: int = 5, warmup: int = 1) -> float:
    return _median(fn, reps=reps, warmup=warmup, device="cuda")



def copy_bandwidth(nbytes: int = 2 << 30) -> float:
    """Device-to-device copy, bytes read + written per second (median of 10)."""
    a = torch.randn(nbytes // 4, device="cuda")
    b = torch.empty_like(a)
    t = median_time(lambda: b.copy_(a), reps=10, warmup=2)
    del a, b
    return 2 * nbytes / t


def matmul_seconds(M: int, N: int, K: int, tf32: bool = False) -> float:
    a = torch.randn(M, K, device="cuda")
    b = torch.randn(N, K, device="cuda")
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        t = median_time(lambda: a @ b.T, reps=3)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return t


def _row(rows, path_json, path_md, meta, **kw):
    rows.append(kw)
    res = {"meta": meta, "rows": rows}
    save_json(path_json, res)
    save_text(path_md, markdown(res))
    print(json.dumps(kw), flush=True)


def bench_greedy(N, d, n, dtype, bw, rows, out, meta, single_picks=2048, base_picks=128, one_block_picks=4):
    dt = getattr(torch, dtype)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(N, d, device="cuda", generator=g).to(dt)
    nbytes = N * d * x.element_size()
    floor_pick = nbytes / bw
    floor = floor_pick * n
    case = dict(op="greedy", dtype=dtype, N=N, d=d, n=n)
    # fastsel multi: warm-up on a short run, then all n picks
    torch.ops.fastsel.greedy(x, min(n, 512), 0, None, "multi")
    holder = {}
    t_multi = wall(lambda: holder.setdefault("m", torch.ops.fastsel.greedy(x, n, 0, None, "multi")))
    passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
    m_idx = holder["m"][0]
    # fastsel single: one launch per pick
    sp = min(single_picks, n)
    torch.ops.fastsel.greedy(x, 8, 0, None, "single")
    t_single = wall(lambda: holder.setdefault("s", torch.ops.fastsel.greedy(x, sp, 0, None, "single")))
    same = bool(torch.equal(holder["s"][0], m_idx[:sp]))
    per_single = t_single / sp
    # baselines, per pick
    bp = min(base_picks, n)
    plain_torch_greedy(x, 4)
    t_plain = wall(lambda: plain_torch_greedy(x, bp)) / bp
    authors_greedy(x, 4)
    t_auth = wall(lambda: authors_greedy(x, bp)) / bp
    ob = min(one_block_picks, n)
    torch.ops.fastsel._fps_one_block(x, 2, 0)
    t_ob = wall(lambda: torch.ops.fastsel._fps_one_block(x, ob, 0)) / max(ob - 1, 1)
    common = dict(case, floor_s=floor, copy_bw=bw)
    _row(rows, *out, meta, impl="fastsel multi (exact)", seconds=t_multi, timed="all n", vs_floor=t_multi / floor,
         vs_plain=t_plain * n / t_multi, vs_authors=t_auth * n / t_multi, vs_one_block=t_ob * n / t_multi,
         picks_per_pass=picks / max(passes, 1), same_as_single=same, **common)
    _row(rows, *out, meta, impl="fastsel single", seconds=per_single * n, timed=f"per-pick x n ({sp} picks)",
         vs_floor=per_single / floor_pick, read_bw=nbytes / per_single, read_bw_vs_copy=nbytes / per_single / bw,
         **common)
    _row(rows, *out, meta, impl="plain PyTorch GPU loop", seconds=t_plain * n, timed=f"per-pick x n ({bp} picks)",
         vs_floor=t_plain / floor_pick, **common)
    _row(rows, *out, meta, impl="authors' procedure (cdist, minimum, argmax().item())", seconds=t_auth * n,
         timed=f"per-pick x n ({bp} picks)", vs_floor=t_auth / floor_pick, **common)
    _row(rows, *out, meta, impl="one block per set (torch_cluster scheme)", seconds=t_ob * n,
         timed=f"per-pick x n ({ob} picks)", vs_floor=t_ob / floor_pick, **common)
    del x
    torch.cuda.empty_cache()
    return t_multi


def bench_threshold(N, d, n, dtype, rows, out, meta, t_greedy):
    dt = getattr(torch, dtype)
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(N, d, device="cuda", generator=g).to(dt)
    tau = default_tau(x, 0)  # the default rule, from the first pick (row 0)
    torch.ops.fastsel.threshold_decay(x, min(n, 512), 0, tau, 0.9, False, None, None, "chunked")
    holder = {}
    t = wall(lambda: holder.setdefault("r", torch.ops.fastsel.threshold_decay(x, n, 0, tau, 0.9, False, None, None,
                                                                              "chunked")))
    st = holder["r"][4].tolist()
    _row(rows, *out, meta, op="threshold", dtype=dtype, N=N, d=d, n=n, impl="fastsel chunked (exact)", seconds=t,
         timed="all n", vs_greedy=t / t_greedy if t_greedy else float("nan"), tau0=tau, tau_end=st[0])
    del x
    torch.cuda.empty_cache()


def bench_nn(Q, R, d, k, rows, out, meta):
    g = torch.Generator(device="cuda").manual_seed(2)
    q = torch.randn(Q, d, device="cuda", generator=g)
    r = torch.randn(R, d, device="cuda", generator=g)
    t_mm = matmul_seconds(Q, R, d)
    t_mm_tf32 = matmul_seconds(Q, R, d, tf32=True)
    holder = {}
    nn(q[:1024], r, k=k)
    t = median_time(lambda: holder.__setitem__("r", nn(q, r, k=k, backend="cpp")), reps=3)
    dist, idx = holder["r"]
    # exactness on 256 queries: float64 brute force on the device
    qs = q[:256].double()
    d2 = torch.cdist(qs, r.double()) ** 2
    want = torch.sort(d2, dim=1, stable=True).indices[:, :k]
    wrong = int((want != idx[:256]).any(1).sum())
    _row(rows, *out, meta, op="nn", dtype="float32", N=R, d=d, n=Q, k=k, impl="fastsel nn (exact)", seconds=t,
         timed="median of 3", matmul_s=t_mm, vs_matmul=t / t_mm, matmul_tf32_s=t_mm_tf32,
         wrong_of_256=wrong)
    del q, r
    torch.cuda.empty_cache()


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = [f"fastsel GPU check -- {m['device']}, torch {m['torch']}, CUDA {m['cuda']}, {m['date']}",
             f"copy bandwidth (read+write): {m['copy_bw'] / 1e12:.2f} TB/s", "",
             "| op | impl | dtype | N | d | n | time (s) | timed | vs floor | vs plain | vs authors | vs one-block |"
             " other |", "|" + "---|" * 13]

    def f(v, p=3):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:.{p}g}" if isinstance(v, float) else str(v))
    for r in res["rows"]:
        other = {k: v for k, v in r.items() if k in ("picks_per_pass", "same_as_single", "read_bw_vs_copy", "vs_greedy",
                                                     "vs_matmul", "matmul_s", "matmul_tf32_s", "wrong_of_256")}
        lines.append("| " + " | ".join([r["op"], r["impl"], r["dtype"], str(r["N"]), str(r["d"]), str(r["n"]),
                                          f(r["seconds"]), r.get("timed", ""), f(r.get("vs_floor")),
                                          f(r.get("vs_plain")), f(r.get("vs_authors")), f(r.get("vs_one_block")),
                                          ", ".join(f"{k}={f(v)}" for k, v in other.items())]) + " |")
    return "\n".join(lines) + "\n"


def run(a):
    if not torch.cuda.is_available():
        print("fastsel bench gpu: no CUDA device", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    out = (os.path.join(a.out, "gpu_bench.json"), os.path.join(a.out, "gpu_bench.md"))
    bw = copy_bandwidth()
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "copy_bw": bw}
    print(json.dumps(meta), flush=True)
    rows = []
    if a.quick:
        t = bench_greedy(32768, 128, 2048, "float32", bw, rows, out, meta, single_picks=256, base_picks=32)
        bench_threshold(32768, 128, 2048, "float32", rows, out, meta, t)
        bench_nn(4096, 8192, 128, 10, rows, out, meta)
    else:
        t = bench_greedy(262144, 768, 32768, "float32", bw, rows, out, meta)
        bench_threshold(262144, 768, 32768, "float32", rows, out, meta, t)
        bench_nn(65536, 65536, 768, 10, rows, out, meta)
        bench_greedy(262144, 768, 32768, "float16", bw, rows, out, meta, single_picks=1024, base_picks=64,
                     one_block_picks=2)
    print(markdown({"meta": meta, "rows": rows}))
    return 0
