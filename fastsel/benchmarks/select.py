"""Selector benchmark: every fastsel backend and mode, always beside its baselines in the same run.

Per case it measures, in one run on one machine:
  * the per-pick memory floor: the bytes one pick must read (the whole pool, N*d*itemsize)
    divided by the read bandwidth measured now on that pool (best of fastsel's streaming
    probe and torch.sum) -- the best any one-read-per-pick FPS can do;
  * (a) the plain PyTorch loop (one matrix-vector product per pick);
  * (b) the procedure of the authors' released code (per pick torch.cdist to the new
    centre, torch.minimum, argmax(...).item(); their threshold filter: a Python loop that
    takes the norm of the difference to every accepted feature, per candidate);
  * (c) fpsample's exact fps_sampling and faiss IndexFlatL2, when installed (bench extras);
  * fastsel: cpp single (one read per pick), cpp multi (exact multi-pick passes),
    the PyTorch fallback.
One-read-per-pick methods are timed over a few picks and reported per pick. Output: JSON
(keyed by machine, torch version and commit) and a Markdown table.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .. import _backend
from ..io import save_json, save_text
from ..ops.greedy import greedy
from ..ops.nn import nn
from ..ops.sets import greedy_sets
from ..ops.threshold import default_tau, threshold_decay
from .common import (authors_greedy, authors_threshold, best_time, clean, commit, cpu_name, first_divergence,
                     plain_torch_greedy, plain_torch_nn, try_import)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
# greedy cases: (N, d, n, dtype[, pool]); pool "gauss" (default) or "clustered" (tight clusters, stored
# in random order: what DINOv2 features of a collapsing loop look like)
QUICK = {"greedy": [(65536, 384, 2048, "float32"), (65536, 384, 2048, "float32", "clustered"),
                    (65536, 384, 2048, "float16")],
         "threshold": [(65536, 384, 2048, "float32")],
         "nn": [(16384, 32768, 384, "float32")],
         # sets: (B, N, d, k, pool): torch-quickfps's shape (8 blobs per set) and a point-cloud batch
         "sets": [(8, 10000, 1024, 2500, "blobs"), (32, 2048, 3, 256, "gauss")]}
FULL = {"greedy": [(16384, 384, 1024, "float32"), (65536, 384, 2048, "float32"),
                   (65536, 384, 2048, "float32", "clustered"), (65536, 384, 2048, "float16"),
                   (65536, 768, 4096, "float32"), (65536, 1024, 4096, "float32"), (262144, 384, 8192, "float32"),
                   (262144, 768, 32768, "float16")],
        "threshold": [(65536, 384, 2048, "float32"), (262144, 384, 8192, "float32")],
        "nn": [(16384, 32768, 384, "float32"), (16384, 32768, 768, "float32")],
        "sets": [(8, 10000, 1024, 2500, "blobs"), (32, 2048, 3, 256, "gauss"), (256, 1024, 3, 128, "gauss")]}
SLOW_PICKS = 16       # picks timed for baselines that read the pool once per pick
SINGLE_PICKS = 128    # picks timed for fastsel's one-pick kernels
AUTHORS_BUDGET_S = 20  # time budget for the authors' per-candidate Python threshold loop


@dataclass
class Row:
    op: str
    impl: str
    dtype: str
    N: int
    d: int
    n: int
    seconds: float                      # for all n picks (measured or per-pick x n, see picks_timed)
    vs_plain: float = float("nan")      # plain PyTorch time / this time
    vs_authors: float = float("nan")    # authors' procedure time / this time
    vs_floor: float = float("nan")      # this time / memory-floor time (< 1: faster than any one-read-per-pick FPS)
    picks_per_pass: float = float("nan")
    extra: dict = field(default_factory=dict)


def read_bandwidth(x: torch.Tensor, reps: int = 64) -> tuple[float, str]:
    """Bytes/s of streaming reads of ``x`` (best of fastsel's probe and torch.sum).

    Timed as ``reps`` back-to-back reads, best of 3 -- the same time scale as the
    pick loops it is compared with, so both see the same machine noise.
    """
    xf = x if x.dtype == torch.float32 else x.reshape(-1).view(torch.uint8)[: x.numel() * x.element_size() // 4 * 4].view(torch.float32)
    nbytes = xf.numel() * 4
    cands = {"torch.sum": lambda: xf.sum()}
    if _backend.has_kernel("_stream_read", "cpu"):
        cands["fastsel._stream_read"] = lambda: torch.ops.fastsel._stream_read(xf)

    def loop(f):
        return lambda: [f() for _ in range(reps)]
    times = {k: best_time(loop(f), repeats=3) / reps for k, f in cands.items()}
    k = min(times, key=times.get)
    return nbytes / times[k], k


def _pool(N: int, d: int, dtype: torch.dtype, seed: int = 0, kind: str = "gauss") -> torch.Tensor:
    """A benchmark pool: i.i.d. Gaussian rows, or ``clustered``: 64 tight Gaussian clusters
    (spread 0.1 around N(0, 1) centres), rows of all clusters interleaved in random order."""
    g = torch.Generator().manual_seed(seed)
    if kind == "gauss":
        return torch.randn(N, d, generator=g).to(dtype)
    if kind == "clustered":
        centres = torch.randn(CLUSTERS, d, generator=g)
        return (centres[torch.randint(CLUSTERS, (N,), generator=g)] + 0.1 * torch.randn(N, d, generator=g)).to(dtype)
    raise ValueError(f"unknown pool {kind!r}: gauss or clustered")


CLUSTERS = 64


def anchors(x: torch.Tensor, n: int, nb: int) -> list:
    """Other FPS implementations installed here (bench extras): (label, fn(k) -> picks, one_read_per_pick).
    One-read-per-pick methods are timed over ``nb`` picks; bucket FPS over all n (its cost per pick falls)."""
    out = []
    qf = try_import("torch_quickfps")
    if qf is not None:
        out.append(("torch-quickfps.sample_idx (bucket)", lambda k: qf.sample_idx(x, k, start_idx=0), False))
    tf = try_import("torch_fps")
    if tf is not None:
        mask = torch.ones(1, x.shape[0], dtype=torch.bool)
        out.append(("torch-fps.farthest_point_sampling",
                    lambda k: tf.farthest_point_sampling(x[None], mask, k, start_idx=torch.zeros(1, dtype=torch.long),
                                                         random_start=False)[0], True))
    fps = try_import("fpsample")
    if fps is not None:
        xn = x.numpy()
        out.append(("fpsample.fps_sampling", lambda k: torch.from_numpy(fps.fps_sampling(xn, k, start_idx=0)
                                                                        .astype(np.int64)), True))
    return out


# ------------------------------------------------------------------ cases

def bench_greedy(N, d, n, dtype_name, backends, log, kind: str = "gauss") -> list[Row]:
    x = _pool(N, d, DTYPES[dtype_name], kind=kind)
    ref = greedy(x.double(), n, 0, backend="cpp" if "cpp" in backends else "torch").indices  # float64 picks
    bw, probe = read_bandwidth(x)
    floor_pick = N * d * x.element_size() / bw
    nb = min(n, SLOW_PICKS)
    t_plain = best_time(lambda: plain_torch_greedy(x, nb), 1) / nb
    t_auth = best_time(lambda: authors_greedy(x, nb), 1) / nb
    rows = [Row("greedy", "memory-floor", dtype_name, N, d, n, floor_pick * n,
                extra={"read_GBps": round(bw / 1e9, 2), "probe": probe, "bytes_per_pick": N * d * x.element_size()}),
            Row("greedy", "plain-torch-gemv (a)", dtype_name, N, d, n, t_plain * n, extra={"picks_timed": nb}),
            Row("greedy", "authors-cdist-loop (b)", dtype_name, N, d, n, t_auth * n, extra={"picks_timed": nb})]
    if x.dtype == torch.float32:
        for label, fn, per_pick in anchors(x, n, nb):
            box = {}
            if per_pick:  # one read per pick: fixed cost + per-pick cost, from two pick counts
                k1, k2 = nb, 4 * nb
                t1 = best_time(lambda: fn(k1), 1)
                t2 = best_time(lambda: box.__setitem__("p", fn(k2)), 1)
                t = t1 + max(t2 - t1, 0.0) / (k2 - k1) * (n - k1)
                ex = {"agree_f64": first_divergence(box["p"], ref), "picks_timed": k2, "two_point": [k1, k2]}
            else:
                t = best_time(lambda: box.__setitem__("p", fn(n)), 1)
                ex = {"agree_f64": first_divergence(box["p"], ref)}
            rows.append(Row("greedy", f"{label} (c)", dtype_name, N, d, n, t, extra=ex))
    if "cpp" in backends:
        ns = min(n, SINGLE_PICKS)
        t = best_time(lambda: greedy(x, ns, 0, backend="cpp", mode="single"), 2) / ns
        rows.append(Row("greedy", "fastsel-cpp single", dtype_name, N, d, n, t * n, picks_per_pass=1.0,
                        extra={"picks_timed": ns}))
        box = {}
        t0 = best_time(lambda: box.__setitem__("p", torch.ops.fastsel.greedy(x, n, 0, None, "multi-noprune")), 1)
        passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
        rows.append(Row("greedy", "fastsel-cpp multi, unpruned", dtype_name, N, d, n, t0,
                        picks_per_pass=(picks + 1) / passes, extra={"agree_f64": first_divergence(box["p"][0], ref)}))
        t = best_time(lambda: box.__setitem__("q", greedy(x, n, 0, backend="cpp", mode="multi")), 1)
        passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
        same = bool(torch.equal(box["q"].indices, box["p"][0]))
        rows.append(Row("greedy", "fastsel-cpp multi", dtype_name, N, d, n, t, picks_per_pass=(picks + 1) / passes,
                        extra={"agree_f64": first_divergence(box["q"].indices, ref), "vs_unpruned": t0 / t,
                               "same_as_unpruned": same}))
    if "torch" in backends:
        t = best_time(lambda: greedy(x, nb, 0, backend="torch"), 1) / nb
        rows.append(Row("greedy", "fastsel-torch", dtype_name, N, d, n, t * n, picks_per_pass=1.0,
                        extra={"picks_timed": nb}))
    for r in rows:
        r.vs_plain, r.vs_authors, r.vs_floor = t_plain * n / r.seconds, t_auth * n / r.seconds, r.seconds / (floor_pick * n)
        r.extra["pool"] = kind
        log(r)
    fast = next((r.seconds for r in rows if r.impl == "fastsel-cpp multi"), None)
    if fast:
        for r in rows:
            r.extra["vs_fastsel"] = r.seconds / fast  # > 1: fastsel multi is that many times faster
    return rows


def bench_threshold(N, d, n, dtype_name, backends, log) -> list[Row]:
    """At the default tau0 (the largest distance from the first pick) and at 2 x tau0 (seven more
    decays before the first accept with alpha = 0.9)."""
    x = _pool(N, d, DTYPES[dtype_name])
    tau0 = default_tau(x, 0)  # the default rule, from the first pick (row 0)
    bw, _ = read_bandwidth(x)
    floor_pick = N * d * x.element_size() / bw
    t_greedy = best_time(lambda: greedy(x, n, 0), 1)
    out = [Row("threshold", "fastsel greedy, same N and n", dtype_name, N, d, n, t_greedy)]
    out[0].vs_floor = t_greedy / (floor_pick * n)
    out[0].extra["vs_greedy"] = 1.0
    log(out[0])
    g = torch.Generator().manual_seed(1)
    sub = x[torch.randperm(N, generator=g)[:min(N, 2048)]].float()
    # a small tau, as the released code's fixed one: the set fills in its first pass
    tau_small = float(nn(sub, k=1, exclude_self=True).distances.mean())
    for rule, tau in (("default tau0", tau0), ("2 x tau0", 2 * tau0), ("small: mean 1-NN spacing of 2,048 rows", tau_small)):
        got, secs = authors_threshold(x, n, tau, 0.9, AUTHORS_BUDGET_S)
        t_auth = secs / max(got - 1, 1) * n
        rows = [Row("threshold", "authors-python-loop (b)", dtype_name, N, d, n, t_auth,
                    extra={"accepts_timed": got, "budget_s": AUTHORS_BUDGET_S})]
        if "cpp" in backends:
            if rule == "default tau0":
                ns = min(n, SINGLE_PICKS)
                t = best_time(lambda: threshold_decay(x, ns, 0, tau, 0.9, backend="cpp", mode="single"), 1) / ns
                rows.append(Row("threshold", "fastsel-cpp single", dtype_name, N, d, n, t * n, extra={"picks_timed": ns}))
            box = {}
            for mode in ("chunked", "lazy"):
                t = best_time(lambda: box.__setitem__(mode, threshold_decay(x, n, 0, tau, 0.9, backend="cpp",
                                                                         mode=mode)), 1)
                r = box[mode]
                rows.append(Row("threshold", f"fastsel-cpp {mode}", dtype_name, N, d, n, t,
                                extra={"decays": r.decays, "passes": r.passes}))
            rows[-1].extra["same_as_chunked"] = bool(torch.equal(box["lazy"].indices, box["chunked"].indices)
                                                     and box["lazy"].tau == box["chunked"].tau)
        if "torch" in backends and rule == "default tau0":
            nb = min(n, SLOW_PICKS)
            t = best_time(lambda: threshold_decay(x, nb, 0, tau, 0.9, backend="torch"), 1) / nb
            rows.append(Row("threshold", "fastsel-torch", dtype_name, N, d, n, t * n, extra={"picks_timed": nb}))
        for r in rows:
            r.vs_authors, r.vs_floor = t_auth / r.seconds, r.seconds / (floor_pick * n)
            r.extra["vs_greedy"] = r.seconds / t_greedy
            r.extra["tau_rule"] = rule
            log(r)
        out += rows
    return out


def _sets_pool(B: int, N: int, d: int, kind: str, seed: int = 0) -> torch.Tensor:
    """(B, N, d) float32: i.i.d. Gaussian rows, or ``blobs`` / ``blobs-wide``: per set 8 Gaussian blobs
    (spread 0.1 / 0.4 around N(0, 1) centres), rows in random order. At d = 1,024 the wide blobs' own
    radius is over a quarter of their spacing (a pruning rule once missed them: 4x slower)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "gauss":
        return torch.randn(B, N, d, generator=g)
    spread = {"blobs": 0.1, "blobs-wide": 0.4}[kind]
    c = torch.randn(B, 8, d, generator=g)
    which = torch.randint(8, (B, N), generator=g)
    return torch.gather(c, 1, which[..., None].expand(B, N, d)) + spread * torch.randn(B, N, d, generator=g)


def bench_sets(B, N, d, k, kind, backends, log) -> list[Row]:
    """B independent sets: fastsel.greedy_sets vs fastsel one set at a time vs the batched anchors."""
    x = _sets_pool(B, N, d, kind)
    ref = greedy_sets(x.double(), k, 0).indices  # float64 picks, per set

    def agree(p):  # leading picks equal to float64 FPS, the worst set
        return min(first_divergence(p[b], ref[b]) for b in range(B))
    rows = []
    box = {}
    if "cpp" in backends:
        t = best_time(lambda: box.__setitem__("p", greedy_sets(x, k, 0, backend="cpp").indices), 1)
        rows.append(Row("sets", "fastsel.greedy_sets", "float32", N, d, k, t, extra={"B": B, "agree_f64": agree(box["p"])}))
        t = best_time(lambda: box.__setitem__("p", torch.stack([greedy(x[b], k, 0, backend="cpp").indices
                                                           for b in range(B)])), 1)
        rows.append(Row("sets", "fastsel.greedy, one set after another", "float32", N, d, k, t,
                        extra={"B": B, "agree_f64": agree(box["p"])}))
    qf = try_import("torch_quickfps")
    if qf is not None:
        t = best_time(lambda: box.__setitem__("p", qf.sample_idx(x, k, start_idx=0)), 1)
        rows.append(Row("sets", "torch-quickfps.sample_idx (c)", "float32", N, d, k, t,
                        extra={"B": B, "agree_f64": agree(box["p"])}))
    tf = try_import("torch_fps")
    if tf is not None:
        mask = torch.ones(B, N, dtype=torch.bool)
        st = torch.zeros(B, dtype=torch.long)
        t = best_time(lambda: box.__setitem__("p", tf.farthest_point_sampling(x, mask, k, start_idx=st, random_start=False)), 1)
        rows.append(Row("sets", "torch-fps.farthest_point_sampling (c)", "float32", N, d, k, t,
                        extra={"B": B, "agree_f64": agree(box["p"])}))
    fast = next((r.seconds for r in rows if r.impl == "fastsel.greedy_sets"), None)
    for r in rows:
        r.extra["pool"] = kind
        if fast:
            r.extra["vs_fastsel"] = r.seconds / fast
        log(r)
    return rows


def nn_exactness(n_query=512, d=384, spread=0.05, offset=100.0, seed=0) -> dict:
    """Wrong nearest neighbours (vs float64) on tight clusters far from the origin, per method."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(16, d, generator=g, dtype=torch.float64) + offset
    ref = (centres[torch.randint(16, (4096,), generator=g)]
           + spread * torch.randn(4096, d, generator=g, dtype=torch.float64)).float()
    q = (ref[:n_query].double() + spread * torch.randn(n_query, d, generator=g, dtype=torch.float64)).float()
    truth = torch.cdist(q.double(), ref.double()).argmin(1)
    out = {"queries": n_query, "plain-torch": int((plain_torch_nn(q, ref) != truth).sum()),
           "fastsel": int((nn(q, ref, k=1).indices[:, 0] != truth).sum())}
    faiss = try_import("faiss")
    if faiss is not None:
        index = faiss.IndexFlatL2(d)
        index.add(ref.numpy())
        out["faiss"] = int((torch.from_numpy(index.search(q.numpy(), 1)[1][:, 0]) != truth).sum())
    return out


def bench_nn(Q, R, d, dtype_name, backends, log) -> list[Row]:
    q = _pool(Q, d, DTYPES[dtype_name], 1)
    r = _pool(R, d, DTYPES[dtype_name], 2)
    t_plain = best_time(lambda: plain_torch_nn(q, r), 1)
    rows = [Row("nn", "plain-torch-blocked-mm", dtype_name, Q, d, 1, t_plain, extra={"R": R})]
    faiss = try_import("faiss")
    t_faiss = float("nan")
    if faiss is not None and q.dtype == torch.float32:
        faiss.omp_set_num_threads(torch.get_num_threads())

        def run_faiss():
            index = faiss.IndexFlatL2(d)
            index.add(r.numpy())
            return index.search(q.numpy(), 1)
        t_faiss = best_time(run_faiss, 1)
        rows.append(Row("nn", "faiss IndexFlatL2 (c)", dtype_name, Q, d, 1, t_faiss, extra={"R": R}))
    for be in backends:
        t = best_time(lambda: nn(q, r, k=1, backend=be), 1)
        rows.append(Row("nn", f"fastsel-{be}", dtype_name, Q, d, 1, t, extra={"R": R}))
    wrong = nn_exactness()
    for row in rows:
        row.vs_plain = t_plain / row.seconds
        row.extra["vs_faiss"] = row.seconds / t_faiss if t_faiss == t_faiss else None
        key = {"plain-torch-blocked-mm": "plain-torch", "faiss IndexFlatL2 (c)": "faiss", "fastsel-cpp": "fastsel",
               "fastsel-torch": "fastsel"}.get(row.impl)
        if key in wrong:
            row.extra["wrong_nn_clustered"] = f"{wrong[key]}/{wrong['queries']}"
            row.extra["clustered_case"] = "16 clusters, spread 0.05, centres at 100 + N(0, 1), d=384"
        log(row)
    return rows


def run(grid: dict | None = None, backends=("cpp", "torch"), out_dir: str = "bench/results", log=print) -> dict:
    grid = grid or QUICK
    backends = [b for b in backends if b != "cpp" or _backend.loaded()]
    rows: list[Row] = []
    for case in grid["greedy"]:
        rows += bench_greedy(*case[:4], backends, log, *case[4:])
    for (N, d, n, dt) in grid["threshold"]:
        rows += bench_threshold(N, d, n, dt, backends, log)
    for (Q, R, d, dt) in grid["nn"]:
        rows += bench_nn(Q, R, d, dt, backends, log)
    for case in grid.get("sets", []):
        rows += bench_sets(*case, backends, log)
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": commit(),
        "device": "cpu",
    }
    result = {"meta": meta, "rows": [clean(asdict(r)) for r in rows]}
    os.makedirs(out_dir, exist_ok=True)
    save_json(os.path.join(out_dir, "bench_select.json"), result)
    save_text(os.path.join(out_dir, "bench_select.md"), markdown(result))
    return result


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = ["# fastsel selector benchmark", "",
             f"{m['date']} · {m['machine']} · {m['cpu_count']} cores · {m['threads']} threads · torch {m['torch']}"
             f" · commit {m['commit']}", "",
             "| op | impl | dtype | N | d | n | seconds | × plain (a) | × authors (b) | × floor | picks/pass | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, p=2):
        return "" if v is None else f"{v:.{p}f}"
    for r in result["rows"]:
        ex = r["extra"]
        notes = []
        if ex.get("pool") == "clustered":
            notes.append(f"**clustered pool** ({CLUSTERS} tight clusters)")
        if "B" in ex:
            notes.append(f"B={ex['B']} sets" + (", 8 blobs each" if ex.get("pool") == "blobs" else ""))
        if "two_point" in ex:
            notes.append(f"timed at {ex['two_point'][0]} and {ex['two_point'][1]} picks, extrapolated")
        elif "picks_timed" in ex:
            notes.append(f"{ex['picks_timed']} picks timed")
        if "agree_f64" in ex:
            k = min(r["n"], ex.get("picks_timed", r["n"]))
            notes.append("picks = float64 FPS" if ex["agree_f64"] >= k else
                         f"first {ex['agree_f64']} of {k} picks = float64 FPS")
        if ex.get("vs_fastsel") and r["impl"] not in ("fastsel-cpp multi", "fastsel.greedy_sets"):
            v = ex["vs_fastsel"]
            notes.append(f"fastsel {v:.1f}× faster" if v >= 1 else f"fastsel {1 / v:.1f}× slower")
        if "vs_unpruned" in ex:
            notes.append(f"{ex['vs_unpruned']:.2f}× unpruned, same picks: {ex['same_as_unpruned']}")
        if "read_GBps" in ex:
            notes.append(f"read {ex['read_GBps']} GB/s")
        if ex.get("tau_rule"):
            notes.append(f"τ: {ex['tau_rule']}" + (f", {ex['decays']} decays" if "decays" in ex else ""))
        if ex.get("vs_greedy") is not None and r["op"] == "threshold":
            notes.append(f"{ex['vs_greedy']:.2f}× greedy's time")
        if "same_as_chunked" in ex:
            notes.append(f"same picks and τ as chunked: {ex['same_as_chunked']}")
        if ex.get("vs_faiss") is not None:
            notes.append(f"{ex['vs_faiss']:.2f}× faiss's time")
        if "wrong_nn_clustered" in ex:
            notes.append(f"wrong 1-NN on far clustered data: {ex['wrong_nn_clustered']}")
        if "accepts_timed" in ex and ex["accepts_timed"] < r["n"]:
            notes.append(f"lower bound: {ex['accepts_timed']} accepts in {ex['budget_s']} s, extrapolated linearly")
        if "R" in ex:
            notes.insert(0, f"Q={r['N']} R={ex['R']}")
        lines.append(f"| {r['op']} | {r['impl']} | {r['dtype']} | {r['N']} | {r['d']} | {r['n']} | {f(r['seconds'], 3)}"
                     f" | {f(r['vs_plain'])} | {f(r['vs_authors'])} | {f(r['vs_floor'])} | {f(r['picks_per_pass'], 1)}"
                     f" | {'; '.join(notes)} |")
    lines += ["", "seconds: for all n picks; rows marked 'picks timed' read the pool once per pick and are timed over "
              "that many picks, times n. × plain / × authors: that baseline's time divided by this one. × floor: this "
              "time divided by the memory floor (one read of the pool per pick at the read bandwidth measured in the "
              "same run): below 1 is faster than any one-read-per-pick FPS can be.", ""]
    return "\n".join(lines)
