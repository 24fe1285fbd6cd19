"""Inputs with ``requires_grad=True``: selection is not differentiable, so the ops detach their input
and return detached distances -- no tensor that looks differentiable but carries no gradient (PyTorch's
"silently incorrect" warning), and no scalar-conversion warning from the argument checks."""
import warnings

import numpy as np
import pytest
import torch

import fastsel
from fastsel import diversity as _diversity
from fastsel.ops import sets

from _helpers import BACKENDS


def _grad_pool(rng, shape=(120, 5)):
    return torch.tensor(rng.standard_normal(shape), dtype=torch.float32, requires_grad=True)


def _detached(*ts):
    for t in ts:
        assert isinstance(t, torch.Tensor)
        assert not t.requires_grad and t.grad_fn is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_ops_return_detached_distances_without_warnings(rng, backend):
    x = _grad_pool(rng)
    plain = x.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = fastsel.greedy(x, 10, backend=backend)
        t = fastsel.threshold_decay(x, 10, backend=backend)
        q = fastsel.nn(x, x[:7], k=3, backend=backend)
        s = fastsel.nn(x, k=2, exclude_self=True, backend=backend)
        # scalar arguments given as tensors that require grad (tau, start, n) are read without a warning
        t2 = fastsel.threshold_decay(x, torch.tensor(8.0, requires_grad=True),
                                     start=torch.tensor(3.0, requires_grad=True),
                                     tau=torch.tensor(0.5, requires_grad=True), backend=backend)
    _detached(g.distances, t.distances, t.tau_at, q.distances, s.distances, t2.distances)
    # the same picks and distances as the plain tensor's
    g0 = fastsel.greedy(plain, 10, backend=backend)
    assert torch.equal(g.indices, g0.indices) and torch.equal(g.distances, g0.distances)
    q0 = fastsel.nn(plain, plain[:7], k=3, backend=backend)
    assert torch.equal(q.indices, q0.indices) and torch.equal(q.distances, q0.distances)
    t0 = fastsel.threshold_decay(plain, 10, backend=backend)
    assert torch.equal(t.indices, t0.indices)
    assert x.grad is None  # nothing was attached to the input's graph


def test_sets_and_diversity_selectors_detach(rng):
    x = _grad_pool(rng, (3, 40, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fastsel.greedy(x, 5)
        f = sets.fps(x.reshape(-1, 4), torch.arange(3).repeat_interleave(40), ratio=0.1)
        d, info = _diversity.dpp(x[0], 5, start=0)
    _detached(r.distances)
    assert not f.requires_grad and not d.requires_grad
    assert np.isfinite(info["log_det"])


def test_a_graph_built_on_the_input_is_left_alone(rng):
    """A caller's own differentiable computation on the pool still works: only fastsel's copy is detached."""
    x = _grad_pool(rng)
    y = x * 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idx = fastsel.greedy(y, 6).indices
    y[idx].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) == pytest.approx(2.0 * 6 * 5)
