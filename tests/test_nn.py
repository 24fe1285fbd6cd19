import numpy as np
import pytest
import torch

import fastsel
from _helpers import DTYPES, as_t, brute_knn as brute, clustered_pool, cuda_only, int_pool, kernel_device, tf32


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


# ---------------------------------------------------------------- every device (cpu, and cuda when present)
# The compiled kernels of each device against a float64 brute force (ties: lowest index).

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [1, 5, 40])  # 40: the long-list path
def test_device_nn_integer_data_exact_ties_low(device, dtype, k, rng):
    dev = kernel_device(device)
    q = int_pool(rng, 300, 6, -2, 3)
    r = int_pool(rng, 900, 6, -2, 3)
    wd, wi = brute(q, r, k)
    d, i = fastsel.nn(as_t(q, dtype).to(dev), as_t(r, dtype).to(dev), k=k, backend="cpp")
    assert np.array_equal(i.cpu().numpy(), wi)
    np.testing.assert_allclose(d.cpu().double().numpy(), wd, rtol=1e-6)


@pytest.mark.parametrize("pool", ["gauss", "clusters_far"])
@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_device_nn_float64_correct(device, pool, exclude_self, allow_tf32, rng):
    dev = kernel_device(device)
    if allow_tf32:
        cuda_only(dev, "TF32 is a CUDA setting")
    a = rng.standard_normal((2500, 64)) if pool == "gauss" else clustered_pool(rng, 2500, 64)
    x = as_t(a, torch.float32)
    x64 = x.double().numpy()
    wd, wi = brute(x64, x64, 3, exclude_self)
    with tf32(allow_tf32):
        d, i = fastsel.nn(x.to(dev), k=3, exclude_self=exclude_self, backend="cpp")
    assert np.array_equal(i.cpu().numpy(), wi)
    np.testing.assert_allclose(d.cpu().double().numpy(), wd, rtol=1e-6)


def test_device_nn_block_edges_float64_correct(device, rng):
    dev = kernel_device(device)
    q = as_t(rng.standard_normal((4100, 24)), torch.float32)  # crosses the 4096-row query block
    r = as_t(rng.standard_normal((16400, 24)), torch.float32)  # and the 16384-row ref block
    wd, wi = brute(q.double().numpy(), r.double().numpy(), 4)
    d, i = fastsel.nn(q.to(dev), r.to(dev), k=4, backend="cpp")
    assert np.array_equal(i.cpu().numpy(), wi)
    np.testing.assert_allclose(d.cpu().double().numpy(), wd, rtol=1e-6)
