"""The CUDA batched-sets kernel on the point-cloud grid, run by bench/gpu_check.sh after its tests
passed (FASTSEL_CUDA_NEW_KERNELS=1): fastsel.greedy on (B, N, d) in one launch (one block per set) beside
the same call with the kernel off (greedy's CUDA kernel set after set), torch-quickfps's CUDA build
(when installed) and fastsel's one-block FPS launched once per set (the torch_cluster / pytorch3d
scheme, fastsel/_fps_one_block). Writes OUT/sets.md and OUT/sets.json.

    FASTSEL_CUDA_NEW_KERNELS=1 python -m fastsel.benchmarks.gpu_sets OUT
"""
import os
import sys
import time

import torch

import fastsel
from fastsel.benchmarks.common import commit, timed_result, try_import
from fastsel.io import save_json, save_text

GRID = [(32, 4096, 3, 1024, "gauss"), (8, 10000, 1024, 2500, "blobs")]


def pool(B, N, d, kind):
    g = torch.Generator().manual_seed(0)
    if kind == "gauss":
        return torch.randn(B, N, d, generator=g)
    c = torch.randn(B, 8, d, generator=g)
    w = torch.randint(8, (B, N), generator=g)
    return torch.gather(c, 1, w[..., None].expand(B, N, d)) + 0.1 * torch.randn(B, N, d, generator=g)


def one_launch(x, k):
    """The batched kernel itself (whatever shape rule fastsel.greedy applies): one launch, one block per set."""
    B, N, d = x.shape
    t = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    return torch.ops.fastsel.greedy_sets(x.reshape(B * N, d), t([b * N for b in range(B + 1)]), t([k] * B),
                                         t([0] * B), B * k, "auto")[0].view(B, k) - torch.arange(B, device=x.device)[:, None] * N


def write(out_dir, rows, meta):
    """sets.md / sets.json, atomically, after every row (a time limit keeps what was measured)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    md = [f"# CUDA batched sets ({meta['gpu']}, commit {meta['commit']}, {meta['date']})", "",
          "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        md.append("| " + " | ".join(f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys)
                  + " |")
    save_text(os.path.join(out_dir, "sets.md"), "\n".join(md) + "\n")
    save_json(os.path.join(out_dir, "sets.json"), {"meta": meta, "rows": rows})


def main(out_dir):
    rows = []
    meta = {"commit": os.environ.get("FASTSEL_COMMIT") or commit(), "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    qf = try_import("torch_quickfps")
    ok = True
    for B, N, d, k, kind in GRID:
        x = pool(B, N, d, kind).cuda()
        r = {"shape": f"{B} x {N} x {d}, K = {k} ({kind})"}
        rows.append(r)
        try:
            on, t_on = timed_result(lambda: one_launch(x, k), 5, 1, "cuda")
            os.environ["FASTSEL_CUDA_NEW_KERNELS"] = "0"
            off, t_off = timed_result(lambda: fastsel.greedy(x, k, 0).indices, 5, 1, "cuda")
            os.environ["FASTSEL_CUDA_NEW_KERNELS"] = "1"
            r.update({"one launch s": t_on, "set after set s": t_off, "same picks": bool(torch.equal(on, off))})
            ok = ok and r["same picks"]
        except Exception as e:  # noqa: BLE001 -- recorded, the other rows still run
            r["error"], ok = f"{type(e).__name__}: {e}", False
        write(out_dir, rows, meta)
        try:  # one read of the set per pick: timed on a few picks, extrapolated linearly to k
            kb = min(k, 128)
            _, t_ob = timed_result(lambda: [torch.ops.fastsel._fps_one_block(x[b], kb, 0) for b in range(B)], 2, 1, "cuda")
            r[f"one block per set, B launches s (timed at {kb} picks, x k/{kb})"] = t_ob * k / kb
        except Exception as e:  # noqa: BLE001
            r["one-block error"] = f"{type(e).__name__}: {e}"
        write(out_dir, rows, meta)
        if qf is not None:
            try:
                _, t_q = timed_result(lambda: qf.sample_idx(x, k, start_idx=0), 3, 1, "cuda")
                r["torch-quickfps s"] = t_q
            except Exception as e:  # noqa: BLE001
                r["torch-quickfps error"] = f"{type(e).__name__}: {e}"
        write(out_dir, rows, meta)
        print(r, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/gpu"))
