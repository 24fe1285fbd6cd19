"""Pools of 10^6 rows on one GPU (issue 27, item 3 and 4): greedy N = 1,048,576, d = 768, n = 65,536
in float16 and float32 (multi-pick, exact), its first 2,048 picks checked against the single-pick
mode; the KL entropy of a 1,048,576 x 384 pool (its exact 1-NN over itself) timed.

    python -m fastsel.benchmarks.gpu_million OUT_DIR
"""
import json
import sys
import time

import torch

import fastsel
from fastsel import metrics as M
from fastsel.benchmarks.common import timed_result


def main(out):
    rows = []
    g = torch.Generator(device="cuda").manual_seed(0)
    N, d, n = 1 << 20, 768, 65536
    for dt in (torch.float16, torch.float32):
        x = torch.randn((N, d), generator=g, device="cuda", dtype=torch.float32).to(dt)
        fastsel.greedy(x[:4096], 64, 0)  # warm-up
        r, t = timed_result(lambda: fastsel.greedy(x, n, 0, mode="multi"), device="cuda")
        s, ts = timed_result(lambda: fastsel.greedy(x, 2048, 0, mode="single"), device="cuda")
        same = bool(torch.equal(r.indices[:2048].cpu(), s.indices.cpu()))
        rows.append({"op": "greedy multi", "dtype": str(dt).split(".")[-1], "N": N, "d": d, "n": n, "seconds": t,
                     "first_2048_equal_single_mode": same, "single_2048_seconds": ts})
        print(rows[-1], flush=True)
        del x
        torch.cuda.empty_cache()
    x = torch.randn((N, 384), generator=g, device="cuda")
    h, t = timed_result(lambda: M.kl_entropy(x), device="cuda")
    rows.append({"op": "kl_entropy (exact 1-NN over itself)", "dtype": "float32", "N": N, "d": 384, "seconds": t,
                 "value": h})
    print(rows[-1], flush=True)
    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(f"{out}/gpu_million.json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
