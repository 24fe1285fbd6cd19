import numpy as np
import pytest
import torch

import fastsel
from _helpers import DTYPES, brute_knn as brute, clustered_pool, int_pool


def test_hand_case(backend, device):
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [1.0, 0.0]], device=device)
    q = torch.tensor([[0.9, 0.0], [3.0, 3.0]], device=device)
    r = fastsel.nn(q, ref, k=2, backend=backend)
    assert r.indices.tolist() == [[2, 3], [1, 2]]
    assert r.distances[1, 0].item() == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [1, 3])
def test_integer_data_exact_with_ties_low(backend, dtype, k, rng):
    x = int_pool(rng, 400, 6, -2, 3)  # many exact ties and duplicates
    q = int_pool(rng, 150, 6, -2, 3)
    want_d, want_i = brute(q, x, k)
    r = fastsel.nn(torch.from_numpy(q).to(dtype), torch.from_numpy(x).to(dtype), k=k, backend=backend)
    assert r.indices.numpy().tolist() == want_i.tolist()
    np.testing.assert_allclose(r.distances.double().numpy(), want_d, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_random_against_float64(backend, dtype, rng):
    x = torch.from_numpy(rng.standard_normal((600, 20))).to(dtype)
    q = torch.from_numpy(rng.standard_normal((90, 20))).to(dtype)
    want_d, want_i = brute(q.double().numpy(), x.double().numpy(), 4)
    r = fastsel.nn(q, x, k=4, backend=backend)
    assert r.indices.numpy().tolist() == want_i.tolist()
    np.testing.assert_allclose(r.distances.double().numpy(), want_d, rtol=1e-6 if dtype != torch.float64 else 1e-12)


def test_exclude_self_and_block_edges(backend, rng):
    # more rows than one query block (1024) and one ref block (4096): block edges are crossed
    x = rng.standard_normal((4200, 3))
    want_d, want_i = brute(x[:1100], x, 2)
    r = fastsel.nn(torch.from_numpy(x[:1100]), torch.from_numpy(x), k=2, backend=backend)
    assert r.indices.numpy().tolist() == want_i.tolist()
    xs = torch.from_numpy(x[:1500])
    sd, si = brute(x[:1500], x[:1500], 3, exclude_self=True)
    r = fastsel.nn(xs, k=3, exclude_self=True, backend=backend)
    assert r.indices.numpy().tolist() == si.tolist()
    assert not (r.indices == torch.arange(1500)[:, None]).any()


def test_clustered_far_from_origin_float64_correct(backend, rng):
    x = clustered_pool(rng, 2000, 128, clusters=4, spread=0.05, offset=50.0)
    q = x[:300] + 0.01 * rng.standard_normal((300, 128))
    x32, q32 = torch.from_numpy(x).float(), torch.from_numpy(q).float()
    want_d, want_i = brute(q32.double().numpy(), x32.double().numpy(), 1)
    r = fastsel.nn(q32, x32, k=1, backend=backend)
    assert r.indices.numpy().tolist() == want_i.tolist()
    np.testing.assert_allclose(r.distances.double().numpy(), want_d, rtol=1e-6)


def test_k_equals_N(backend):
    x = torch.tensor([[0.0], [2.0], [1.0]])
    r = fastsel.nn(x, k=2, exclude_self=True, backend=backend)
    assert r.indices.tolist() == [[2, 1], [2, 0], [0, 1]]
    r = fastsel.nn(x, x, k=3, backend=backend)
    assert r.indices[0].tolist() == [0, 2, 1]


@pytest.mark.parametrize("kw, match", [
    (dict(k=0), "k must be in"), (dict(k=6), "k must be in"),
])
def test_bad_k(backend, kw, match):
    x = torch.randn(5, 2)
    with pytest.raises((ValueError, RuntimeError), match=match):
        fastsel.nn(x, x, backend=backend, **kw)


def test_bad_shapes():
    with pytest.raises(ValueError, match="dimension mismatch"):
        fastsel.nn(torch.randn(3, 2), torch.randn(4, 3))
    with pytest.raises(ValueError, match="same length"):
        fastsel.nn(torch.randn(3, 2), torch.randn(4, 2), exclude_self=True, backend="torch")
    with pytest.raises(ValueError, match="2-D"):
        fastsel.nn(torch.randn(3), torch.randn(4, 2))
