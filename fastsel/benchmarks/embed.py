"""`fastsel embed` throughput against a bare ``model(x)`` loop over the same batches, same run.

  fastsel bench embed [--features inception] [--images 256] [--batch-size 32]

The bare loop gets the batches already preprocessed (no conversion, no resize), so the ratio
charges fastsel's whole pipeline (uint8 -> float, resize, normalise, copy out) against the model.
Writes bench/results/bench_embed.json.
"""
import datetime
import os
import time

import numpy as np
import torch

from fastsel import features as Fe
from fastsel.io import save_json


def run(a):
    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (a.images, 28, 28, 1)).astype(np.uint8)
    ext = Fe.get(a.features, "cpu")
    batches = [ext.prepare(im[i:i + a.batch_size]) for i in range(0, a.images, a.batch_size)]
    with torch.inference_mode():
        ext.model(batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            ext.model(b)
        bare = time.perf_counter() - t0
    Fe.embed(im[: a.batch_size], ext, a.batch_size, quiet=True)  # warm-up
    t0 = time.perf_counter()
    Fe.embed(im, ext, a.batch_size, quiet=True)
    ours = time.perf_counter() - t0
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "features": a.features, "images": a.images, "batch_size": a.batch_size, "threads": torch.get_num_threads(),
           "bare_img_per_s": a.images / bare, "embed_img_per_s": a.images / ours, "ratio": bare / ours}
    os.makedirs("bench/results", exist_ok=True)
    save_json("bench/results/bench_embed.json", res)
    print(f"{a.features}: bare model loop {res['bare_img_per_s']:.1f} img/s, fastsel embed "
          f"{res['embed_img_per_s']:.1f} img/s -> {100 * res['ratio']:.1f}% of the bare loop")
