"""`fastsel embed` throughput against a bare ``model(x)`` loop over the same batches, same run.

  fastsel bench embed [--features inception] [--images 256] [--batch-size 32] [--device cuda]
                      [--size 32 --channels 3] [--out-dir DIR]

The bare loop gets the batches already preprocessed (no conversion, no resize), so the ratio
charges fastsel's whole pipeline (uint8 -> float, resize, normalise, copy out) against the model.
Writes DIR/bench_embed.json (default bench/results).
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
    device = getattr(a, "device", "cpu")
    side, ch = getattr(a, "size", 28), getattr(a, "channels", 1)
    im = rng.integers(0, 256, (a.images, side, side, ch)).astype(np.uint8)
    ext = Fe.get(a.features, device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    batches = [ext.prepare(im[i:i + a.batch_size]) for i in range(0, a.images, a.batch_size)]
    with torch.inference_mode():
        ext.model(batches[0])  # warm-up
        sync()
        t0 = time.perf_counter()
        for b in batches:
            ext.model(b).float().cpu()  # the bare loop also hands its features to the host
        sync()
        bare = time.perf_counter() - t0
    Fe.embed(im[: a.batch_size], ext, a.batch_size, quiet=True)  # warm-up
    sync()
    t0 = time.perf_counter()
    Fe.embed(im, ext, a.batch_size, quiet=True)
    sync()
    ours = time.perf_counter() - t0
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "features": a.features, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu",
           "image_shape": [side, side, ch], "images": a.images, "batch_size": a.batch_size, "threads": torch.get_num_threads(),
           "bare_img_per_s": a.images / bare, "embed_img_per_s": a.images / ours, "ratio": bare / ours}
    out_dir = getattr(a, "out_dir", None) or "bench/results"
    os.makedirs(out_dir, exist_ok=True)
    save_json(os.path.join(out_dir, "bench_embed.json"), res)
    print(f"{a.features}: bare model loop {res['bare_img_per_s']:.1f} img/s, fastsel embed "
          f"{res['embed_img_per_s']:.1f} img/s -> {100 * res['ratio']:.1f}% of the bare loop")
    return res
