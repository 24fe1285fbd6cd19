"""fastsel.compat.apricot against apricot's facility location (and fastsel.diversity.facility's
precomputed kernel, initial subset and gains).

Facts carried over from jmschrei/apricot, tests/test_functions/test_facility_location.py at commit
f49bcfdfeb0d9d034119e2db11118db54cc21063: on scikit-learn's digits (1,797 x 64), 100 picks by the
lazy optimizer start with the rankings and gains below (euclidean, correlation, cosine), and the
naive euclidean run has two exactly equal gains (8645) at picks 38 and 39. The rest is checked
against the installed apricot-select (live, skipped without it) and against literal float64 greedy.
"""
import numpy as np
import pytest
import torch

from fastsel import diversity as D
from fastsel import select
from fastsel.compat.apricot import FacilityLocationSelection as FLS
from fastsel.errors import FastselError

DIGITS = {  # metric: (first picks, first gains) -- apricot's published lazy results
    "euclidean": ([945, 392, 1507, 793, 1417, 1039, 97, 1107, 1075, 867, 360, 186],
                  [7448636.0, 384346.0, 250615.0, 224118.0, 166266.0, 127456.0]),
    "corr": ([424, 1647, 396, 339, 1030, 331, 983, 1075, 1482, 1539, 1282, 493],
             [736.794, 114.2782, 65.4154, 61.3037, 54.5428, 38.7506]),
    "cosine": ([424, 615, 1545, 1385, 1482, 112, 1539, 1075, 331, 493, 885, 345],
               [1126.631, 76.1809, 43.868, 35.4606, 33.088, 32.6405]),
}


def _facility_literal(S, n, init=(), tol=0.0):
    """Plain greedy on F(A) = sum_i max_{j in A} S[j, i], every gain recomputed as sum(max(S[j], cover))
    - sum(cover), ties (gains within ``tol`` of the best) to the lowest index."""
    cover = np.zeros(S.shape[1])
    for i in init:
        cover = np.maximum(cover, S[i])
    picks, gains = [], []
    for _ in range(n):
        g = np.maximum(S, cover).sum(1) - cover.sum()
        g[list(init) + picks] = -np.inf
        j = int(np.nonzero(g >= g.max() - tol)[0][0])
        picks.append(j)
        gains.append(g[j])
        cover = np.maximum(cover, S[j])
    return picks, np.array(gains), cover.sum()


@pytest.fixture(scope="module")
def digits():
    return pytest.importorskip("sklearn.datasets").load_digits().data


@pytest.mark.parametrize("metric", sorted(DIGITS))
def test_digits_lazy_matches_apricots_published_picks(digits, metric):
    ranking, gains = DIGITS[metric]
    sel = FLS(100, metric).fit(digits)
    assert sel.ranking[:len(ranking)].tolist() == ranking
    np.testing.assert_array_almost_equal(sel.gains[:len(gains)], gains, 4)
    assert len(sel.ranking) == 100 and np.all(np.diff(sel.gains) <= 0)
    np.testing.assert_array_equal(sel.subset, digits[sel.ranking])


def test_digits_naive_keeps_apricots_exact_tie(digits):
    sel = FLS(40, "euclidean", optimizer="naive").fit(digits)
    assert sel.ranking[:12].tolist() == DIGITS["euclidean"][0]
    assert sel.gains[37] == sel.gains[38] == 8645.0  # integer data: exact, and the tie taken by index


def _live():
    return pytest.importorskip("apricot", reason="apricot-select not installed (live oracle)")


def _same(a, b, ties=False):
    """Equal rankings and gains to 1e-12. With ``ties``: up to the first pick where the two differ, and
    there only by a tie -- two rows whose gains are equal in exact arithmetic (two mutually nearest
    rows far from the rest cover each other equally well), which float rounding breaks one way in
    apricot's numba sums and possibly the other way in NumPy's."""
    scale = max(1.0, float(np.abs(a.gains).max()))
    ra, rb = a.ranking.tolist(), b.ranking.tolist()
    end = next((i for i, (u, v) in enumerate(zip(ra, rb)) if u != v), len(ra)) if ties else len(ra)
    assert rb[:end] == ra[:end] and len(rb) == len(ra)
    stop = min(end + 1, len(ra))
    np.testing.assert_allclose(b.gains[:stop], a.gains[:stop], rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "corr", "manhattan"])
@pytest.mark.parametrize("optimizer", ["lazy", "naive", "two-stage"])
def test_live_random_pools(rng, metric, optimizer):
    apricot = _live()
    X = rng.standard_normal((int(rng.integers(40, 120)), int(rng.integers(2, 9))))
    n = int(rng.integers(5, 30))
    _same(apricot.FacilityLocationSelection(n, metric, optimizer=optimizer).fit(X),
          FLS(n, metric, optimizer=optimizer).fit(X), ties=True)


@pytest.mark.parametrize("optimizer", ["lazy", "naive"])
def test_live_integer_pool_with_duplicates_and_zero_gains(rng, optimizer):
    """Few distinct rows: exact ties and exactly-0 gains once they are covered (apricot's queue order)."""
    apricot = _live()
    X = rng.integers(0, 3, size=(80, 3)).astype(float)
    _same(apricot.FacilityLocationSelection(50, optimizer=optimizer).fit(X), FLS(50, optimizer=optimizer).fit(X))


def test_live_initial_subset_costs_and_precomputed(rng):
    apricot = _live()
    X = rng.standard_normal((90, 4))
    init = sorted(rng.choice(90, 5, replace=False).tolist())
    _same(apricot.FacilityLocationSelection(15, initial_subset=init).fit(X), FLS(15, initial_subset=init).fit(X),
          ties=True)
    cost = rng.random(90) + 0.3
    _same(apricot.FacilityLocationSelection(12).fit(X, sample_cost=cost), FLS(12).fit(X, sample_cost=cost),
          ties=True)
    S = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / 4)
    a, b = apricot.FacilityLocationSelection(20, "precomputed").fit(S), FLS(20, "precomputed").fit(S)
    _same(a, b, ties=True)
    assert b.subset.shape == a.subset.shape == (0, 90)


def test_gains_add_up_to_the_objective_and_the_initial_subset_is_not_picked(rng):
    X = rng.standard_normal((60, 3))
    S = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1))
    init = [4, 17]
    sel = FLS(10, "precomputed", initial_subset=init, optimizer="naive").fit(S)
    picks, gains, total = _facility_literal(S, 10, init)
    assert sel.ranking.tolist() == picks and not set(init) & set(picks)
    np.testing.assert_allclose(sel.gains, gains, rtol=0, atol=1e-12 * S.shape[0])
    base = np.max(S[init], 0).sum()
    assert base + sel.gains.sum() == pytest.approx(total, rel=1e-12)
    mask = np.zeros(60, bool)
    mask[init] = True
    assert FLS(10, "precomputed", initial_subset=mask, optimizer="naive").fit(S).ranking.tolist() == picks


def test_transform_fit_transform_and_labels(rng):
    X = rng.standard_normal((30, 2))
    y = np.arange(30) * 10
    w = rng.random(30)
    sel = FLS(5)
    Xs, ys = sel.fit_transform(X, y)
    r = sel.ranking
    np.testing.assert_array_equal(Xs, X[r])
    np.testing.assert_array_equal(ys, y[r])
    np.testing.assert_array_equal(sel.subset_y, y[r])
    Xs, none, ws = sel.transform(X, sample_weight=w)
    assert none is None
    np.testing.assert_array_equal(ws, w[r])


@pytest.mark.parametrize("make, match", [
    (lambda X: FLS(31).fit(X), "more examples"),
    (lambda X: FLS(5, "precomputed").fit(X @ X.T), "mix negative"),
    (lambda X: FLS(5, "precomputed").fit(X), "square"),
    (lambda X: FLS(5, initial_subset=[[1, 2]]).fit(X), "one dimensional"),
    (lambda X: FLS(28, initial_subset=[1, 2, 3]).fit(X), "more than"),
    (lambda X: FLS(5, optimizer="stochastic"), "optimizer"),
    (lambda X: FLS(0), "positive"),
    (lambda X: FLS(5).partial_fit(X), "partial_fit"),
    (lambda X: FLS(5).fit(X, sample_cost=-np.ones(30)), "sample_cost"),
])
def test_bad_input_is_one_line(rng, make, match):
    X = rng.standard_normal((30, 2))
    with pytest.raises(FastselError, match=match) as e:
        make(X)
    assert "\n" not in str(e.value)


def test_native_precomputed_kernel_equals_the_literal_greedy_and_the_compat(rng):
    X = rng.standard_normal((70, 5))
    S = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / 5)
    idx, info = D.facility(S, 12, kernel="precomputed")
    picks, gains, total = _facility_literal(S, 12, tol=1e-9)  # the native rule: near-ties to the lowest index
    assert idx.tolist() == picks
    assert FLS(12, "precomputed", optimizer="naive").fit(S).ranking.tolist() == _facility_literal(S, 12)[0]
    np.testing.assert_allclose(info["gains"], gains, rtol=0, atol=1e-12 * 70)
    assert info["objective"] == pytest.approx(total, rel=1e-12)
    init = picks[:3]
    idx2, info2 = D.facility(S, 9, kernel="precomputed", initial_subset=init)
    assert idx2.tolist() == picks[3:]
    assert info2["objective"] == pytest.approx(total, rel=1e-12)
    # asymmetric similarities are read by rows, as apricot reads them
    A = S * rng.random((70, 70))
    assert D.facility(A, 8, kernel="precomputed")[0].tolist() == _facility_literal(A, 8, tol=1e-9)[0]


def test_native_rbf_callable_kernel_and_bandwidth(rng):
    x = rng.standard_normal((50, 3))
    h = 3.0
    rbf = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / h)  # noqa: E731
    a, ia = D.facility(x, 10, bandwidth=h)
    b, ib = D.facility(x, 10, kernel=rbf)
    assert a.tolist() == b.tolist()
    np.testing.assert_allclose(ia["gains"], ib["gains"], rtol=1e-9)
    assert select(x, 10, "facility", bandwidth=h).tolist() == a.tolist()
    with pytest.raises(FastselError, match="bandwidth"):
        select(x, 10, "greedy", bandwidth=h)
    with pytest.raises(FastselError, match="RBF"):
        D.facility(x @ x.T, 3, kernel="precomputed", bandwidth=1.0)
    with pytest.raises(FastselError, match="negative"):
        D.facility(x @ x.T, 3, kernel="precomputed")
    with pytest.raises(FastselError, match="n must be"):
        D.facility(x, 49, initial_subset=[0, 1])
    _, ik = D.facility(x, 5, knn=8, initial_subset=[0, 1])
    assert len(ik["gains"]) == 5 and all(g >= 0 for g in ik["gains"])


def test_euclidean_distances_one_gemm_exact_on_integers_close_otherwise(rng):
    """Squared Euclidean distances come from one GEMM on centred rows: within 1e-12 of the row scale
    of the coordinate-difference values with a large shared offset, bitwise exact on integer data."""
    from fastsel.compat import apricot as A
    X = rng.standard_normal((300, 9)) + 1e6
    diff = X[:, None, :] - X[None, :, :]
    want = np.einsum("ijk,ijk->ij", diff, diff)
    got = A._distances(X, "euclidean")
    assert np.array_equal(got, got.T) and np.all(np.diag(got) == 0)
    assert np.abs(got - want).max() <= 1e-12 * want.max()
    Z = rng.integers(-1000, 1000, size=(200, 13)).astype(np.float64)
    dz = Z[:, None, :] - Z[None, :, :]
    assert np.array_equal(A._distances(Z, "euclidean"), np.einsum("ijk,ijk->ij", dz, dz))


@pytest.mark.parametrize("metric", ["manhattan"])
def test_tiled_distances_equal_the_one_block_formula_bitwise(rng, monkeypatch, metric):
    """The distances come tile by tile, each off-diagonal tile mirrored: every value must be the one
    a single (N, N, d) block of coordinate differences gives (tiles of 9 rows, N not a multiple)."""
    from fastsel.compat import apricot as A
    monkeypatch.setattr(A, "_TILE_BYTES", 8 * 7 * 9 * 9)
    X = rng.standard_normal((41, 7)) * 10.0 ** rng.uniform(-3, 3, size=(41, 1))
    diff = X[:, None, :] - X[None, :, :]
    want = np.einsum("ijk,ijk->ij", diff, diff) if metric == "euclidean" else np.abs(diff).sum(-1)
    got = A._distances(X, metric)
    assert np.array_equal(got, want) and np.array_equal(got, got.T)
