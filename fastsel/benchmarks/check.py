"""``fastsel bench check``: no benchmark goes backwards.

A fixed set of cases, each timed against its anchor **in the same run** (torch-quickfps, the unpruned
kernel, a torch GEMM of the same shape, the authors' threshold loop, faiss, apricot, the literal
references, vendi-score), so each case yields ratios (anchor time / fastsel time: higher is better)
that do not depend on how fast the machine is today. Each ratio is compared with the committed
baseline (bench/baseline.json: case, shape, ratio, commit, machine, date); the check fails when a
ratio falls by more than the tolerance, when pruning is slower than the unpruned kernel by more than
5 %, or when fastsel's picks differ from the unpruned kernel's.

    fastsel bench check [--quick] [--dry-run] [--tolerance 0.40] [--update --why TEXT]

--quick: a subset of the cases (<= 5 min on 2 cores); the full set: <= 20 min. --dry-run: every case
of the chosen set at tiny shapes and the baseline's format checked, no timing compared (CI).
--update: write this run's ratios as the new baseline (with the commit and the reason).
"""
from __future__ import annotations

import datetime as _dt
import glob
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

import fastsel
from .. import _backend, data, features
from .. import diversity as D
from .. import reference as R
from ..errors import FastselError
from .common import timed_result
from ..io import save_json
from ..ops.greedy import greedy
from ..ops.nn import nn
from ..ops.threshold import default_tau, threshold_decay
from . import selectors as S
from .common import authors_threshold, commit, cpu_name, try_import
from .prune import sweep_pool
from .select import _sets_pool

BASELINE = os.path.join("bench", "baseline.json")
# a ratio may fall this much (share of the baseline) before the check fails: two runs of one commit on
# this project's shared 2-core machine (2026-12-07, bench/README.md "Noise") differed by up to 33 % (the
# millisecond-scale ragged fps case), 26 % (65,536 x 384, 96 clusters) and 42 % (the authors'
# threshold loop, extrapolated from a time budget); the regression this check exists for was -75 %
TOLERANCE = 0.40
PRUNE_FLOOR = 0.95    # pruned greedy must be at least this fast relative to the unpruned kernel
DRY_DIV = 32          # --dry-run: row counts divided by this (picks too), the harness only


@dataclass
class Case:
    name: str
    quick: bool
    shape: dict
    run: Callable[[dict], dict]   # shape -> {"ratios": {anchor: ratio}, "seconds": {...}, "checks": {...}}
    floors: dict = field(default_factory=dict)  # anchor -> an absolute lower bound on the ratio


# ------------------------------------------------------------------ timing

def _best(fn: Callable, reps: int) -> tuple:
    """(the last result, the best of ``reps`` wall times) after one untimed warm-up call when reps > 1."""
    return timed_result(fn, reps=reps, warmup=1 if reps > 1 else 0)


def _pair(fast: Callable, anchor: Callable, reps: int = 3, anchor_reps: int = 1) -> tuple:
    """Time fastsel and an anchor alternately (A B A B ...), each its best: (fast result, anchor
    result, fastsel seconds, anchor seconds)."""
    fr, ar = fast(), None  # warm-up of fastsel (the anchors are warmed by the caller where they compile)
    tf = ta = float("inf")
    for i in range(max(reps, anchor_reps)):
        if i < reps:
            t0 = time.perf_counter()
            fr = fast()
            tf = min(tf, time.perf_counter() - t0)
        if i < anchor_reps:
            t0 = time.perf_counter()
            ar = anchor()
            ta = min(ta, time.perf_counter() - t0)
    return fr, ar, tf, ta


# ------------------------------------------------------------------ cases

def _pool(spec: str, N: int, d: int) -> torch.Tensor:
    """A pool of the prune sweep; the MNIST pools (whose size is the data's) cut to N rows when smaller
    (--dry-run)."""
    if spec.startswith("mnist") and N < 60000:
        im = data.load("mnist", n=N, seed=0).images
        if spec == "mnist-lenet":
            x = features.embed(im, features.get("lenet", "cpu"), quiet=True)
        else:
            x = im.reshape(len(im), -1) / np.float32(255)
        return torch.from_numpy(np.ascontiguousarray(x, np.float32))
    return torch.from_numpy(np.ascontiguousarray(sweep_pool(spec, N, d)))


def _greedy_case(x: torch.Tensor, n: int) -> dict:
    """fastsel.greedy (pruned multi-pick) against the unpruned kernel and torch-quickfps."""
    box = {}
    fast = lambda: greedy(x, n, 0, backend="cpp").indices  # noqa: E731
    unpruned = lambda: torch.ops.fastsel.greedy(x, n, 0, None, "multi-noprune")[0]  # noqa: E731
    p, q, tf, tu = _pair(fast, unpruned, 5, 5)  # alternated, best of 5 each: the 5 % floor needs it
    out = {"ratios": {"unpruned": tu / tf}, "seconds": {"fastsel": tf, "unpruned": tu},
           "checks": {"same picks as unpruned": bool(torch.equal(p, q))}}
    qf = try_import("torch_quickfps")
    if qf is not None and x.dtype == torch.float32:
        _, ta = _best(lambda: box.__setitem__("q", qf.sample_idx(x, n, start_idx=0)), 1)
        out["ratios"]["torch-quickfps"] = ta / tf
        out["seconds"]["torch-quickfps"] = ta
    return out


def _pool_case(spec: str) -> Callable:
    return lambda s: _greedy_case(_pool(spec, s["N"], s["d"]), s["n"])


def _large_set(s: dict) -> dict:
    return _greedy_case(_sets_pool(1, s["N"], s["d"], "blobs-wide")[0].contiguous(), s["n"])


def _sets(kind: str) -> Callable:
    """One (B, N, d) call of fastsel.greedy against torch-quickfps (and torch-fps) on the same batch."""
    def run(s):
        x = _sets_pool(s["B"], s["N"], s["d"], kind)
        k = s["n"]
        fast = lambda: fastsel.greedy(x, k, 0).indices  # noqa: E731
        out = {"ratios": {}, "seconds": {}, "checks": {}}
        qf = try_import("torch_quickfps")
        if qf is not None:
            _, _, tf, ta = _pair(fast, lambda: qf.sample_idx(x, k, start_idx=0), 3, 1)
            out["ratios"]["torch-quickfps"], out["seconds"]["torch-quickfps"] = ta / tf, ta
        tfps = try_import("torch_fps")
        if tfps is not None and s["d"] == 3:
            mask, st = torch.ones(s["B"], s["N"], dtype=torch.bool), torch.zeros(s["B"], dtype=torch.long)
            _, _, tf2, ta = _pair(fast, lambda: tfps.farthest_point_sampling(x, mask, k, start_idx=st,
                                                                               random_start=False), 3, 2)
            out["ratios"]["torch-fps"], out["seconds"]["torch-fps"] = ta / tf2, ta
        if not out["ratios"]:  # no anchor installed: fastsel one set after another
            _, _, tf, ta = _pair(fast, lambda: [greedy(x[b], k, 0).indices for b in range(s["B"])], 3, 1)
            out["ratios"]["one set at a time"], out["seconds"]["one set at a time"] = ta / tf, ta
        out["seconds"]["fastsel"] = tf if qf is not None or tfps is None or s["d"] != 3 else tf2
        return out
    return run


def _ptr(s: dict) -> dict:
    """fastsel.fps over ragged sets (ptr) against fastsel.greedy called once per set."""
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(s["N"] // 2, s["N"] * 3 // 2, (s["B"],), generator=g)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    x = torch.randn(int(ptr[-1]), s["d"], generator=g)
    ratio = s["ratio"]
    fast = lambda: fastsel.fps(x, ptr=ptr, ratio=ratio, random_start=False)  # noqa: E731

    def loop():
        return [greedy(x[int(ptr[b]):int(ptr[b + 1])], max(1, int(np.ceil(ratio * int(sizes[b])))), 0).indices
                for b in range(s["B"])]
    _, _, tf, ta = _pair(fast, loop, 3, 2)
    return {"ratios": {"greedy per set": ta / tf}, "seconds": {"fastsel": tf, "greedy per set": ta}, "checks": {}}


def _threshold(rule: str) -> Callable:
    """The threshold filter (chunked default) against the authors' per-candidate Python loop
    (extrapolated from the accepts it makes in a time budget)."""
    def run(s):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(s["N"], s["d"], generator=g)
        n = s["n"]
        tau0 = default_tau(x, 0)
        if rule == "small":
            sub = x[torch.randperm(s["N"], generator=g)[:min(s["N"], 2048)]]
            tau = float(nn(sub, k=1, exclude_self=True).distances.mean())
        else:
            tau = tau0
        _, tf = _best(lambda: threshold_decay(x, n, 0, tau, 0.9, backend="cpp"), 3)
        got, secs = authors_threshold(x, n, tau, 0.9, s["budget"])
        ta = secs / max(got - 1, 1) * n
        return {"ratios": {"authors' loop": ta / tf}, "seconds": {"fastsel": tf, "authors' loop (extrapolated)": ta},
                "checks": {}}
    return run


def _knn(s: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(s["Q"], s["d"], generator=g), torch.randn(s["R"], s["d"], generator=g)
    fast = lambda: nn(q, r, k=1, backend="cpp")  # noqa: E731
    _, _, tf, tg = _pair(fast, lambda: q @ r.T, 3, 3)
    out = {"ratios": {"torch GEMM (floor)": tg / tf}, "seconds": {"fastsel": tf, "torch GEMM": tg}, "checks": {}}
    faiss = try_import("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(torch.get_num_threads())

        def fa():
            index = faiss.IndexFlatL2(s["d"])
            index.add(r.numpy())
            return index.search(q.numpy(), 1)
        _, _, tf2, ta = _pair(fast, fa, 3, 2)
        out["ratios"]["faiss IndexFlatL2"], out["seconds"]["faiss"] = ta / tf2, ta
    return out


def _diversity(op: str) -> Callable:
    """The diversity selectors against their libraries (fastsel.benchmarks.selectors: apricot for
    facility, Chen et al.'s fast MAP for DPP, the published SemDeDup rule, vendi-score) or, for
    herding, the literal torch reference (fastsel.reference.herding)."""
    def run(s):
        g = np.random.default_rng(0)
        x64 = g.standard_normal((s["N"], s["d"]))
        x = torch.from_numpy(x64.astype(np.float32))
        n = s["n"]
        if op == "herding":
            def literal():  # the definition on the N x N kernel (built blockwise: the anchors' builder)
                K = S.rbf(x64, h)
                mu, picks, acc = K.mean(0), [], np.zeros(len(K))
                for t in range(n):
                    score = mu - acc / (t + 1)
                    score[picks] = -np.inf
                    j = R._first_tied(score, 1)
                    picks.append(j)
                    acc += K[:, j]
                return picks
            h = D.herding(x, 2)[1]["bandwidth"]
            fp, ap, tf, ta = _pair(lambda: D.herding(x, n)[0], literal, 3, 1)
            return {"ratios": {"literal reference": ta / tf}, "seconds": {"fastsel": tf, "reference": ta},
                    "checks": {"same picks as the literal reference": fp.tolist() == ap}}
        if op == "facility":
            apricot_cls, _, _ = S._anchors()
            rows = S._facility_rows(x, x64, n, apricot_cls, None)[:1]
        elif op == "dpp":
            rows = [S._dpp_row(x, x64, n)]
        elif op == "semdedup":
            rows = [S._semdedup_row(x, n)]
        else:  # vendi
            _, _, vendi = S._anchors()
            rows = S._vendi_rows(x, x64, vendi)[:1]
        r = rows[0]
        r["anchor"] = {"facility": "apricot (precomputed, lazy)", "dpp": "fast greedy MAP (numpy)",
                       "semdedup": "published rule (full matrices)", "vendi": "vendi-score score_K"}[op]
        if not r.get("ratio"):
            return {"ratios": {}, "seconds": {"fastsel": r["fastsel_s"]}, "checks": {},
                    "skipped": "its anchor is not installed (pip install fastsel[bench])"}
        return {"ratios": {r["anchor"]: r["ratio"]}, "seconds": {"fastsel": r["fastsel_s"], "anchor": r["anchor_s"]},
                "checks": {}, "agree": r["agree"]}
    return run


_G = dict(N=65536, d=384, n=2048)


def cases() -> list:
    """Every case: (name, in --quick, shape, run). Shapes of the issue that set the bar (#38)."""
    out = [Case("greedy gauss", True, dict(_G), _pool_case("gauss"), {"unpruned": PRUNE_FLOOR})]
    for kind in ("equal", "varied"):
        for c in (16, 64, 96, 256, 1024, 4096):
            out.append(Case(f"greedy {kind}:{c}", (kind, c) in (("equal", 64), ("equal", 96), ("varied", 1024)),
                            dict(_G), _pool_case(f"{kind}:{c}"), {"unpruned": PRUNE_FLOOR}))
    for c in (16, 64):
        out.append(Case(f"greedy nested:{c}", c == 16, dict(_G), _pool_case(f"nested:{c}"), {"unpruned": PRUNE_FLOOR}))
    out += [
        Case("greedy mnist pixels", False, dict(N=60000, d=784, n=2048), _pool_case("mnist"), {"unpruned": PRUNE_FLOOR}),
        Case("greedy mnist lenet", False, dict(N=60000, d=84, n=2048), _pool_case("mnist-lenet"),
             {"unpruned": PRUNE_FLOOR}),
        Case("sets quickfps grid", True, dict(B=8, N=10000, d=1024, n=2500), _sets("blobs"),
             {"torch-quickfps": 10.0}),  # issue #38's bar
        Case("sets quickfps grid, wide blobs", True, dict(B=8, N=10000, d=1024, n=2500), _sets("blobs-wide"),
             {"torch-quickfps": 10.0}),
        Case("sets point clouds", True, dict(B=32, N=2048, d=3, n=512), _sets("gauss")),
        Case("greedy one large set", True, dict(N=10000, d=1024, n=2500), _large_set, {"unpruned": PRUNE_FLOOR}),
        Case("fps ptr ragged", True, dict(B=16, N=4096, d=3, ratio=0.25), _ptr),
        Case("threshold default tau", True, dict(N=65536, d=384, n=2048, budget=3.0), _threshold("default")),
        Case("threshold small tau", False, dict(N=65536, d=384, n=2048, budget=3.0), _threshold("small")),
        Case("knn", True, dict(Q=8192, R=16384, d=384), _knn),
        Case("knn large", False, dict(Q=16384, R=32768, d=384), _knn),
    ]
    for op, q in (("facility", True), ("dpp", True), ("herding", False), ("semdedup", False), ("vendi", False)):
        out.append(Case(f"selector {op}", q, dict(N=5000, d=384, n=200), _diversity(op)))
    return out


def _dry(shape: dict) -> dict:
    """The tiny shapes of --dry-run: rows and picks divided, dimensions kept small."""
    s = dict(shape)
    for k in ("N", "Q", "R"):
        if k in s:
            s[k] = max(64, s[k] // DRY_DIV)
    if "n" in s:
        s["n"] = max(4, min(s["n"] // DRY_DIV, s.get("N", 1 << 30) // 4))
    if "d" in s and s["d"] > 64:
        s["d"] = 64
    if "B" in s:
        s["B"] = min(s["B"], 4)
    if "budget" in s:
        s["budget"] = 0.2
    return s


# ------------------------------------------------------------------ baseline and verdict

def load_baseline(path: str) -> dict:
    """The committed baseline, checked: {"meta": {commit, machine, date, why}, "quick"/"full": {case: {...}}}."""
    try:
        with open(path, encoding="utf-8") as f:
            b = json.load(f)
    except FileNotFoundError:
        raise FastselError(f"{path}: no baseline (run `fastsel bench check --update --why ...` once)") from None
    except (OSError, ValueError) as e:
        raise FastselError(f"{path}: not a readable baseline ({e})") from None
    meta = b.get("meta") if isinstance(b, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str) for k in ("commit", "machine", "date", "why")):
        raise FastselError(f"{path}: the baseline has no meta with commit, machine, date and why")
    for mode in ("quick", "full"):
        rows = b.get(mode, {})
        if not isinstance(rows, dict) or not all(isinstance(v, dict) and isinstance(v.get("ratios"), dict)
                                                 and isinstance(v.get("shape"), dict) for v in rows.values()):
            raise FastselError(f"{path}: '{mode}' is not a mapping of case -> {{shape, ratios}}")
    return b


def machine_slug(name: str) -> str:
    """'Intel(R) Xeon(R) Processor' -> 'intel-r-xeon-r-processor': a baseline file's name part."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def default_baseline(machine: Optional[str] = None, folder: str = "bench") -> str:
    """The baseline for this machine: the bench/baseline*.json whose meta.machine is this CPU's name (ratios
    against anchors can depend on the CPU: torch-fps's point-cloud ratio is 16.4 on the 2-core AMD EPYC
    and 8.3 on the 2-core Xeon for the same code), else bench/baseline.json."""
    machine = cpu_name() if machine is None else machine
    for path in sorted(glob.glob(os.path.join(folder, "baseline*.json"))):
        if _machine_of(path) == machine:
            return path
    return os.path.join(folder, "baseline.json")


def _machine_of(path: str) -> Optional[str]:
    """The CPU model a baseline file was measured on (None: unreadable or none recorded)."""
    try:
        with open(path, encoding="utf-8") as f:
            return (json.load(f).get("meta") or {}).get("machine")
    except (OSError, ValueError, AttributeError):
        return None


def baseline_for_update(machine: Optional[str] = None, folder: str = "bench") -> str:
    """Where --update writes without --baseline: this machine's baseline file (a new
    bench/baseline-<machine>.json on a machine that has none), never another machine's."""
    machine = cpu_name() if machine is None else machine
    path = default_baseline(machine, folder)
    return path if _machine_of(path) == machine else os.path.join(folder, f"baseline-{machine_slug(machine)}.json")


def verdict(name: str, shape: dict, got: dict, base: Optional[dict], tol: float, floors: dict) -> list:
    """(anchor, baseline ratio, now, change, ok, why) rows for one case."""
    out = []
    for k, v in got.get("checks", {}).items():
        out.append((k, None, v, None, bool(v), "" if v else "failed"))
    bratios = (base or {}).get("ratios", {}) if base and base.get("shape") == shape else {}
    for anchor, r in got["ratios"].items():
        b = bratios.get(anchor)
        ok, why = True, ""
        if b is not None and r < b * (1 - tol):
            ok, why = False, f"fell {1 - r / b:.0%} (> {tol:.0%})"
        if anchor in floors and r < floors[anchor]:
            ok, why = False, (why + "; " if why else "") + f"under {floors[anchor]} x {anchor}"
        if b is None:
            why = why or "no baseline for this shape"
        out.append((anchor, b, r, (r / b - 1) if b else None, ok, why))
    return out


def run(quick: bool = False, dry_run: bool = False, baseline: Optional[str] = None, tolerance: float = TOLERANCE,
        update: bool = False, why: Optional[str] = None, only: Optional[str] = None, log=print) -> int:
    """Run the check; returns the exit status (0: no case fell past the tolerance). ``baseline`` None:
    this machine's (:func:`default_baseline`; with ``update``, :func:`baseline_for_update`)."""
    if baseline is None:
        baseline = baseline_for_update() if update else default_baseline()
    if not 0 < tolerance < 1:
        raise FastselError(f"--tolerance must be in (0, 1), got {tolerance}")
    if update and not (why or "").strip():
        raise FastselError("--update needs --why: the baseline moves only with a stated reason")
    if update and dry_run:
        raise FastselError("--update and --dry-run together: a dry run's tiny shapes are no baseline")
    if not _backend.loaded():
        raise FastselError("bench check times the compiled kernels: fastsel._C is not loaded (fastsel info)")
    mode = "quick" if quick else "full"
    empty = {"meta": {}, "quick": {}, "full": {}}
    base = load_baseline(baseline) if (os.path.exists(baseline) or not (update or dry_run)) else empty
    if only is not None and not only.strip():
        raise FastselError("--only '': give part of a case's name")
    chosen = [c for c in cases() if (c.quick or not quick) and (only is None or only in c.name)]
    if not chosen:
        raise FastselError(f"no case matches {only!r}: " + ", ".join(c.name for c in cases()))
    results, bad = {}, 0
    t_all = time.perf_counter()
    bm = (base.get("meta") or {}).get("machine")
    if bm:
        log(f"baseline: {baseline} (commit {base['meta'].get('commit')}, {bm})")
        if bm != cpu_name():
            log(f"note: the baseline was measured on {bm!r}, this is {cpu_name()!r}: ratios against anchors can "
                "depend on the CPU (bench/README.md, Regression check)")
    log(f"{'case':28s} {'anchor':34s} {'baseline':>9s} {'now':>9s} {'change':>8s}  verdict")
    for c in chosen:
        shape = _dry(c.shape) if dry_run else c.shape
        t0 = time.perf_counter()
        try:
            got = c.run(shape)
        except ImportError as e:  # an optional data set or anchor missing; fastsel's own import broken: a failure
            if (e.name or "").split(".")[0] == "fastsel":
                got = {"ratios": {}, "seconds": {}, "checks": {f"ran (ImportError: {e})": False}}
            else:
                got = {"ratios": {}, "seconds": {}, "checks": {}, "skipped": str(e)}
        except (Exception, MemoryError) as e:  # noqa: BLE001 -- a case that breaks fails; the others still run
            got = {"ratios": {}, "seconds": {}, "checks": {f"ran ({type(e).__name__}: {e})": False}}
        got["wall_s"] = time.perf_counter() - t0
        results[c.name] = {"shape": shape, **got}
        if got.get("skipped"):
            log(f"{c.name:28s} skipped: {got['skipped']}")
            continue
        for anchor, b, r, ch, ok, why_ in verdict(c.name, shape, got, base.get(mode, {}).get(c.name), tolerance,
                                                  c.floors):
            if dry_run and anchor in got["ratios"]:  # tiny shapes: the timings mean nothing, the checks do
                ok, why_ = True, "dry run"
            bad += not ok
            fb = "" if b is None else f"{b:.3g}"
            fr = f"{r:.3g}" if isinstance(r, float) else str(r)
            fc = "" if ch is None else f"{ch:+.0%}"
            log(f"{c.name:28s} {anchor:34s} {fb:>9s} {fr:>9s} {fc:>8s}  {'ok' if ok else 'FAIL'} {why_}".rstrip())
    log(f"{len(chosen)} cases in {time.perf_counter() - t_all:.0f} s; {bad} failed"
        + (" (dry run: timings not compared)" if dry_run else ""))
    broken = [k for k, v in results.items() if not all(v.get("checks", {}).values())]
    if update and broken:
        raise FastselError(f"--update refused: {', '.join(broken)} crashed or picked differently from the unpruned "
                           "kernel; a baseline records timings of correct runs only")
    if update:
        meta = {"commit": commit(), "machine": cpu_name(), "cpu_count": os.cpu_count(),
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "why": why.strip(),
                "tolerance": tolerance}
        new = {"meta": meta, "quick": dict(base.get("quick", {})), "full": dict(base.get("full", {}))}
        new[mode].update({k: {"shape": v["shape"], "ratios": v["ratios"], "seconds": v["seconds"],
                              "commit": meta["commit"], "date": meta["date"]}
                          for k, v in results.items() if v["ratios"]})
        if mode == "full":  # the quick cases are a subset with the same shapes: keep them in step
            new["quick"].update({c.name: new["full"][c.name] for c in chosen if c.quick and c.name in new["full"]})
        save_json(baseline, new)
        log(f"baseline written: {baseline} (commit {meta['commit']}, {meta['machine']})")
    return 1 if bad else 0


def baseline_markdown(b: dict, mode: str = "full") -> str:
    """The baseline as the Markdown table docs/benchmarks.md carries (a test keeps the two equal)."""
    m = b["meta"]
    lines = [f"`fastsel bench check` at commit {m['commit']}, {m['date']}, {m['machine']}, "
             f"{m.get('cpu_count', '?')} cores, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}; "
             "ratio = anchor's time / fastsel's time in the same run (> 1: fastsel faster).", "",
             "| case | shape | anchor | ratio | fastsel s |", "|---|---|---|---|---|"]
    for name, v in b[mode].items():
        shape = ", ".join(f"{k}={x:,}" if isinstance(x, int) else f"{k}={x}" for k, x in v["shape"].items())
        for anchor, r in v["ratios"].items():
            lines.append(f"| {name} | {shape} | {anchor} | {r:.2f} | {v['seconds'].get('fastsel', float('nan')):.3f} |")
    return "\n".join(lines) + "\n"
