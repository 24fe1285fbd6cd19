"""fastsel.compat.torch_cluster against torch_cluster's own behaviour.

Checked against rusty1s/pytorch_cluster at commit 3d1d9e3967c77c757a68d8aad37d0171e93018e2:
test/test_fps.py and test/test_knn.py (their inputs and expected values, re-expressed here), and
the rules of torch_cluster/fps.py, torch_cluster/knn.py, csrc/cpu/fps_cpu.cpp (pick counts in
float32, argmax ties to the first row), csrc/cuda/fps_cuda.cu (counts in the ratio's dtype, the
torch.rand start draw) and csrc/cuda/knn_cuda.cu (fewer than k neighbours in a small set). The
oracles below are plain float64 loops written from those rules.
"""
import math

import numpy as np
import pytest
import torch

from fastsel.compat.torch_cluster import fps, knn
from fastsel.errors import FastselError

SQUARES = [[-1, -1], [-1, 1], [1, 1], [1, -1], [-2, -2], [-2, 2], [2, 2], [2, -2]]
KNN_X = [[-1, -1], [-1, 1], [1, 1], [1, -1], [-1, -1], [-1, 1], [1, 1], [1, -1]]
DTYPES = [torch.float16, torch.float32, torch.float64]  # the peer's grad_dtypes
SCRIPT_WARNING = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def oracle_fps(x, ptr, counts, starts):
    """torch_cluster's CPU loop in float64: min-distance update, argmax to the first maximum."""
    out = []
    for b in range(len(ptr) - 1):
        y = x[ptr[b]:ptr[b + 1]].astype(np.float64)
        if counts[b] == 0:
            continue
        i = starts[b]
        out.append(ptr[b] + i)
        dist = ((y - y[i]) ** 2).sum(1)
        for _ in range(1, counts[b]):
            i = int(np.argmax(dist))
            out.append(ptr[b] + i)
            dist = np.minimum(dist, ((y - y[i]) ** 2).sum(1))
    return out


def oracle_knn(x, y, k, bx, by):
    """Brute force: per y row, the x rows of its set by (distance, index), at most k."""
    rows, cols = [], []
    for i in range(len(y)):
        cand = [j for j in range(len(x)) if bx[j] == by[i]]
        d = [(float(((x[j] - y[i]) ** 2).sum()), j) for j in cand]
        for _, j in sorted(d)[:k]:
            rows.append(i)
            cols.append(j)
    return [rows, cols]


def to_set(e):
    return set(map(tuple, e.t().tolist()))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fps_peer_cases(dtype):
    x = torch.tensor(SQUARES, dtype=dtype)
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert fps(x, batch, random_start=False).tolist() == [0, 2, 4, 6]
    assert fps(x, batch, 0.5, False).tolist() == [0, 2, 4, 6]  # random_start positional
    assert fps(x, batch, ratio=0.5, random_start=False).tolist() == [0, 2, 4, 6]
    assert fps(x, batch, ratio=torch.tensor(0.5), random_start=False).tolist() == [0, 2, 4, 6]
    assert fps(x, ptr=[0, 4, 8], ratio=0.5, random_start=False).tolist() == [0, 2, 4, 6]
    assert fps(x, ptr=torch.tensor([0, 4, 8]), ratio=0.5, random_start=False).tolist() == [0, 2, 4, 6]
    assert fps(x, batch, ratio=torch.tensor([0.5, 0.5]), random_start=False).tolist() == [0, 2, 4, 6]
    assert sorted(fps(x, random_start=False).tolist()) == [0, 5, 6, 7]
    assert sorted(fps(x, ratio=0.5, random_start=False).tolist()) == [0, 5, 6, 7]
    assert sorted(fps(x, ratio=torch.tensor(0.5), random_start=False).tolist()) == [0, 5, 6, 7]
    assert sorted(fps(x, ratio=torch.tensor([0.5]), random_start=False).tolist()) == [0, 5, 6, 7]
    out = fps(x, batch, batch_size=2, random_start=False)
    assert out.dtype == torch.int64 and out.tolist() == [0, 2, 4, 6]


@SCRIPT_WARNING
def test_fps_scripted():
    x = torch.tensor(SQUARES, dtype=torch.float32)
    scripted = torch.jit.script(fps)
    assert sorted(scripted(x, None, torch.tensor([0.5]), False).tolist()) == [0, 5, 6, 7]
    assert scripted(x, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, False).tolist() == [0, 2, 4, 6]


def test_fps_scripted_cannot_be_saved(tmp_path):
    pytest.skip("the kernel call is a Python call (torch.jit.ignore): a scripted fps runs in Python "
                "but torch.jit.save cannot export it, unlike torch_cluster's registered op")


def test_random_fps_peer_case(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    N = 1024
    pos = torch.from_numpy(rng.standard_normal((2 * N, 3))).float()
    batch = torch.cat([torch.zeros(N, dtype=torch.long), torch.ones(N, dtype=torch.long)])
    idx = fps(pos, batch, ratio=0.5)
    assert idx.min() >= 0 and idx.max() < 2 * N
    assert idx.numel() == N and idx[:512].max() < N and idx[512:].min() >= N
    assert len(set(idx.tolist())) == N


@pytest.mark.parametrize("rows,ratio,dtype,want,exact", [
    (25, 0.6, torch.float32, 16, 15),   # 0.6 is 0.6000000238 in float32: 15.0000006 rounds up
    (25, 0.6, torch.float64, 16, 15),   # the CPU kernel multiplies in float32 whatever the dtype
    (10, 0.3, torch.float16, 4, 3),     # float16 0.3 is 0.30004883
    (10, 0.3, torch.float32, 3, 3),
    (7, 0.5, torch.float32, 4, 4),
])
def test_fps_pick_count_as_torch_cluster_cpu(rows, ratio, dtype, want, exact, rng):
    x = torch.from_numpy(rng.standard_normal((rows, 3))).to(dtype)
    assert math.ceil(rows * ratio) == exact
    assert fps(x, ratio=ratio).numel() == want
    assert fps(x, ratio=ratio, random_start=False).numel() == want


def test_fps_against_float64_oracle(rng):
    sizes = [int(s) for s in rng.integers(1, 60, size=5)]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    x = rng.standard_normal((ptr[-1], 4)).astype(np.float64)
    batch = torch.repeat_interleave(torch.arange(5), torch.tensor(sizes))
    ratio = float(rng.uniform(0.05, 1.0))
    r64 = torch.tensor(ratio, dtype=torch.float64)  # the float64 input's ratio tensor
    counts = (torch.tensor(sizes, dtype=torch.float32) * r64).ceil().long().tolist()
    want = oracle_fps(x, ptr, counts, [0] * 5)
    got = fps(torch.from_numpy(x), batch, ratio, False)
    assert got.tolist() == want
    # random starts: the first pick of each set is the draw, the rest follows from it
    got = fps(torch.from_numpy(x), batch, ratio, True)
    offs = np.concatenate([[0], np.cumsum(counts)]).tolist()
    starts = [int(got[offs[b]]) - ptr[b] for b in range(5)]
    assert all(0 <= s < sizes[b] for b, s in enumerate(starts))
    assert got.tolist() == oracle_fps(x, ptr, counts, starts)


def test_fps_random_start_follows_torch_seed(rng):
    x = torch.from_numpy(rng.standard_normal((300, 3))).float()
    batch = torch.repeat_interleave(torch.arange(3), 100)
    torch.manual_seed(7)
    a = fps(x, batch)
    torch.manual_seed(7)
    b = fps(x, batch)
    assert a.tolist() == b.tolist()
    torch.manual_seed(7)  # torch_cluster's CUDA draw: floor(rand(B) * deg)
    want = (torch.rand(3) * torch.tensor([100.0, 100.0, 100.0])).long() + torch.tensor([0, 100, 200])
    offs = [0, 50, 100]
    assert [int(a[o]) for o in offs] == want.tolist()
    starts = {int(fps(x, random_start=True)[0]) for _ in range(8)}
    assert len(starts) > 1


def test_fps_ratio_above_one_and_duplicates():
    # past the distinct rows, torch_cluster's argmax over all-zero distances takes the set's first row
    x = torch.tensor(SQUARES, dtype=torch.float32)
    out = fps(x, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), ratio=1.5, random_start=False)
    assert out.tolist() == [0, 2, 1, 3, 0, 0, 4, 6, 5, 7, 4, 4]
    dup = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [5.0, 5.0]])
    assert fps(dup, ratio=1.0, random_start=False).tolist() == [0, 1, 0, 0]
    assert oracle_fps(dup.numpy(), [0, 4], [4], [0]) == [0, 1, 0, 0]


def test_fps_empty_inputs():
    # torch_cluster's CPU kernel fails on an empty set; its count formula gives 0 picks, returned here
    assert fps(torch.zeros(0, 3)).tolist() == []
    x = torch.tensor(SQUARES, dtype=torch.float32)
    out = fps(x, torch.tensor([0, 0, 0, 0, 2, 2, 2, 2]), 0.5, False)
    assert out.tolist() == [0, 2, 4, 6]
    assert fps(x, ratio=0.0).tolist() == []


def test_fps_bad_input():
    x = torch.tensor(SQUARES, dtype=torch.float32)
    with pytest.raises(FastselError, match="one set id per row"):
        fps(x, torch.tensor([0, 0, 1]))
    with pytest.raises(FastselError, match="negative"):
        fps(x, ratio=-0.5)
    with pytest.raises(FastselError, match="NaN"):
        fps(torch.tensor([[0.0, math.nan], [1.0, 1.0]]))


def test_fps_1d_src():
    x = torch.tensor([0.0, 10.0, 1.0, 9.0])
    assert fps(x, ratio=0.5, random_start=False).tolist() == [0, 1]


@SCRIPT_WARNING
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_knn_peer_cases(dtype):
    x = torch.tensor(KNN_X, dtype=dtype)
    y = torch.tensor([[1, 0], [-1, 0]], dtype=dtype)
    batch_x = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    batch_y = torch.tensor([0, 1])
    # exact ties (rows 2 and 6 are equal): lowest rows first, as the peer's CUDA kernel keeps them
    assert knn(x, y, 2).tolist() == [[0, 0, 1, 1], [2, 3, 0, 1]]
    assert to_set(torch.jit.script(knn)(x, y, 2)) == {(0, 2), (0, 3), (1, 0), (1, 1)}
    assert to_set(knn(x, y, 2, batch_x, batch_y)) == {(0, 2), (0, 3), (1, 4), (1, 5)}
    assert to_set(knn(x, y, 2, batch_x, batch_y, cosine=True)) == {(0, 2), (0, 3), (1, 4), (1, 5)}
    skip_x = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])  # a batch id with no rows
    assert to_set(knn(x, y, 2, skip_x, torch.tensor([0, 2]))) == {(0, 2), (0, 3), (1, 4), (1, 5)}


def test_knn_large_against_brute_force(rng):
    x = torch.from_numpy(rng.standard_normal((1000, 3))).float()
    e = knn(x, x, 5)
    d = torch.cdist(x.double(), x.double())
    truth = torch.sort(d, dim=1, stable=True).indices[:, :5]
    assert to_set(e) == {(i, int(j)) for i in range(1000) for j in truth[i]}


def test_knn_batches_against_oracle(rng):
    bx = np.sort(rng.integers(0, 4, size=60))
    by = np.sort(rng.integers(0, 4, size=25))
    x = rng.integers(-2, 3, size=(60, 2)).astype(np.float64)  # integer data: many exact ties
    y = rng.integers(-2, 3, size=(25, 2)).astype(np.float64)
    k = int(rng.integers(1, 30))
    got = knn(torch.from_numpy(x), torch.from_numpy(y), k, torch.from_numpy(bx), torch.from_numpy(by))
    assert got.tolist() == oracle_knn(x, y, k, bx, by)


def test_knn_fewer_than_k_and_empty():
    x = torch.tensor([[0.0], [1.0], [5.0]])
    y = torch.tensor([[0.9], [4.0]])
    out = knn(x, y, 10)
    assert out.tolist() == [[0, 0, 0, 1, 1, 1], [1, 0, 2, 2, 1, 0]]
    assert knn(torch.zeros(0, 2), torch.zeros(3, 2), 2).shape == (2, 0)
    assert knn(x, torch.zeros(0, 1), 2).shape == (2, 0)
    assert knn(torch.tensor([0.0, 1.0, 5.0]), torch.tensor([0.9]), 1).tolist() == [[0], [1]]


def test_knn_cosine_against_oracle(rng):
    x = rng.standard_normal((80, 5))
    y = rng.standard_normal((20, 5))
    got = knn(torch.from_numpy(x), torch.from_numpy(y), 4, cosine=True)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    d = 1 - yn @ xn.T
    want = np.argsort(d, axis=1, kind="stable")[:, :4]
    assert got[1].reshape(20, 4).tolist() == want.tolist()


def test_knn_bad_input():
    x = torch.tensor(KNN_X, dtype=torch.float32)
    with pytest.raises(FastselError, match="both batch_x and batch_y"):
        knn(x, x, 2, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    with pytest.raises(FastselError, match="same features"):
        knn(x, torch.zeros(2, 3), 2)
