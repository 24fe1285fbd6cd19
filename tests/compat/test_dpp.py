"""fastsel.compat.dpp against fast-map-dpp (github.com/laming-chen/fast-map-dpp at commit
6ab745ca1273941412a7f32ce6432549cfe4b5af), re-expressed: its dpp_test.py builds a random kernel --
quality scores exp(0.01 z + 0.2), unit-norm Gaussian feature vectors, L = diag(q) F F^T diag(q) --
and runs ``dpp(kernel_matrix, max_length)`` and ``dpp_sw(kernel_matrix, window_size, max_length)``
(it only times them, at N = d = 5000). Here the same kernel, smaller and fresh on every run (the
``rng`` fixture), is held to a literal float64 oracle: greedy MAP that recomputes every
candidate's log det L_{S+j} afresh (slogdet) and stops before a gain exp(log det L_{S+j} - log det L_S)
below epsilon; the sliding window's oracle does the same over the newest window_size - 1 picks.
Also fastsel.diversity.dpp's kernel inputs (precomputed matrix, function, quality scores).
"""
import math

import numpy as np
import pytest
import torch

from fastsel import diversity as D
from fastsel.compat.dpp import dpp, dpp_sw
from fastsel.errors import FastselError


def peer_kernel(rng, N, d):
    """fast-map-dpp's test kernel: L = diag(q) S diag(q), S the Gram of unit-norm Gaussian vectors."""
    scores = np.exp(0.01 * rng.standard_normal(N) + 0.2)
    f = rng.standard_normal((N, d))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return scores[:, None] * (f @ f.T) * scores[None, :], scores, f


def oracle(L, max_length, epsilon=1e-10, window=None):
    """Greedy MAP, literally: the first pick is the largest L_jj; each next pick maximises
    det L_{W+j} / det L_W over unpicked j, W the picks so far (or the newest window - 1 of them),
    every determinant from slogdet; stop before a ratio below epsilon."""
    N = len(L)
    picks = [int(np.argmax(np.diag(L)))]
    while len(picks) < min(max_length, N):
        W = picks if window is None else picks[max(0, len(picks) - (window - 1)):] if window > 1 else []
        base = np.linalg.slogdet(L[np.ix_(W, W)])[1] if W else 0.0
        ratio = np.full(N, -np.inf)
        for j in range(N):
            if j in picks:
                continue
            sign, ld = np.linalg.slogdet(L[np.ix_(W + [j], W + [j])])
            ratio[j] = math.exp(ld - base) if sign > 0 else 0.0
        j = int(np.argmax(ratio))
        if ratio[j] < epsilon:
            break
        picks.append(j)
    return picks


def test_dpp_matches_the_log_det_oracle_on_the_peer_kernel(rng):
    L, _, _ = peer_kernel(rng, 80, 80)
    got = dpp(L, 25)
    assert isinstance(got, list) and all(type(i) is int for i in got)
    assert got == oracle(L, 25)


def test_dpp_stops_when_the_rank_is_spent(rng):
    """d < N: the kernel has rank d, so the (d+1)-th gain is rounding (< 1e-10): d picks, not max_length."""
    L, _, _ = peer_kernel(rng, 60, 12)
    got = dpp(L, 40)
    assert len(got) == 12 and got == oracle(L, 40)


def test_dpp_epsilon_is_the_stopping_rule(rng):
    L, _, _ = peer_kernel(rng, 50, 50)
    eps = float(rng.uniform(0.4, 0.7))
    got = dpp(L, 50, epsilon=eps)
    assert got == oracle(L, 50, epsilon=eps)
    assert 1 <= len(got) < 50
    # more than N asked: at most N, all distinct
    full = dpp(L, 500)
    assert sorted(full) == list(range(50)) and full == oracle(L, 500)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_dpp_sw_matches_the_windowed_oracle(rng, window):
    L, _, _ = peer_kernel(rng, 40, 40)
    got = dpp_sw(L, window, 30)
    assert all(type(i) is int for i in got) and len(set(got)) == len(got)
    assert got == oracle(L, 30, window=window)


def test_dpp_sw_window_at_least_the_length_is_plain_dpp(rng):
    L, _, _ = peer_kernel(rng, 50, 20)
    assert dpp_sw(L, 100, 30) == dpp(L, 30) == oracle(L, 30)
    assert dpp_sw(L, 31, 30) == dpp(L, 30)


def test_dpp_sw_stopping_rule(rng):
    L, _, _ = peer_kernel(rng, 40, 6)  # rank 6: a window of 8 spends it
    got = dpp_sw(L, 8, 30)
    assert got == oracle(L, 30, window=8)
    eps = float(rng.uniform(0.2, 0.5))
    assert dpp_sw(L, 3, 30, epsilon=eps) == oracle(L, 30, epsilon=eps, window=3)


def test_first_pick_always_made():
    """The peer picks the largest diagonal entry before any epsilon test: a zero kernel gives one pick."""
    Z = np.zeros((5, 5))
    assert dpp(Z, 3) == [0] and dpp_sw(Z, 2, 3) == [0]
    L = np.diag([0.5, 2.0, 1.0])
    assert dpp(L, 3, epsilon=1.5) == [1]
    assert dpp(L, 3) == [1, 2, 0] and dpp_sw(L, 2, 3) == [1, 2, 0]


def test_tensor_input_and_float32(rng):
    L, _, _ = peer_kernel(rng, 30, 30)
    assert dpp(torch.tensor(L), 10) == dpp(L, 10)
    assert dpp_sw(torch.tensor(L), 3, 10) == dpp_sw(L, 3, 10)
    L32 = L.astype(np.float32)
    assert dpp(L32, 10) == oracle(L32.astype(np.float64), 10)


@pytest.mark.parametrize("call", [
    lambda L: dpp(L, 0),
    lambda L: dpp(L, 3, epsilon=0.0),
    lambda L: dpp(L, 3, epsilon=-math.inf),
    lambda L: dpp(L, 3, epsilon=math.nan),
    lambda L: dpp_sw(L, 0, 3),
    lambda L: dpp_sw(L, 2, -1),
    lambda L: dpp(L[:, :3], 2),
    lambda L: dpp(L + np.triu(np.ones_like(L), 1), 2),
    lambda L: dpp(np.where(np.eye(len(L), dtype=bool), -1.0, L), 2),
    lambda L: dpp(np.where(np.eye(len(L), dtype=bool), np.nan, L), 2),
    lambda L: dpp_sw(L[:, :3], 2, 2),
])
def test_refusals(rng, call):
    L, _, _ = peer_kernel(rng, 6, 6)
    with pytest.raises(FastselError) as e:
        call(L)
    assert "\n" not in str(e.value)


# fastsel.diversity.dpp's kernel inputs


def test_native_quality_and_kernel_inputs_agree(rng):
    L, q, f = peer_kernel(rng, 70, 30)
    S = f @ f.T
    ref = oracle(L, 20)
    a, ia = D.dpp(L, 20, kernel="precomputed")
    b, ib = D.dpp(S, 20, kernel="precomputed", quality=q)
    c, ic = D.dpp(f, 20, kernel=lambda u, v: u @ v.T, quality=torch.tensor(q), panel=7)
    assert a.tolist() == b.tolist() == c.tolist() == ref
    assert ia["bandwidth"] is None and ia["rank_spent_at"] is None
    sign, ld = np.linalg.slogdet(L[np.ix_(ref, ref)])
    for info in (ia, ib, ic):
        assert sign > 0 and info["log_det"] == pytest.approx(ld, rel=1e-9, abs=1e-9)


def test_native_rbf_with_quality_is_the_precomputed_kernel(rng):
    x = rng.standard_normal((90, 4))
    q = rng.uniform(0.5, 2.0, 90)
    idx, info = D.dpp(x, 15, quality=q)
    xc = x - x.mean(0)
    sq = ((xc[:, None, :] - xc[None, :, :]) ** 2).sum(-1)
    K = np.exp(-sq / info["bandwidth"])
    L = q[:, None] * K * q[None, :]
    assert idx.tolist() == oracle(L, 15)  # the first pick is the largest L_jj = q_j^2, not a seeded draw
    # without quality the default is unchanged: a seeded first pick, or start
    assert D.dpp(x, 15, start=3)[0].tolist() == D.dpp(K, 15, kernel="precomputed", start=3)[0].tolist()


def test_native_rank_spent_fill_and_zero_kernel(rng):
    L, _, _ = peer_kernel(rng, 20, 5)
    idx, info = D.dpp(L, 12, kernel="precomputed")
    assert info["rank_spent_at"] == 5 and info["log_det"] == -math.inf
    assert idx[:5].tolist() == oracle(L, 12) and sorted(set(idx.tolist())) == sorted(idx.tolist())
    idx, info = D.dpp(np.zeros((4, 4)), 3, kernel="precomputed")
    assert idx.tolist() == [0, 1, 2] and info["rank_spent_at"] == 0


@pytest.mark.parametrize("kw, x", [
    ({"kernel": "precomputed", "bandwidth": 1.0}, np.eye(4)),
    ({"kernel": "cosine"}, np.eye(4)),
    ({"quality": np.ones(3)}, np.eye(4)),
    ({"quality": -np.ones(4)}, np.eye(4)),
    ({"quality": np.array([1, 1, np.inf, 1.0])}, np.eye(4)),
    ({"epsilon": -1.0}, np.eye(4)),
    ({"kernel": lambda a, b: a @ b.T[:, :1]}, np.eye(4)),
    ({"kernel": lambda a, b: -(a @ b.T)}, np.eye(4)),
    ({"kernel": "precomputed"}, np.ones((4, 3))),
])
def test_native_refusals(kw, x):
    with pytest.raises(FastselError) as e:
        D.dpp(x, 2, **kw)
    assert "\n" not in str(e.value)
