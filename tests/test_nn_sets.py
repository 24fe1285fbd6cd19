"""fastsel.nn over batches (ptr / ref_ptr) and with cosine distance, against float64 brute force."""
import numpy as np
import pytest
import torch

import fastsel
from fastsel.errors import FastselError


def brute(q, r, k, cosine=False, exclude_self=False):
    q, r = q.astype(np.float64), r.astype(np.float64)
    if cosine:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        d = 1 - q @ r.T
    else:
        d = np.sqrt(((q[:, None] - r[None]) ** 2).sum(2))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    i = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, i, 1), i


@pytest.mark.parametrize("exclude_self", [False, True])
def test_ptr_matches_per_set_search(exclude_self, rng):
    sizes = [int(s) for s in rng.integers(2, 30, size=4)]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    x = rng.integers(-2, 3, size=(ptr[-1], 3)).astype(np.float32)  # exact ties
    k = 5
    r = fastsel.nn(torch.from_numpy(x), k=k, exclude_self=exclude_self, ptr=ptr)
    for b in range(4):
        part = x[ptr[b]:ptr[b + 1]]
        avail = sizes[b] - int(exclude_self)
        d, i = brute(part, part, min(k, avail), exclude_self=exclude_self)
        assert r.indices[ptr[b]:ptr[b + 1], :d.shape[1]].tolist() == (i + ptr[b]).tolist()
        np.testing.assert_allclose(r.distances[ptr[b]:ptr[b + 1], :d.shape[1]].numpy(), d, rtol=1e-6)
        assert (r.indices[ptr[b]:ptr[b + 1], d.shape[1]:] == -1).all()
        assert torch.isinf(r.distances[ptr[b]:ptr[b + 1], d.shape[1]:]).all()


def test_ref_ptr_and_empty_sets(rng):
    q = torch.from_numpy(rng.standard_normal((7, 2)))
    ref = torch.from_numpy(rng.standard_normal((9, 2)))
    r = fastsel.nn(q, ref, k=3, ptr=[0, 3, 3, 7], ref_ptr=[0, 2, 5, 9])
    d, i = brute(q[:3].numpy(), ref[:2].numpy(), 2)
    assert r.indices[:3, :2].tolist() == i.tolist() and (r.indices[:3, 2] == -1).all()
    d, i = brute(q[3:].numpy(), ref[5:].numpy(), 3)
    assert r.indices[3:].tolist() == (i + 5).tolist()
    with pytest.raises(FastselError, match="ref_ptr"):
        fastsel.nn(q, ref, k=1, ptr=[0, 7])
    with pytest.raises(FastselError, match="same number of sets"):
        fastsel.nn(q, ref, k=1, ptr=[0, 7], ref_ptr=[0, 4, 9])
    with pytest.raises(FastselError, match="offsets rising"):
        fastsel.nn(q, ref, k=1, ptr=[0, 5], ref_ptr=[0, 9])


def test_cosine_against_float64(rng):
    x = rng.standard_normal((200, 6)).astype(np.float32)
    q = rng.standard_normal((40, 6)).astype(np.float32)
    r = fastsel.nn(torch.from_numpy(q), torch.from_numpy(x), k=4, cosine=True)
    d, i = brute(q, x, 4, cosine=True)
    assert r.indices.tolist() == i.tolist()
    np.testing.assert_allclose(r.distances.double().numpy(), d, atol=1e-6)
    assert r.distances.dtype == torch.float32
    with pytest.raises(FastselError, match="zero row"):
        fastsel.nn(torch.zeros(2, 3), torch.ones(2, 3), cosine=True)


def test_default_call_unchanged(rng):
    x = torch.from_numpy(rng.standard_normal((50, 4)))
    a = fastsel.nn(x, k=3, exclude_self=True)
    b = fastsel.nn(x, k=3, exclude_self=True, ptr=[0, 50])
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
