"""The CUDA batched-sets kernel (csrc/cuda/greedy_sets_cuda.cu, one block per set, one launch) and its
switch (fastsel/_backend.py, CUDA_NEW_KERNELS). On the CPU: the switch's rules and the ragged-set argument checks
the CPU and CUDA entry points share (csrc/utils.h, check_sets_args). With a GPU (bench/gpu_check.sh runs
this file first, FASTSEL_CUDA_NEW_KERNELS=1): picks and distances bit for bit those of greedy's CUDA kernel on
each set alone, and equal to the CPU op on integer data (exact arithmetic, ties included)."""
import numpy as np
import pytest
import torch

import fastsel

needs_ext = pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")
needs_cuda_kernel = pytest.mark.skipif(not (torch.cuda.is_available() and fastsel._backend.has_kernel("greedy_sets",
                                                                                                      "cuda")),
                                       reason="no CUDA device or no CUDA build")


def test_new_cuda_kernels_are_off_by_default_and_the_environment_overrides_them(monkeypatch):
    """The one switch (fastsel._backend.CUDA_NEW_KERNELS): off, with no record of a device run, until one
    passes; FASTSEL_CUDA_NEW_KERNELS=1 turns every new kernel on, =0 every one off."""
    from fastsel import _backend as B
    monkeypatch.delenv("FASTSEL_CUDA_NEW_KERNELS", raising=False)
    assert set(B.CUDA_NEW_KERNELS) == {"greedy_sets", "threshold_scan_order"}
    for name, k in B.CUDA_NEW_KERNELS.items():
        assert k["enabled"] is False and k["verified"] is None
        assert not B.cuda_kernel_enabled(name)
    monkeypatch.setenv("FASTSEL_CUDA_NEW_KERNELS", "1")
    assert B.cuda_kernel_enabled("greedy_sets") and B.cuda_kernel_enabled("threshold_scan_order")
    monkeypatch.setenv("FASTSEL_CUDA_NEW_KERNELS", "0")
    monkeypatch.setitem(B.CUDA_NEW_KERNELS["greedy_sets"], "enabled", True)
    assert not B.cuda_kernel_enabled("greedy_sets")
    for other in ("true", "", "yes"):  # only 0 and 1 are read; anything else leaves the recorded switch
        monkeypatch.setenv("FASTSEL_CUDA_NEW_KERNELS", other)
        assert B.cuda_kernel_enabled("greedy_sets") and not B.cuda_kernel_enabled("threshold_scan_order")
    with pytest.raises(KeyError):
        B.cuda_kernel_enabled("no-such-kernel")


def _op(x, ptr, n, start, total):
    t = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    return torch.ops.fastsel.greedy_sets(x, t(ptr), t(n), t(start), total, "auto")


@needs_ext
@pytest.mark.parametrize("ptr, n, start, total, match", [
    ([1, 4, 6], [1, 1], [0, 0], 2, "ptr must start at 0"),
    ([0, 4, 3, 6], [1, 0, 1], [0, 0, 0], 2, "non-decreasing"),
    ([0, 4, 6], [5, 1], [0, 0], 6, "n = 5 is not in"),
    ([0, 4, 6], [1, 1], [0, 2], 2, "start 2 is out of range"),
    ([0, 4, 6], [1, 1], [0, 0], 3, "total must equal"),
])
def test_ragged_set_arguments_are_checked_in_one_place(ptr, n, start, total, match):
    x = torch.randn(6, 3)
    with pytest.raises(RuntimeError, match=match):
        _op(x, ptr, n, start, total)


@needs_ext
def test_a_set_with_no_picks_and_an_empty_set_are_allowed():
    x = torch.randn(6, 3)
    idx, d2 = _op(x, [0, 0, 4, 6], [0, 2, 1], [0, 1, 0], 3)
    assert idx.tolist()[:1] == [1] and idx.tolist()[2] == 4 and torch.isinf(d2[0]) and torch.isinf(d2[2])


def _ragged(rng, d, dtype, integer=False):
    sizes = [1, 7, 300, 0, 1025, 64]
    R = sum(sizes)
    x = rng.integers(-3, 4, size=(R, d)) if integer else rng.standard_normal((R, d))
    ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    n = [1, 7, 123, 0, 500, 64]
    start = [0, 3, 17, 0, 1024, 63]
    return torch.from_numpy(x).to(dtype), ptr, n, start


@needs_cuda_kernel
@pytest.mark.parametrize("d", [3, 32, 33, 128])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_device_one_launch_equals_greedy_cuda_on_each_set_alone(d, dtype, rng):
    x, ptr, n, start = _ragged(rng, d, dtype)
    xc = x.cuda()
    idx, d2 = _op(xc, ptr, n, start, sum(n))
    for b in range(len(n)):
        if not n[b]:
            continue
        o = sum(n[:b])
        i1, d1, _ = torch.ops.fastsel.greedy(xc[ptr[b]:ptr[b + 1]].contiguous(), n[b], start[b], None, "single")
        assert torch.equal(idx[o:o + n[b]].cpu(), i1.cpu() + ptr[b]), (b, d, dtype)
        assert torch.equal(d2[o:o + n[b]].cpu(), d1.cpu()), (b, d, dtype)


@needs_cuda_kernel
@pytest.mark.parametrize("d", [3, 48])
def test_device_integer_sets_with_ties_equal_the_cpu_op(d, rng):
    x, ptr, n, start = _ragged(rng, d, torch.float32, integer=True)
    gi, gd = _op(x.cuda(), ptr, n, start, sum(n))
    ci, cd = _op(x, ptr, n, start, sum(n))
    assert torch.equal(gi.cpu(), ci) and torch.equal(gd.cpu(), cd)


@needs_cuda_kernel
def test_device_public_fps_and_greedy_take_the_kernel_when_switched_on(monkeypatch, rng):
    x = torch.from_numpy(rng.standard_normal((4, 500, 3))).float().cuda()
    monkeypatch.setenv("FASTSEL_CUDA_NEW_KERNELS", "0")
    off = fastsel.greedy(x, 100, 0)
    monkeypatch.setenv("FASTSEL_CUDA_NEW_KERNELS", "1")
    on = fastsel.greedy(x, 100, 0)
    assert torch.equal(off.indices.cpu(), on.indices.cpu())
    assert torch.equal(off.distances.cpu(), on.distances.cpu())


@needs_cuda_kernel
@pytest.mark.parametrize("mode", ["single", "chunked"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_device_threshold_reading_through_the_scan_order_equals_a_gathered_copy(mode, dtype, rng):
    """The CUDA threshold filter reads row order[p] at scan position p (no permuted copy): accepts,
    distances, taus and the returned state equal the same op on the pool gathered into scan order."""
    x = torch.from_numpy(rng.standard_normal((3000, 40))).to(dtype).cuda()
    x[2000:2100] = x[:100]  # duplicates: the fill in scan order runs
    order = torch.randperm(3000, generator=torch.Generator().manual_seed(4)).cuda()
    tau = float(fastsel.default_tau(x[order], 5)) * 0.9
    a = torch.ops.fastsel.threshold_decay(x, 2900, 5, tau, 0.8, False, None, None, mode, order)
    b = torch.ops.fastsel.threshold_decay(x[order].contiguous(), 2900, 5, tau, 0.8, False, None, None, mode)
    for u, v in zip(a, b):
        assert torch.equal(u.cpu(), v.cpu())
