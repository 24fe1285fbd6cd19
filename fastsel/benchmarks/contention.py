"""fastsel on a busy machine: the same work with and without one CPU-bound competitor process.

OpenMP threads that spin-wait at a barrier burn the time slice of a core a competitor holds: on
a 2-core machine a kernel with a barrier per pick ran 6-90x slower than on one thread. fastsel
now sets OMP_WAIT_POLICY=PASSIVE when it is imported first (the CLI always is) unless the user
set OMP_WAIT_POLICY or FASTSEL_OMP_WAIT_POLICY=default ("before" below).

Per workload, best of --repeats, each in a fresh process, timed inside the process:
  idle:  fastsel's default  vs  "before" (libgomp's default wait policy)   goal: within 5 %
  busy:  fastsel's default  vs  OMP_NUM_THREADS=1 in the same minutes      goal: <= 1.5x

    fastsel bench contention [--repeats 3] [--out bench/results/contention]
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastsel.io import save_json, save_text


WORK = {
    "select greedy 65536x384 n=1024 (multi-pick)": (
        "import numpy as np, fastsel, time; x = np.load({pool!r}); t = time.perf_counter(); "
        "fastsel.greedy(x, 1024, 0); print(time.perf_counter() - t)"),
    "select greedy 65536x384 n=256 (one pick per read)": (
        "import numpy as np, fastsel, time; x = np.load({pool!r}); t = time.perf_counter(); "
        "fastsel.greedy(x, 256, 0, mode='single'); print(time.perf_counter() - t)"),
    "threshold 65536x384 n=1024": (
        "import numpy as np, fastsel, time; x = np.load({pool!r}); t = time.perf_counter(); "
        "fastsel.threshold_decay(x, 1024, 0); print(time.perf_counter() - t)"),
    "nn 8192 x 32768 x 384": (
        "import numpy as np, fastsel, time; x = np.load({pool!r}); t = time.perf_counter(); "
        "fastsel.nn(x[:8192], x[:32768]); print(time.perf_counter() - t)"),
    "loop training: 20 steps, smoke UNet, batch 32": (
        "import numpy as np, fastsel, time, tempfile; from fastsel.loop.config import LoopConfig; "
        "from fastsel.loop import train as MD; ims = (np.random.default_rng(0).random((64, 32, 32, 1)) * 255)"
        ".astype(np.uint8); cfg = LoopConfig(dataset='x', unet='tiny', train_steps=25, batch_size=32, "
        "ckpt_every=10**6); d = tempfile.mkdtemp(); "
        "ts = []; MD.train(cfg, ims, np.zeros(64, np.int64), 1, d, 0, lambda s, T, l: ts.append(time.perf_counter())); "
        "print((ts[-1] - ts[4]) / 20 * 20)"),
}

SETTINGS = {"fastsel default": {}, "before (libgomp default)": {"FASTSEL_OMP_WAIT_POLICY": "default"},
            "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"}}


def one(code: str, env: dict) -> float:
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    e.update(env)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=900)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    return float(p.stdout.strip().splitlines()[-1])


def competitor():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run(a):
    tmp = tempfile.mkdtemp()
    pool = os.path.join(tmp, "pool.npy")
    np.save(pool, np.random.default_rng(0).standard_normal((65536, 384)).astype(np.float32))
    rows = []
    for name, code in WORK.items():
        if a.only and a.only not in name:
            continue
        code = code.format(pool=pool)
        res = {}
        for busy in (False, True):
            comp = competitor() if busy else None
            try:
                time.sleep(0.3 if busy else 0)
                for sname, env in SETTINGS.items():
                    res[(busy, sname)] = min(one(code, env) for _ in range(a.repeats))
            finally:
                if comp is not None:
                    comp.kill()
                    comp.wait()
        r = {"work": name, **{f"{'busy' if b else 'idle'} / {s}": v for (b, s), v in res.items()}}
        r["idle: default / before"] = res[(False, "fastsel default")] / res[(False, "before (libgomp default)")]
        r["busy: default / 1 thread"] = res[(True, "fastsel default")] / res[(True, "OMP_NUM_THREADS=1")]
        r["busy: before / 1 thread"] = res[(True, "before (libgomp default)")] / res[(True, "OMP_NUM_THREADS=1")]
        print(json.dumps(r), flush=True)
        rows.append(r)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(), "repeats": a.repeats}
    lines = [f"# fastsel under contention ({meta['date']}, {meta['cpus']} cores, best of {a.repeats}, seconds)", "",
             "| work | idle: default | idle: before | **idle ratio** (goal <= 1.05) | busy: default | busy: before | "
             "busy: 1 thread | **busy: default / 1 thread** (goal <= 1.5) | busy: before / 1 thread |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['work']} | {r['idle / fastsel default']:.3f} | {r['idle / before (libgomp default)']:.3f} | "
                     f"{r['idle: default / before']:.2f} | {r['busy / fastsel default']:.3f} | "
                     f"{r['busy / before (libgomp default)']:.3f} | {r['busy / OMP_NUM_THREADS=1']:.3f} | "
                     f"{r['busy: default / 1 thread']:.2f} | {r['busy: before / 1 thread']:.2f} |")
    md = "\n".join(lines) + "\n"
    os.makedirs(a.out, exist_ok=True)
    save_json(os.path.join(a.out, "contention.json"), {"meta": meta, "rows": rows})
    save_text(os.path.join(a.out, "contention.md"), md)
    print(md)
