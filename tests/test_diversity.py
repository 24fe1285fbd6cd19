"""The diversity selectors (fastsel.diversity: facility, dpp, herding) against their literal float64
definitions (fastsel.reference: the full kernel, plain greedy, slogdet afresh) on fresh random data
and edge cases, the null control (identically distributed sources kept in proportion), and their
use through fastsel.select, the CLI and the loop's selection step."""
import json
import math
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel import diversity as D
from fastsel import reference as R
from fastsel.cli.main import cli
from fastsel.errors import FastselError

from test_loop_science import fair, shares, stacked


@pytest.mark.parametrize("N,d,n", [(50, 3, 12), (90, 8, 30), (40, 1, 10), (30, 5, 30), (25, 4, 1)])
def test_each_selector_equals_its_literal_definition(N, d, n, rng):
    x = rng.standard_normal((N, d)) * rng.uniform(0.1, 10)
    idx, info = D.facility(x, n)
    ref, obj = R.facility(x, n)
    assert idx.tolist() == ref
    assert info["objective"] == pytest.approx(obj, rel=1e-10)
    start = int(rng.integers(N))
    ref = R.dpp(x, n, start)
    for panel in (None, 1, 3):  # the default panel covers these pools whole; 1 and 3 open many panels
        assert D.dpp(x, n, start=start, panel=panel)[0].tolist() == ref, panel
    assert D.herding(x, n)[0].tolist() == R.herding(x, n)


def test_dpp_panels_give_the_one_at_a_time_picks(rng):
    """Larger pools than the literal reference can take: the blocked DPP (panels of 2, 16 and the
    default 64 rows) against the plain pick-by-pick update (panel=1: every e_t from all C rows), on
    well-separated clusters and on N(0, 1) rows, with both kernel paths (dense and recomputed rows)."""
    centres = rng.standard_normal((12, 10)) * 4
    pools = [rng.standard_normal((900, 16)), centres[rng.integers(0, 12, 700)] + 0.5 * rng.standard_normal((700, 10))]
    for x in pools:
        for n in (60, 200):  # 8 n < N: rows recomputed from the features; 8 n >= N: the dense kernel
            plain, info = D.dpp(x, n, start=5, panel=1)
            assert info["rank_spent_at"] is None
            for panel in (2, 16, None):
                got, ginfo = D.dpp(x, n, start=5, panel=panel)
                assert got.tolist() == plain.tolist(), (panel, n)
                assert ginfo["log_det"] == pytest.approx(info["log_det"], rel=1e-12)


def test_lazy_facility_evaluates_few_gains(rng):
    """Lazy greedy is the point of the implementation: far fewer gain evaluations than N per pick."""
    x = rng.standard_normal((600, 6))
    idx, info = D.facility(x, 40)
    assert info["gain_evaluations"] < 40 * 600 / 5, info
    assert len(set(idx.tolist())) == 40


def test_duplicates_ties_and_a_full_selection(rng):
    base = rng.standard_normal((6, 3))
    x = np.concatenate([base, base, base[:2]])  # rows 6..11 repeat 0..5, 12..13 repeat 0..1
    N = len(x)
    K = R.rbf_kernel(x)

    def coverage(picks):  # F(S) of every prefix: equal gains may be taken in either order within rounding
        return [np.max(K[:, picks[:t]], 1).sum() for t in range(1, len(picks) + 1)]
    ours, (ref, _) = D.facility(x, N)[0].tolist(), R.facility(x, N)
    assert coverage(ours) == pytest.approx(coverage(ref), rel=1e-12) and sorted(ours) == list(range(N))
    for name, ours, ref in [("dpp", D.dpp(x, N, start=0)[0].tolist(), R.dpp(x, N, 0)),
                            ("herding", D.herding(x, N)[0].tolist(), R.herding(x, N))]:
        assert ours == ref, name
        assert sorted(ours) == list(range(N)), name
    # facility location and the DPP take one copy of each distinct row before any repeat
    for idx in (D.facility(x, 6)[0], D.dpp(x, 6, start=0)[0]):
        assert sorted(idx.tolist()) == list(range(6)), idx
    # after the six distinct rows the DPP's gain is spent: the repeats come in index order
    idx, info = D.dpp(x, N, start=0)
    assert info["rank_spent_at"] == 6 and idx[6:].tolist() == list(range(6, N))


def test_identical_rows_and_scale_invariance(rng):
    same = np.ones((7, 3))
    assert D.facility(same, 3)[0].tolist() == [0, 1, 2]
    assert D.herding(same, 3)[0].tolist() == [0, 1, 2]
    assert D.dpp(same, 3, start=4)[0].tolist() == [4, 0, 1]
    x = rng.standard_normal((80, 5))
    for f in (lambda a: D.facility(a, 15)[0], lambda a: D.herding(a, 15)[0], lambda a: D.dpp(a, 15, start=2)[0]):
        assert torch.equal(f(x), f(x * 1024.0))  # the bandwidth follows the pool


def test_bad_input_is_one_clear_error(rng):
    x = rng.standard_normal((10, 2))
    with pytest.raises(FastselError, match="n must be"):
        D.facility(x, 11)
    with pytest.raises(FastselError, match="bandwidth"):
        D.herding(x, 3, bandwidth=-1.0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(FastselError, match="NaN"):
        D.dpp(bad, 3)


@pytest.mark.parametrize("method", ["facility", "dpp", "herding", "semdedup", "kmeans-balanced"])
def test_identical_sources_are_kept_in_proportion(method, rng):
    """The null control: three sources drawn from one distribution, stored one after another."""
    k, per, runs = 3, 200, 4
    N, n = k * per, per
    got = np.mean([shares(fastsel.select(stacked(rng, k, per, d=8), n, method, seed=s), k, per)
                   for s in range(runs)], 0)
    assert fair(got, k, n, N, runs), got


def test_a_spread_source_is_preferred_by_coverage_and_diversity_not_by_herding(rng):
    """What each criterion keeps from a pool of 100 spread rows and 300 rows in tight clusters: the
    DPP and facility location favour the spread source beyond its 25 % share; herding, which matches
    the pool's kernel mean, keeps the dense source at least in proportion."""
    spread = rng.standard_normal((100, 8)) * 3
    tight = rng.standard_normal((10, 8))[rng.integers(10, size=300)] + 0.01 * rng.standard_normal((300, 8))
    x = np.concatenate([spread, tight])
    real = {m: float((fastsel.select(x, 80, m, seed=0) < 100).float().mean()) for m in ("facility", "dpp", "herding")}
    assert real["dpp"] > 0.5 and real["facility"] > 0.25, real
    assert real["herding"] < real["dpp"], real


def test_through_the_cli(tmp_path, rng):
    p = tmp_path / "x.npy"
    x = rng.standard_normal((70, 4)).astype(np.float32)
    np.save(p, x)
    for method in ("facility", "dpp", "herding"):
        out = tmp_path / f"{method}.npy"
        r = CliRunner().invoke(cli, ["select", "--in", str(p), "--n", "9", "--method", method, "--seed", "3",
                                     "--out", str(out), "--json"])
        assert r.exit_code == 0, r.output
        got = np.load(out).tolist()
        assert got == fastsel.select(x, 9, method, seed=3).tolist()
        assert json.loads(r.stdout)["n"] == 9


def test_the_loop_selection_step_runs_them(rng):
    from fastsel.loop.pool import Candidates, select_from
    k, per = 2, 40
    f = stacked(rng, k, per, d=6)
    c = Candidates(np.repeat(np.arange(k), per).astype(np.int16), np.tile(np.arange(per), k), f)
    for method in ("facility", "dpp", "herding"):
        rows = select_from(c, 20, method, seed=0)
        assert len(np.unique(rows)) == 20 and rows.min() >= 0 and rows.max() < k * per, method
        start = int(np.random.default_rng(0).integers(k * per))  # the loop draws the start from its seed
        assert rows.tolist() == fastsel.select(f, 20, method, seed=0, start=start).tolist(), method


def test_bench_selectors_agrees_with_its_references(tmp_path):
    """`fastsel bench selectors` on a tiny pool: DPP's picks equal the literal numpy fast greedy MAP on
    the N x N kernel; facility and Vendi rows agree with apricot / vendi-score where installed."""
    from types import SimpleNamespace

    from fastsel.benchmarks import selectors as B
    rows = B.run(SimpleNamespace(sizes="300", d=16, n=20, out=str(tmp_path)))
    ops_ = {r["op"] for r in rows}
    assert {"facility", "dpp", "semdedup", "herding", "vendi"} <= ops_
    assert [r for r in rows if r["op"] == "semdedup"][0]["agree"].startswith("same kept set: True")
    dpp = [r for r in rows if r["op"] == "dpp"][0]
    assert dpp["agree"] == "same picks: True"
    for r in rows:
        if r["op"] == "facility" and r["anchor_s"]:
            assert r["agree"].startswith("same picks: True")
        if r["op"] == "vendi" and r["anchor_s"]:
            assert float(r["agree"].split()[-1]) < 1e-8
    assert (tmp_path / "selectors.md").read_text().count("\n") == len(rows) + 2


def test_fast_map_numpy_reference_is_greedy_log_det():
    """The bench's numpy fast-MAP reference picks, at every step, the row that maximises log det L_S
    (checked by brute force on a small kernel) -- so 'same picks' compares against the right thing."""
    from fastsel.benchmarks.selectors import fast_map_numpy, rbf
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 3))
    L = rbf(x, 2.0)
    picks = fast_map_numpy(L.copy(), 8, start=0)
    S = [0]
    for _ in range(7):
        best = max((j for j in range(40) if j not in S), key=lambda j: np.linalg.slogdet(L[np.ix_(S + [j], S + [j])])[1])
        S.append(best)
    assert picks == S


@pytest.mark.parametrize("method", ["facility", "dpp", "herding"])
def test_dense_kernel_and_recomputed_columns_pick_the_same(method, monkeypatch):
    """The kernel kept in memory (small pools) and recomputed column by column (FASTSEL_KERNEL_BYTES=0)
    give the same picks."""
    from fastsel import diversity as D
    x = np.random.default_rng(21).standard_normal((700, 12)).astype(np.float32)
    fn = getattr(D, method)
    kw = {"start": 3} if method == "dpp" else {}
    monkeypatch.setenv("FASTSEL_KERNEL_BYTES", str(2 ** 30))
    a = fn(x, 100, **kw)[0]  # dpp keeps the kernel from n >= N / 8
    monkeypatch.setenv("FASTSEL_KERNEL_BYTES", "0")
    b = fn(x, 100, **kw)[0]
    assert torch.equal(a, b)
    monkeypatch.setenv("FASTSEL_KERNEL_BYTES", "lots")  # read by all three (dpp: even where n is small)
    with pytest.raises(FastselError, match="FASTSEL_KERNEL_BYTES"):
        fn(x, 5, **kw)


def test_dpp_log_det_counts_every_pick(rng):
    x = rng.standard_normal((40, 3))
    idx, info = D.dpp(x, 5, start=0)
    xc = torch.as_tensor(x) - torch.as_tensor(x).mean(0)
    d2 = torch.cdist(xc[idx], xc[idx]) ** 2
    L = torch.exp(-d2 / info["bandwidth"])
    assert abs(info["log_det"] - float(torch.linalg.slogdet(L)[1])) < 1e-9


def test_facility_on_duplicates_takes_the_rest_in_index_order_without_rescanning():
    base = np.random.default_rng(5).standard_normal((10, 4))
    x = base[np.arange(1500) % 10]  # 10 distinct rows, 150 copies each
    idx, info = D.facility(x, 600)
    want = R.facility(torch.as_tensor(x), 600)
    want = want[0] if isinstance(want, tuple) else want
    assert torch.equal(idx, torch.as_tensor(want))
    assert info["gain_evaluations"] < 15000  # not ~1,000 re-evaluations for each of the 600 picks


@pytest.mark.parametrize("method", ["facility", "dpp", "herding"])
def test_a_large_offset_does_not_change_the_picks(method, rng):
    y = rng.standard_normal((300, 6)) + 1e7  # stored with the offset ...
    kw = {"start": 0} if method == "dpp" else {}
    a = getattr(D, method)(y - 1e7, 40, **kw)[0]  # ... and without it (exact: y - 1e7 is representable)
    b = getattr(D, method)(y, 40, **kw)[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("N,d,n,k", [(60, 3, 15, 5), (120, 8, 40, 10), (40, 1, 10, 4), (30, 5, 30, 6),
                                     (25, 4, 1, 3), (35, 2, 35, 35), (50, 6, 20, 1)])
def test_knn_facility_equals_its_literal_definition(N, d, n, k, rng):
    """Facility location on the exact k-NN graph (fastsel.nn, the graph by column, lazy greedy)
    against plain greedy on the N x N kernel masked to each row's k nearest (stable sort)."""
    x = (rng.standard_normal((N, d)) * rng.uniform(0.1, 10)).astype(np.float32)
    idx, info = D.facility(x, n, knn=k)
    ref, obj = R.facility_knn(x, n, k)
    assert idx.tolist() == ref
    assert info["objective"] == pytest.approx(obj, rel=1e-10) and info["knn"] == k


def test_knn_facility_with_every_row_a_neighbour_is_the_dense_one(rng):
    x = rng.standard_normal((70, 5))
    dense, di = D.facility(x, 25)
    sparse, si = D.facility(x, 25, knn=70)
    assert sparse.tolist() == dense.tolist() and si["objective"] == pytest.approx(di["objective"], rel=1e-12)


def test_knn_facility_on_duplicates_and_through_select_and_cli(tmp_path, rng):
    base = rng.standard_normal((8, 3)).astype(np.float32)
    x = np.concatenate([base, base, base[:3]])  # every row of base twice, rows 0..2 three times
    ref, _ = R.facility_knn(x, len(x), 4)
    idx = D.facility(x, len(x), knn=4)[0].tolist()
    assert idx == ref and sorted(idx) == list(range(len(x)))
    assert fastsel.select(x, 5, "facility", knn=4).tolist() == ref[:5]
    p, out = tmp_path / "x.npy", tmp_path / "picked.npy"
    np.save(p, x)
    r = CliRunner().invoke(cli, ["select", "--in", str(p), "--n", "5", "--method", "facility", "--knn", "4",
                                 "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert np.load(out).tolist() == ref[:5] and json.loads(r.stdout)["knn"] == 4
    r = CliRunner().invoke(cli, ["select", "--in", str(p), "--n", "5", "--method", "dpp", "--knn", "4",
                                 "--out", str(tmp_path / "no.npy")])
    assert r.exit_code != 0 and "--knn applies to --method facility" in r.output
    with pytest.raises(FastselError, match="knn"):
        D.facility(x, 3, knn=0)
    with pytest.raises(FastselError, match="knn applies to the facility"):
        fastsel.select(x, 3, "greedy", knn=4)
    with pytest.raises(TypeError):
        fastsel.select(x, 3, "facility", kn=4)  # a misspelt keyword is not passed on silently


def test_knn_facility_keeps_identical_sources_in_proportion(rng):
    """The null control for the sparse objective: three sources from one distribution."""
    k, per, runs = 3, 200, 4
    N, n = k * per, per
    got = np.mean([shares(D.facility(stacked(rng, k, per, d=8), n, knn=16)[0], k, per) for _ in range(runs)], 0)
    assert fair(got, k, n, N, runs), got


def test_bench_selectors_scale_rows_run_each_in_its_own_process(tmp_path, monkeypatch):
    """`fastsel bench selectors --scale` on tiny sizes: every row finishes in a child process and
    reports its time, peak memory and what the selector found."""
    from types import SimpleNamespace

    from fastsel.benchmarks import selectors as B
    from fastsel.benchmarks import selectors_scale as S
    monkeypatch.setattr(S, "SCALE_ROWS", (("facility-knn", 300, 20, 5), ("dpp", 400, 10, None),
                                          ("semdedup", 500, 60, None), ("vendi", 300, None, None)))
    rows = B.run(SimpleNamespace(sizes="", d=8, n=10, scale=True, out=str(tmp_path)))
    assert [r["op"] for r in rows] == ["facility-knn", "dpp", "semdedup", "vendi"]
    for r in rows:
        assert r["fastsel_s"] is not None and r["fastsel_s"] > 0 and r["peak_rss_gb"] > 0, r
    assert "knn 5" in rows[0]["note"] and "vendi" in rows[3]["note"]
    x = S.pool(300, 8)
    assert rows[0]["note"].count("objective") == 1
    want = D.facility(x, 20, knn=5)[1]["objective"]
    assert f"objective {want:.6g}" in rows[0]["note"]
    assert (tmp_path / "selectors.md").exists()



def test_dpp_spent_rank_fills_a_distinct_row_before_a_duplicate():
    """Issue #44 item 8: a 13-row 1-D pool whose rows 1 and 2 are copies, n = 12. The kernel's rank is
    spent after 11 picks with row 2 (a copy of picked row 1, gain 0) and row 8 (distinct, a tiny gain
    under the 1e-10 cut-off) left: the fill takes row 8 (index order took row 2: both copies), and
    rank_spent_at says where it ran out; the literal reference agrees."""
    x = torch.tensor([0.0, 11.0, 11.0] + [float(v) for v in range(1, 11)], dtype=torch.float64)[:, None]
    idx, info = D.dpp(x, 12, start=0)
    assert info["rank_spent_at"] == 11 and info["log_det"] == -math.inf
    assert 8 in idx.tolist() and not ({1, 2} <= set(idx.tolist())), idx.tolist()
    assert idx.tolist() == R.dpp(x, 12, 0, bandwidth=info["bandwidth"])


# ---------------------------------------------------------------- facility on the float32 kernel, certified

def _f32(monkeypatch, on=True):
    """The float32 path for every pool size (on) or never (off)."""
    monkeypatch.setattr(D, "F32_MIN_ROWS", 0 if on else 10 ** 9)


needs_kernel = pytest.mark.skipif(not D._fused(torch.zeros(1)), reason="the compiled facility kernels are not built")


@needs_kernel
@pytest.mark.parametrize("case", ["gauss", "clusters", "one-dim", "tiny-bandwidth", "wide-bandwidth", "outlier",
                                  "near-full", "initial"])
def test_float32_facility_picks_what_the_literal_definition_picks(case, monkeypatch):
    """The float32 kernel with certified picks and float64 rechecks gives the literal float64 greedy's picks,
    objective and gains, on fresh random data of several shapes (the tie rule included)."""
    g = np.random.default_rng(zlib.crc32(case.encode()))
    N, n, kw = 400, 60, {}
    if case == "gauss":
        x = g.standard_normal((N, 24))
    elif case == "clusters":
        x = (g.standard_normal((8, 16)) * 5)[g.integers(0, 8, N)] + g.standard_normal((N, 16))
    elif case == "one-dim":
        x = g.standard_normal((N, 1))
    elif case == "tiny-bandwidth":  # most kernel values underflow float32
        x, kw = g.standard_normal((N, 8)), {"bandwidth": 0.05}
    elif case == "wide-bandwidth":  # every value near 1: gains differ in the last digits
        x, kw = g.standard_normal((N, 8)), {"bandwidth": 1e4}
    elif case == "outlier":
        x = g.standard_normal((N, 8))
        x[7] *= 40
    elif case == "near-full":
        x, n = g.standard_normal((N, 4)), N - 3
    else:
        x = g.standard_normal((N, 10))
    init = [3, 50, 51, 399] if case == "initial" else None
    _f32(monkeypatch)
    idx, info = D.facility(x, n, initial_subset=init, **kw)
    _f32(monkeypatch, False)
    idx64, info64 = D.facility(x, n, initial_subset=init, **kw)
    assert torch.equal(idx, idx64)
    if init is None:
        ref, obj = R.facility(x, n, kw.get("bandwidth"))
        assert idx.tolist() == ref and abs(info["objective"] - obj) <= 1e-9 * abs(obj)
    assert info["objective"] == pytest.approx(info64["objective"], rel=1e-12)
    assert np.allclose(info["gains"], info64["gains"], rtol=1e-10, atol=1e-12)


@needs_kernel
@pytest.mark.parametrize("scale", [1e-25, 1e-22, 1e-12, 1e12, 1e18, 1e25])
def test_float32_facility_picks_the_same_at_any_scale_of_the_features(scale, monkeypatch):
    """float32 overflows above ~1e19 and goes subnormal below ~1e-19: the path rescales by a power of
    two, so the picks are the float64 ones (and the literal definition's) whatever the units."""
    x = np.random.default_rng(1).standard_normal((400, 16))
    want, obj = R.facility(x, 60)
    _f32(monkeypatch)
    idx, info = D.facility(x * scale, 60)
    assert "rechecked" in info and idx.tolist() == want
    assert info["objective"] == pytest.approx(obj, rel=1e-12)


@needs_kernel
def test_the_float32_gemm_check_reads_every_precision_setting(monkeypatch):
    """A TF32/bf16 setting in either of torch's precision APIs or oneDNN's environment turns the float32
    path off (never an exception from mixing the two APIs); the probe GEMM passes in plain float32."""
    assert D._f32_gemm_is_ieee()
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")
    assert not D._f32_gemm_is_ieee()
    monkeypatch.delenv("ONEDNN_DEFAULT_FPMATH_MODE")
    cuda = torch.backends.cuda.matmul
    old = cuda.fp32_precision
    try:
        cuda.fp32_precision = "tf32"  # a training script's CUDA setting: the CPU check must not raise
        assert D._f32_gemm_is_ieee() in (True, False)
    finally:
        cuda.fp32_precision = old
    mk = torch.backends.mkldnn.matmul
    old = mk.fp32_precision
    try:
        mk.fp32_precision = "bf16"
        assert not D._f32_gemm_is_ieee()
    finally:
        mk.fp32_precision = old
    assert D._f32_gemm_is_ieee()


@needs_kernel
def test_the_float32_path_runs_where_it_applies_and_steps_aside_where_it_cannot_decide(monkeypatch):
    """The certified path is the one taken (it reports its rechecks); a pool of duplicates, whose gains are
    all 0 once each distinct row is covered, leaves the decision to the float64 path (same picks as the
    literal definition); a float32 GEMM that may run in bf16/TF32 is not used at all."""
    g = np.random.default_rng(3)
    x = g.standard_normal((300, 6))
    _f32(monkeypatch)
    assert "rechecked" in D.facility(x, 20)[1]
    dup = g.standard_normal((12, 5))[np.arange(240) % 12]
    idx, info = D.facility(dup, 30)
    assert "rechecked" not in info and idx.tolist() == R.facility(dup, 30)[0]
    torch.set_float32_matmul_precision("medium")  # float32 GEMMs may run in bf16 on the CPU
    try:
        assert not D._f32_gemm_is_ieee()
        assert "rechecked" not in D.facility(x, 20)[1]
    finally:
        torch.set_float32_matmul_precision("highest")


@needs_kernel
def test_the_float32_kernels_bound_holds_and_the_gain_intervals_contain_the_float64_gains():
    """Every float32 kernel value lies within rho K~ + TINY of the float64 value; every gain interval the
    lazy greedy decides with contains the float64 gain, every recheck equals it, and the float64 cover is
    kept exactly, for covers of 0, 1, 7 and 120 picks."""
    g = np.random.default_rng(11)
    x = torch.as_tensor(g.standard_normal((500, 48)) * np.linspace(0.1, 3, 48))
    xc, _, h = D._prepare(x, 1, None)
    K = D._Kernel32(xc, h)
    K64 = D._Kernel(xc, h).dense
    err = (K.dense.double() - K64).abs()
    assert bool((err <= K.rho * K.dense.double() + D.TINY).all())
    assert 1e-7 < K.rho < 1e-3  # a real bound, not a vacuous one
    lo_width = []
    for picks in ([], [0], list(g.choice(500, 7, replace=False)), list(g.choice(500, 120, replace=False))):
        cov = D._Cover32(K)
        c64 = torch.zeros(500, dtype=torch.float64)
        for p in picks:
            cov.add(int(p))
            c64 = torch.maximum(c64, K64[int(p)])
        truth = (K64 - c64).clamp_min(0).sum(1)
        js = list(range(500))
        for (lo, hi, j), ex in zip(D._intervals(K, cov, js), D._exact_gains(K, cov, js)):
            assert lo <= float(truth[j]) <= hi, (len(picks), j)
            assert abs(ex - float(truth[j])) <= 1e-12 * max(1.0, float(truth[j]))
            lo_width.append(hi - lo)
        assert torch.allclose(cov.c64, c64, rtol=1e-13, atol=0)
    assert max(lo_width) > 0


@needs_kernel
def test_facility_kernels_against_float64_references(rng):
    """fastsel::_facility_gains (both dtypes, with and without the threshold sum) and _facility_mirror
    against torch in float64, on fresh random data and odd sizes."""
    for N in (1, 7, 255, 257, 1000):
        K = torch.as_tensor(rng.random((N, N)))
        c = torch.as_tensor(rng.random(N)) * 0.7
        rows = torch.as_tensor(rng.integers(0, N, 9))
        ref = (K[rows] - c).clamp_min(0).sum(1)
        got = torch.ops.fastsel._facility_gains(K, rows, c)
        assert torch.allclose(got[:, 0], ref, rtol=1e-13) and bool((got[:, 1] == 0).all())
        K32, c32, t32 = K.float(), c.float(), (c * 0.9).float()
        got = torch.ops.fastsel._facility_gains(K32, rows, c32, t32)
        K64 = K32.double()
        assert torch.allclose(got[:, 0], (K64[rows] - c32.double()).clamp_min(0).sum(1), rtol=2e-6, atol=1e-6)
        assert torch.allclose(got[:, 1], (K64[rows] * (K32[rows] >= t32)).sum(1), rtol=2e-6, atol=1e-6)
        for dt in (torch.float32, torch.float64):
            M = torch.as_tensor(rng.random((N, N))).to(dt)
            want = M.clone()
            a, b = N // 5, N // 2
            want[b:, a:b] = want[a:b, b:].T
            torch.ops.fastsel._facility_mirror(M, a, b)
            assert torch.equal(M, want)
    with pytest.raises(RuntimeError, match="out of range"):
        torch.ops.fastsel._facility_gains(K, torch.tensor([N]), c)
