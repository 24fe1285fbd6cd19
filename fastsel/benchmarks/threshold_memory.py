"""Peak memory of the threshold filter's random scan order on a 2 GiB pool (issue 28, item 4): the scan
reads through the order (default) vs the previous permuted copy. One mode per process (peak RSS is the
process's):

    python -m fastsel.benchmarks.threshold_memory read-through
    python -m fastsel.benchmarks.threshold_memory copy
"""
import resource
import sys

import torch

import fastsel
from fastsel.benchmarks.common import timed_result


def main(mode: str) -> None:
    torch.manual_seed(0)
    N, d = 1_400_000, 384
    x = torch.empty(N, d)
    for a in range(0, N, 100000):
        x[a:a + 100000].normal_()
    pool = x.numel() * 4
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tau = 24.7

    def run():
        if mode == "read-through":
            return fastsel.threshold_decay(x, 2048, 0, tau, seed=0).indices
        # the previous implementation: scan a permuted copy
        perm = fastsel.scan_order(N, 0)
        xs = x[perm]
        out = torch.ops.fastsel.threshold_decay(xs, 2048, int(torch.argsort(perm)[0]), tau, 0.9, False, None, None,
                                                "auto")
        return perm[out[0]]
    idx, secs = timed_result(run)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{mode}: pool {pool/2**30:.2f} GiB, peak RSS {peak/2**30:.2f} GiB = {peak/pool:.3f}x the pool "
          f"(before the call {base/2**30:.2f} GiB), {secs:.2f} s, first picks {idx[:3].tolist()}")


if __name__ == "__main__":
    main(sys.argv[1])
