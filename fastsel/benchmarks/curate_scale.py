"""``fastsel bench curate``: ``fastsel curate`` on a synthetic WebDataset collection, one process and
torchrun ranks side by side: embedding img/s, selection seconds, peak RSS per rank, and whether the
outputs (selected.csv, the subset's bytes, embeddings.npy) are identical.

The collection: ``images`` RGB PNGs of ``side`` x ``side`` pixels in tar shards of 10,000 samples
(img2dataset's layout: key.png, key.txt, key.json), drawn from 64 colour clusters with noise, written
once into ``--work`` and reused. The features are ``pixels`` (offline, no network: the embedding rate
is decoding plus a copy, the floor of any extractor's rate).
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np

from ..io import save_json, save_text

PER_SHARD = 10000


def make_collection(folder: str, images: int, side: int, seed: int = 0) -> str:
    """Write the shards (skipped when a complete set is there); returns the brace spec."""
    from PIL import Image  # optional: Pillow (the data extra)
    shards = (images + PER_SHARD - 1) // PER_SHARD
    spec = os.path.join(folder, "{%05d..%05d}.tar" % (0, shards - 1))
    done = os.path.join(folder, f"complete-{images}-{side}-{seed}")
    if os.path.exists(done):
        return spec
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 256, size=(64, 1, 1, 3))
    for s in range(shards):
        lo, hi = s * PER_SHARD, min(images, (s + 1) * PER_SHARD)
        c = rng.integers(0, 64, size=hi - lo)
        imgs = np.clip(centres[c] + rng.normal(0, 24, size=(hi - lo, side, side, 3)), 0, 255).astype(np.uint8)
        tmp = os.path.join(folder, f".{s:05d}.tar.tmp")
        with tarfile.open(tmp, "w") as tf:
            for i, a in enumerate(imgs):
                key = f"{lo + i:09d}"
                b = io.BytesIO()
                Image.fromarray(a).save(b, format="PNG")
                for ext, data in (("png", b.getvalue()), ("txt", f"cluster {int(c[i])}".encode()),
                                  ("json", json.dumps({"key": key, "cluster": int(c[i])}).encode())):
                    ti = tarfile.TarInfo(f"{key}.{ext}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        os.replace(tmp, os.path.join(folder, f"{s:05d}.tar"))
        print(f"collection: shard {s + 1}/{shards} written", file=sys.stderr)
    open(done, "w").close()
    return spec


def _digest(out: str) -> dict:
    h = {}
    for name in ("selected.csv", "embeddings.npy", "rows.npy"):
        with open(os.path.join(out, name), "rb") as f:
            h[name] = hashlib.sha256(f.read()).hexdigest()[:16]
    sub = hashlib.sha256()
    for dirpath, _, names in sorted(os.walk(os.path.join(out, "subset"))):
        for nm in sorted(names):
            with open(os.path.join(dirpath, nm), "rb") as f:
                sub.update(nm.encode() + f.read())
    h["subset"] = sub.hexdigest()[:16]
    return h


def run(a) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    spec = make_collection(os.path.join(a.work, "collection"), a.images, a.side)
    rows = []
    for w in a.ranks:
        out = os.path.join(a.work, f"out-{w}")
        if os.path.exists(out):
            shutil.rmtree(out)
        cmd = ["curate", spec, "-n", str(a.n), "--features", "pixels", "--out", out, "--json", "--quiet",
               "--shard-rows", str(a.shard_rows)]
        if w == 1:
            cmd = [sys.executable, "-m", "fastsel", *cmd]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(w), "--master-addr",
                   "127.0.0.1", "--master-port", str(29400 + w), "-m", "fastsel", "--", *cmd]
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // w)))
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"curate with {w} rank(s) failed:\n{p.stderr[-3000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append({"ranks": w, "wall_seconds": wall, "embed_img_per_s": r["embedding"]["img_per_s"],
                     "embed_seconds": r["embedding"]["seconds"], "select_seconds": r["select_seconds"],
                     "peak_rss_mib": r["peak_rss_mib"], "readable": r["readable"], "digest": _digest(out)})
        print(f"{w} rank(s): {wall:.1f} s", file=sys.stderr)
    same = all(r["digest"] == rows[0]["digest"] for r in rows)
    res = {"meta": {"date": datetime.date.today().isoformat(), "commit": commit or None, "machine": platform.processor()
                    or platform.machine(), "cpu_count": os.cpu_count(), "images": a.images, "side": a.side, "n": a.n,
                    "shard_rows": a.shard_rows}, "runs": rows, "identical": same}
    os.makedirs(a.out_dir, exist_ok=True)
    save_json(os.path.join(a.out_dir, "bench_curate.json"), res)
    md = [f"`fastsel curate` on {a.images:,} PNGs ({a.side}x{a.side}) in WebDataset shards, n = {a.n:,}, pixels "
          f"features; {res['meta']['cpu_count']} cores, commit {commit}, {res['meta']['date']}", "",
          "| ranks | wall s | embedding img/s | selection s | peak RSS per rank (MiB) | outputs as 1 rank |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r['ranks']} | {r['wall_seconds']:.1f} | {r['embed_img_per_s']:.0f} | {r['select_seconds']:.2f} | "
           f"{', '.join(f'{v:.0f}' for v in r['peak_rss_mib'])} | {'identical' if r['digest'] == rows[0]['digest'] else 'DIFFERENT'} |"
           for r in rows]
    save_text(os.path.join(a.out_dir, "bench_curate.md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return res
