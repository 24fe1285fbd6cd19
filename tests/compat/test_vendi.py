"""fastsel.compat.vendi against vendi-score (and fastsel.metrics.vendi_score's orders, weights and
precomputed kernels).

Facts carried over from vertaix/Vendi-Score, README.md at commit
426847eae445da7529139ad277aecf1b53892b38: the samples 0, 0, 10, 10, 20, 20 under
k(a, b) = exp(-|a - b|) score 2.9999 (three distinct values, each twice); the 3 x 3 kernel with one
0.9-similar pair and an unrelated third row scores 2.1573; the score is the effective number of
distinct elements (identical samples: 1, mutually orthogonal: n). The rest is checked against the
installed vendi-score (live, skipped without it) and against literal float64 eigenvalue formulas.
"""
import math

import numpy as np
import pytest
import torch

from fastsel import metrics as M
from fastsel.compat import vendi as V
from fastsel.errors import FastselError

ORDERS = [0, 0.5, 1, 2, "inf"]


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_readme_examples():
    assert V.score([0, 0, 10, 10, 20, 20], lambda a, b: np.exp(-np.abs(a - b))) == pytest.approx(2.9999, abs=1e-4)
    K = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert V.score_K(K) == pytest.approx(2.1573, abs=1e-4)


@pytest.mark.parametrize("q", ORDERS)
def test_identical_and_orthogonal(q):
    n = 7
    if q not in (0, 0.5):  # q < 1 on a rank-1 kernel counts vendi's rounding-level eigenvalues (as vendi)
        assert V.score_K(np.ones((n, n)), q=q) == pytest.approx(1.0, rel=1e-12)
    assert V.score_K(np.eye(n), q=q) == pytest.approx(n, rel=1e-12)
    assert V.score_dual(np.eye(n), q=q) == pytest.approx(n, rel=1e-12)
    assert M.vendi_score(np.ones((n, 3)), q) == pytest.approx(1.0, rel=1e-12)
    assert M.vendi_score(np.eye(n), q) == pytest.approx(n, rel=1e-12)


def test_orders_are_hill_numbers_of_the_eigenvalues(rng):
    x = rng.standard_normal((25, 6))
    lam = np.linalg.eigvalsh(_unit(x) @ _unit(x).T / 25)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    want = {0: len(lam), 1: np.exp(-(lam * np.log(lam)).sum()), 2: 1 / (lam ** 2).sum(),
            0.5: (np.sqrt(lam).sum()) ** 2, math.inf: 1 / lam.max()}
    for q, v in want.items():
        assert M.vendi_score(x, q) == pytest.approx(v, rel=1e-10)
        assert V.score_dual(x, q=q) == pytest.approx(v, rel=1e-10)
    vals = [M.vendi_score(x, q) for q in (0, 0.5, 1, 2, 5, math.inf)]
    assert all(a >= b - 1e-12 for a, b in zip(vals, vals[1:]))  # Hill numbers fall with the order


def test_weights_duplicate_rows_and_precomputed_kernel(rng):
    x = rng.standard_normal((20, 5))
    doubled = np.vstack([x, x[:1]])
    w = np.ones(20)
    w[0] = 2
    for q in (0.5, 1, 3, "inf"):
        assert M.vendi_score(x, q, weights=w) == pytest.approx(M.vendi_score(doubled, q), rel=1e-10)
        K = _unit(x) @ _unit(x).T
        assert M.vendi_score(K, q, kernel="precomputed") == pytest.approx(M.vendi_score(x, q), rel=1e-10)
        assert M.vendi_score(torch.from_numpy(K), q, weights=w, kernel="precomputed") == pytest.approx(
            M.vendi_score(x, q, weights=w), rel=1e-10)
        if q != 0.5:  # compat keeps vendi's raw eigenvalues: rounding-level ones count for q < 1
            assert V.score_K(K, q=q, p=w / w.sum()) == pytest.approx(M.vendi_score(x, q, weights=w), rel=1e-10)


def test_q_zero_counts_the_rank(rng):
    x = rng.standard_normal((40, 4))
    assert M.vendi_score(x, 0) == 4.0  # rank-deficient 40 x 40 kernel: rounding does not count
    assert V.score_dual(x, q=0) == 4.0
    assert V.score_K(np.eye(5), q=math.inf) == V.score_K(np.eye(5), q="inf") == pytest.approx(5.0)


@pytest.mark.parametrize("call, match", [
    (lambda x: M.vendi_score(x, -1), "order"),
    (lambda x: M.vendi_score(x, float("nan")), "order"),
    (lambda x: M.vendi_score(x, weights=np.ones(3)), "weights"),
    (lambda x: M.vendi_score(x, weights=-np.ones(len(x))), "weights"),
    (lambda x: M.vendi_score(x, kernel="precomputed"), "square"),
    (lambda x: M.vendi_score(np.triu(np.ones((4, 4))), kernel="precomputed"), "symmetric"),
    (lambda x: M.vendi_score(x, kernel="rbf"), "kernel"),
    (lambda x: V.score_K(x), "square"),
    (lambda x: V.score_K(np.eye(3), q=-2), "order"),
    (lambda x: V.score_K(np.eye(3), p=[1, 2]), "p must"),
])
def test_bad_input_is_one_line(rng, call, match):
    with pytest.raises(FastselError, match=match) as e:
        call(rng.standard_normal((6, 3)))
    assert "\n" not in str(e.value)


def _oracle():
    return pytest.importorskip("vendi_score.vendi", reason="vendi-score not installed (live oracle)")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("q", ORDERS)
def test_live_score_K_score_and_dual(rng, q):
    """q < 1 weighs rounding-level eigenvalues (of a rank-deficient kernel) heavily, and the two
    eigensolvers' rounding differs: there the kernel is full rank (n <= d for K, n >= d for the dual)."""
    vs = _oracle()
    n, d = int(rng.integers(5, 40)), int(rng.integers(2, 12))
    x = rng.standard_normal((n, d))
    xk = rng.standard_normal((min(n, d), max(n, d))) if q in (0, 0.5) else x
    xd = rng.standard_normal((max(n, d), min(n, d))) if q in (0, 0.5) else x
    K = _unit(xk) @ _unit(xk).T
    p = rng.random(len(K))
    p /= p.sum()
    for got, want in [(V.score_K(K, q=q), vs.score_K(K, q=q)), (V.score_K(K, q=q, p=p), vs.score_K(K, q=q, p=p)),
                      (V.score_K(3 * K, q=q, normalize=True), vs.score_K(3 * K, q=q, normalize=True)),
                      (V.score_dual(xd, q=q), vs.score_dual(xd, q=q))]:
        assert got == pytest.approx(want, rel=1e-12, abs=0)
    s = x[:, 0].tolist()
    k = lambda a, b: math.exp(-abs(a - b))  # noqa: E731
    assert V.score(s, k, q=q) == pytest.approx(vs.score(s, k, q=q), rel=1e-12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_live_score_X(rng):
    vs = _oracle()
    for n, d in ((8, 20), (60, 5)):
        x = rng.standard_normal((n, d))
        p = rng.random(n)
        p /= p.sum()
        assert V.score_X(x) == pytest.approx(vs.score_X(x), rel=1e-12)
        assert V.score_X(x, p=p) == pytest.approx(vs.score_X(x, p=p), rel=1e-12)
        # vendi-score 0.0.3's score_X always computes q = 1; here q is honoured (= score_K of X X^T)
        assert V.score_X(x, q=2) == pytest.approx(vs.score_K(_unit(x) @ _unit(x).T, q=2), rel=1e-12)
        assert M.vendi_score(x) == pytest.approx(vs.score_dual(x), rel=1e-12)
