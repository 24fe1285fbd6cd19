"""fastsel.greedy_from: greedy extending a selection already made, against a literal float64 loop
and against fastsel.greedy continued after the same first picks."""
import numpy as np
import pytest
import torch

import fastsel
from fastsel.errors import FastselError


def _literal(x, n, initial):
    x = np.asarray(x, dtype=np.float64)
    md = np.full(len(x), np.inf)
    for i in initial:
        md = np.minimum(md, ((x - x[i]) ** 2).sum(1))
    md[list(initial)] = -1
    out, dist = [], []
    for _ in range(n):
        j = int(np.argmax(md))  # the lowest index of the largest value
        out.append(j)
        dist.append(np.sqrt(md[j]))
        md = np.minimum(md, ((x - x[j]) ** 2).sum(1))
        md[j] = -1
        md[list(initial) + out] = -1
    return out, np.array(dist)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_literal_loop_on_integer_pools_with_ties(rng, backend, dtype):
    x = rng.integers(-4, 5, size=(300, 5)).astype(np.float64)  # many exact ties
    initial = rng.choice(300, size=7, replace=False).tolist()
    r = fastsel.greedy_from(torch.tensor(x, dtype=dtype), 40, initial, backend=backend)
    want, dist = _literal(x, 40, initial)
    assert r.indices.tolist() == want
    np.testing.assert_allclose(r.distances.double().numpy(), dist, rtol=1e-6)
    assert not set(want) & set(initial)


def test_continues_greedy(rng, backend):
    x = torch.from_numpy(rng.standard_normal((2000, 16)).astype(np.float32))
    full = fastsel.greedy(x, 60, 3, backend=backend).indices
    r = fastsel.greedy_from(x, 45, full[:15], backend=backend)
    assert r.indices.tolist() == full[15:].tolist()
    mask = torch.zeros(2000, dtype=torch.bool)
    mask[full[:15]] = True
    assert fastsel.greedy_from(x, 45, mask, backend=backend).indices.tolist() == full[15:].tolist()


@pytest.mark.parametrize("initial, n, match", [
    ([], 3, "holds no row"), ([0, 0], 3, "repeats a row"), ([50], 3, "out of range"),
    ([0.5], 3, "must be integers"), ([0, 1], 9, r"n must be in 1\.\.8"), ([0], 0, r"n must be in"),
])
def test_bad_input_is_one_line(initial, n, match):
    with pytest.raises(FastselError, match=match):
        fastsel.greedy_from(torch.zeros(10, 2).normal_(), n, initial)
