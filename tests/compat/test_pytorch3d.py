"""fastsel.compat.pytorch3d against pytorch3d's own behaviour.

Checked against facebookresearch/pytorch3d at commit 9381c4016376345bb795b97c45a6c2de66db354a:
tests/test_sample_farthest_points.py and tests/test_knn.py (their inputs, expected values and
properties, re-expressed here), and the rules of pytorch3d/ops/sample_farthest_points.py (its
naive version is the oracle's model), pytorch3d/ops/knn.py, pytorch3d/ops/utils.py
(masked_gather) and csrc/sample_farthest_points/sample_farthest_points_cpu.cpp (the start written
for every cloud, max_element ties to the first point). The oracles are plain float64 loops.
"""
import math
from itertools import product

import numpy as np
import pytest
import torch

from fastsel.compat.pytorch3d import knn_gather, knn_points, masked_gather, sample_farthest_points
from fastsel.errors import FastselError

CLOUDS = [
    [[-1.0, -1.0], [-1.3, 1.1], [0.2, -1.1], [0.0, 0.0], [1.3, 1.3], [1.0, 0.5], [-1.3, 0.2], [1.5, -0.5]],
    [[-2.2, -2.4], [-2.1, 2.0], [2.2, 2.1], [2.1, -2.4], [0.4, -1.0], [0.3, 0.3], [1.2, 0.5], [4.5, 4.5]],
]


def oracle_fps(points, lengths, K, starts):
    """pytorch3d's naive farthest-point loop in float64, with its kernel's padding (-1, the start
    in slot 0 of every cloud)."""
    N = points.shape[0]
    max_k = max(K)
    out = np.full((N, max_k), -1, dtype=np.int64)
    for n in range(N):
        if max_k == 0:
            break
        sel = starts[n]
        out[n, 0] = sel
        pts = points[n, :lengths[n]].astype(np.float64)
        closest = np.full(lengths[n], np.inf)
        for i in range(1, min(lengths[n], K[n])):
            closest = np.minimum(closest, ((pts[sel] - pts) ** 2).sum(1))
            sel = int(np.argmax(closest))
            out[n, i] = sel
    return out


def oracle_knn(p1, p2, l1, l2, K, norm):
    """pytorch3d's naive knn in float64: sorted by (distance, index), zeros as padding."""
    N, P1, _ = p1.shape
    dists = np.zeros((N, P1, K))
    idx = np.zeros((N, P1, K), dtype=np.int64)
    for n in range(N):
        for i in range(l1[n]):
            diff = p1[n, i].astype(np.float64) - p2[n, :l2[n]].astype(np.float64)
            d = (diff ** 2).sum(1) if norm == 2 else np.abs(diff).sum(1)
            order = np.argsort(d, kind="stable")[:K]
            dists[n, i, :len(order)] = d[order]
            idx[n, i, :len(order)] = order
    return dists, idx


def test_sfp_peer_simple():
    points = torch.tensor(CLOUDS)
    pts, idx = sample_farthest_points(points, K=2)
    assert idx.tolist() == [[0, 4], [0, 7]]
    assert torch.equal(pts, points.gather(1, idx[..., None].expand(-1, -1, 2)))
    pts, idx = sample_farthest_points(points, K=[3, 2])
    assert idx.tolist() == [[0, 4, 1], [0, 7, -1]]
    assert torch.equal(pts, masked_gather(points, idx))
    assert pts[1, 2].tolist() == [0.0, 0.0]
    assert sample_farthest_points(points, K=torch.tensor([3, 2]))[1].tolist() == [[0, 4, 1], [0, 7, -1]]


def test_sfp_against_oracle_and_peer_properties(rng):
    N, P, D, K = 5, 20, 5, 8
    points = rng.standard_normal((N, P, D)).astype(np.float32)
    pts, idx = sample_farthest_points(torch.from_numpy(points), K=K)
    want = oracle_fps(points, [P] * N, [K] * N, [0] * N)
    assert idx.tolist() == want.tolist() and int(idx.min()) >= 0
    assert (idx.ne(-1).sum(1) == K).all()
    assert pts.dtype == torch.float32 and pts.shape == (N, K, D)
    # K > P, heterogeneous lengths, gradients through the gather
    K = 30
    lengths = rng.integers(1, P, size=N)
    p = torch.from_numpy(points).requires_grad_(True)
    pts, idx = sample_farthest_points(p, torch.from_numpy(lengths), K=K)
    want = oracle_fps(points, lengths.tolist(), [K] * N, [0] * N)
    assert idx.shape == (N, K) and idx.tolist() == want.tolist()
    for n in range(N):
        assert idx[n].ne(-1).sum() <= lengths[n] and idx[n].max() <= lengths[n]
        vals = idx[n][idx[n].ne(-1)]
        assert vals.unique().numel() == vals.numel()
    pts.sum().backward()
    grad = np.zeros_like(points)
    for n in range(N):
        for i in want[n][want[n] >= 0]:
            grad[n, i] += 1.0
    np.testing.assert_allclose(p.grad.numpy(), grad)


def test_sfp_random_start_as_pytorch3d(rng):
    N, P, D, K = 5, 40, 5, 8
    points = torch.from_numpy(rng.standard_normal((N, P, D))).float()
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)
    _, idx = sample_farthest_points(points, K=K, random_start_point=True)
    assert idx[:, 0].sum() > 0 and not idx[:, 0].eq(idx[0, 0]).all()
    torch.manual_seed(seed)  # pytorch3d's own draw for clouds of constant length
    starts = torch.randint(high=P, size=(N,))
    assert idx[:, 0].tolist() == starts.tolist()
    assert idx.tolist() == oracle_fps(points.numpy(), [P] * N, [K] * N, starts.tolist()).tolist()
    lengths = torch.tensor([40, 3, 17, 1, 25])
    torch.manual_seed(seed)  # and for clouds of given lengths
    _, idx = sample_farthest_points(points, lengths, K=K, random_start_point=True)
    torch.manual_seed(seed)
    starts = (lengths * torch.rand(lengths.size())).to(torch.int64)
    assert idx.tolist() == oracle_fps(points.numpy(), lengths.tolist(), [K] * N, starts.tolist()).tolist()


def test_sfp_kernel_padding_rules():
    points = torch.tensor(CLOUDS)
    # an empty cloud and a cloud with K = 0 still hold their start in slot 0, as pytorch3d's kernel writes it
    _, idx = sample_farthest_points(points, torch.tensor([0, 8]), K=3)
    assert idx.tolist() == [[0, -1, -1], [0, 7, 6]]
    assert oracle_fps(points.numpy(), [0, 8], [3, 3], [0, 0]).tolist() == idx.tolist()
    _, idx = sample_farthest_points(points, K=[0, 2])
    assert idx.tolist() == [[0, -1], [0, 7]]
    # only copies left: max_element over all-zero distances takes point 0
    dup = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [3.0, 0.0]]])
    _, idx = sample_farthest_points(dup, K=4)
    assert idx.tolist() == [[0, 1, 0, 0]]
    assert oracle_fps(dup.numpy(), [4], [4], [0]).tolist() == [[0, 1, 0, 0]]


def test_sfp_errors():
    points = torch.randn(5, 40, 5)
    wrong = torch.randint(low=1, high=8, size=(8,))
    with pytest.raises(ValueError, match="K and points must have"):
        sample_farthest_points(points, K=wrong)
    with pytest.raises(ValueError, match="points and lengths must have"):
        sample_farthest_points(points, lengths=wrong, K=8)
    with pytest.raises(FastselError, match="too large"):
        sample_farthest_points(points, lengths=torch.full((5,), 41), K=8)


def test_sfp_gradcheck_skipped():
    pytest.skip("pytorch3d's gradcheck runs in float32 with eps=2e-3; the sampled points are a "
                "gather (checked exactly in test_sfp_against_oracle_and_peer_properties)")


@pytest.mark.parametrize("N,D,P1,P2,K,norm", list(product([1, 4], [3, 8], [8, 24], [8, 32], [1, 3, 10], [1, 2])))
def test_knn_square_against_oracle(N, D, P1, P2, K, norm, rng):
    p1 = rng.standard_normal((N, P1, D)).astype(np.float32)
    p2 = rng.standard_normal((N, P2, D)).astype(np.float32)
    want_d, want_i = oracle_knn(p1, p2, [P1] * N, [P2] * N, K, norm)
    out = knn_points(torch.from_numpy(p1), torch.from_numpy(p2), K=K, norm=norm)
    assert out.idx.tolist() == want_i.tolist()
    np.testing.assert_allclose(out.dists.numpy(), want_d, rtol=1e-5, atol=1e-5)
    assert out.knn is None


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("K", [1, 3, 10])
def test_knn_ragged_against_oracle_with_grads(norm, K, rng):
    N, P1, P2, D = 4, 24, 16, 3
    p1 = rng.random((N, P1, D)).astype(np.float32)
    p2 = rng.random((N, P2, D)).astype(np.float32)
    l1 = rng.integers(1, P1, size=N)
    l2 = rng.integers(1, P2, size=N)
    want_d, want_i = oracle_knn(p1, p2, l1, l2, K, norm)
    a = torch.from_numpy(p1).requires_grad_(True)
    b = torch.from_numpy(p2).requires_grad_(True)
    out = knn_points(a, b, torch.from_numpy(l1), torch.from_numpy(l2), K=K, norm=norm)
    assert out.idx.tolist() == want_i.tolist()
    np.testing.assert_allclose(out.dists.detach().numpy(), want_d, rtol=1e-5, atol=1e-6)
    # gradients: those of the naive formula on the same neighbours
    a2 = torch.from_numpy(p1).requires_grad_(True)
    b2 = torch.from_numpy(p2).requires_grad_(True)
    ii = torch.from_numpy(want_i)
    nb = torch.stack([b2[n][ii[n]] for n in range(N)])
    diff = a2[:, :, None] - nb
    d = (diff * diff).sum(-1) if norm == 2 else diff.abs().sum(-1)
    valid = torch.from_numpy((np.arange(K)[None, None] < l2[:, None, None])
                             & (np.arange(P1)[None, :, None] < l1[:, None, None]))
    (d * valid).sum().backward()
    out.dists.sum().backward()
    torch.testing.assert_close(a.grad, a2.grad, atol=5e-6, rtol=1e-5)
    torch.testing.assert_close(b.grad, b2.grad, atol=5e-6, rtol=1e-5)


def test_knn_integer_ties_lowest_index(rng):
    p1 = rng.integers(-2, 3, size=(2, 30, 3)).astype(np.float32)
    p2 = rng.integers(-2, 3, size=(2, 40, 3)).astype(np.float32)
    want_d, want_i = oracle_knn(p1, p2, [30, 30], [40, 40], 6, 2)
    out = knn_points(torch.from_numpy(p1), torch.from_numpy(p2), K=6)
    assert out.idx.tolist() == want_i.tolist()
    assert out.dists.tolist() == want_d.tolist()


def test_knn_gather_and_return_nn(rng):
    N, P1, P2, K, D = 4, 16, 12, 8, 3
    x = torch.from_numpy(rng.random((N, P1, D))).float()
    y = torch.from_numpy(rng.random((N, P2, D))).float()
    l1 = torch.from_numpy(rng.integers(1, P1, size=N))
    l2 = torch.from_numpy(rng.integers(1, P2, size=N))
    out = knn_points(x, y, lengths1=l1, lengths2=l2, K=K, return_nn=True)
    y_nn = knn_gather(y, out.idx, l2)
    assert torch.equal(out.knn, y_nn)
    for n in range(N):
        for p in range(P1):
            for k in range(K):
                if k < l2[n]:
                    assert torch.equal(y_nn[n, p, k], y[n, out.idx[n, p, k]])
                else:
                    assert (y_nn[n, p, k] == 0).all()


def test_knn_padding_and_shapes():
    p1 = torch.tensor([[[0.0], [1.0], [2.0]], [[0.0], [5.0], [9.0]]])
    p2 = torch.tensor([[[0.0], [3.0]], [[1.0], [7.0]]])
    out = knn_points(p1, p2, lengths1=torch.tensor([3, 1]), lengths2=torch.tensor([2, 1]), K=3)
    assert out.idx.tolist() == [[[0, 1, 0], [0, 1, 0], [1, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]]
    assert out.dists.tolist() == [[[0.0, 9.0, 0.0], [1.0, 4.0, 0.0], [1.0, 4.0, 0.0]],
                                  [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
    assert knn_points(p1, p2, version=2, return_sorted=False).idx.shape == (2, 3, 1)


def test_knn_version_ignored_and_invalid_norm(rng):
    x = torch.from_numpy(rng.random((4, 16, 3))).float()
    y = torch.from_numpy(rng.random((4, 12, 3))).float()
    for norm in (3, 0):
        with pytest.raises(ValueError, match="Support for 1 or 2 norm."):
            knn_points(x, y, K=8, norm=norm)
    with pytest.raises(ValueError, match="same batch dimension"):
        knn_points(x, y[:2])
    with pytest.raises(ValueError, match="same point dimension"):
        knn_points(x, y[..., :2])
    base = knn_points(x, y, K=4)
    for version in range(4):
        assert torch.equal(knn_points(x, y, K=4, version=version).idx, base.idx)


def test_knn_check_version_skipped():
    pytest.skip("pytorch3d's knn_check_version is a CUDA-kernel selector of its compiled module; "
                "fastsel has one exact kernel and ignores version")


def test_nan_raises():
    with pytest.raises(FastselError, match="NaN"):
        sample_farthest_points(torch.tensor([[[0.0, math.nan], [1.0, 1.0]]]), K=2)
