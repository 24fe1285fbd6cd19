"""k-means, SemDeDup and k-means balanced sampling (fastsel.clusters) against literal float64
definitions (fastsel.reference.lloyd_step / semdedup_m), on fresh random data and edge cases,
with the null control (identically distributed sources kept in proportion)."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel import clusters as C
from fastsel import reference as R
from fastsel.cli.main import cli
from fastsel.errors import FastselError



def blobs(rng, N=400, d=16, centres=6, spread=0.3):
    c = rng.standard_normal((centres, d)) * 3
    return (c[rng.integers(centres, size=N)] + spread * rng.standard_normal((N, d))).astype(np.float32)


def test_kmeans_ends_at_a_lloyd_fixed_point_and_is_seeded(rng):
    x = blobs(rng)
    a, c, rounds = C.kmeans(x, 8, seed=5)
    a2, c2 = R.lloyd_step(x, c)
    assert torch.equal(a, a2) and torch.allclose(c, c2, rtol=0, atol=1e-12)
    b, cb, _ = C.kmeans(x, 8, seed=5)
    assert torch.equal(a, b) and torch.equal(c, cb)
    assert rounds >= 1


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e7])
def test_the_float32_screen_assigns_as_the_float64_form(rng, offset):
    """_Nearest (float32 GEMM screen, float64 re-check of close calls) equals the float64 form on rows
    equidistant from two centres, on centres a hair apart, on duplicates and far from the origin."""
    c = rng.standard_normal((12, 16))
    c[5] = c[4] + 1e-9  # two centres a hair apart: every near row is a close call
    mid = (c[0] + c[1]) / 2  # equidistant from centres 0 and 1 (to rounding): a tie, or nearly
    x = np.concatenate([c[rng.integers(12, size=500)] + 0.3 * rng.standard_normal((500, 16)),
                        np.repeat(mid[None], 5, 0), c[4:6] + 1e-12, c[:3]]) + offset
    x, c = torch.as_tensor(x), torch.as_tensor(c + offset)
    screen = C._Nearest(x)
    assert torch.equal(screen(c), C._nearest(x, c))
    assert screen.rechecked >= 7  # the ties and the hair-apart centres went to float64
    assert torch.equal(screen(c[:1]), torch.zeros(len(x), dtype=torch.int64))


def test_kmeans_trained_on_a_sample_then_assigns_every_row(rng, monkeypatch):
    """Above ``sample`` rows the centres are those of the plain k-means of a seeded sample (sorted
    rows), and every row goes to its nearest trained centre (checked literally); SemDeDup switches
    to it above TRAIN_PER_CENTRE rows per centre and its scores still follow the literal rule."""
    x = blobs(rng, N=900, d=6, centres=5, spread=0.6)
    a, c, _ = C.kmeans(x, 4, seed=7, sample=200)
    rows = torch.sort(torch.randperm(900, generator=torch.Generator().manual_seed(7 + 2))[:200]).values
    _, c_s, _ = C.kmeans(x[rows.numpy()], 4, seed=7)
    assert torch.equal(c, c_s)
    xd = torch.as_tensor(x, dtype=torch.float64)
    want = torch.tensor([min(range(4), key=lambda j: (float(((xi - c[j]) ** 2).sum()), j)) for xi in xd])
    assert torch.equal(a, want)
    assert torch.equal(C.kmeans(x, 4, seed=7, sample=900)[0], C.kmeans(x, 4, seed=7)[0])  # N <= sample: plain
    monkeypatch.setattr(C, "TRAIN_PER_CENTRE", 20)  # 900 rows, k = 9: trained on 180 rows
    m, assign, _ = C.semdedup_scores(x, 9, seed=3)
    xn = C._normalise(C._rows(x))
    a9, c9, _ = C.kmeans(xn, 9, seed=3, sample=180)
    assert torch.equal(assign, a9)
    want = R.semdedup_m(x, a9, c9)
    fin = torch.isfinite(want)
    assert torch.allclose(m[fin], want[fin], rtol=0, atol=1e-12)


def test_kmeans_with_fewer_distinct_rows_than_k_and_bad_k():
    x = np.repeat(np.eye(3, dtype=np.float32), 5, axis=0)  # 3 distinct rows, 15 rows
    a, c, _ = C.kmeans(x, 10, seed=0)
    assert c.shape[0] == 3 and len(set(a.tolist())) == 3
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(FastselError, match="k"):
            C.kmeans(x, bad)


@pytest.mark.parametrize("d", [1, 16])
def test_semdedup_scores_equal_the_literal_rule(rng, d):
    x = blobs(rng, N=300, d=d, spread=0.5)
    x[50:60] = x[0:10]  # exact duplicates: score 1 against their earlier copy
    m, assign, order = C.semdedup_scores(x, 9, seed=3)
    xn = C._normalise(C._rows(x))  # the clustering's input (its own normalisation, bit for bit)
    a, c, _ = C.kmeans(xn, 9, seed=3)
    assert torch.equal(assign, a)
    want = R.semdedup_m(x, a, c)
    fin = torch.isfinite(want)
    assert torch.equal(torch.isfinite(m), fin)
    assert torch.allclose(m[fin], want[fin], rtol=0, atol=1e-12)
    assert sorted(order.tolist()) == list(range(len(x)))


def test_semdedup_eps_and_n(rng):
    x = blobs(rng, N=500, d=8, spread=0.4)
    m, _, _ = C.semdedup_scores(x, seed=1)
    for eps in (0.0, 0.01, 0.1, 0.5):
        keep, info = C.semdedup(x, eps=eps, seed=1)
        assert set(keep.tolist()) == set(torch.nonzero(m <= 1 - eps)[:, 0].tolist())
    for n in (60, 200, 499):
        keep, info = C.semdedup(x, n, seed=1)
        assert len(keep) == n == len(set(keep.tolist()))
        if info["n_tie_fill"] == 0:  # the largest kept set of at most n rows: its eps gives exactly it
            again, _ = C.semdedup(x, eps=info["eps"], seed=1)
            assert set(again.tolist()) == set(keep.tolist())
            looser, _ = C.semdedup(x, eps=np.nextafter(info["eps"], -1.0), seed=1)
            assert len(looser) >= n
    with pytest.raises(FastselError, match="exactly one"):
        C.semdedup(x, 10, eps=0.1)
    with pytest.raises(FastselError, match="too small"):
        C.semdedup(x, 2, k=10, seed=1)
    with pytest.raises(FastselError, match="all-zero"):
        C.semdedup(np.zeros((5, 3), np.float32), 2, k=1)


def test_semdedup_keeps_one_of_each_duplicate_group():
    base = np.random.default_rng(7).standard_normal((40, 6)).astype(np.float32)
    x = np.concatenate([base, base, base])  # every row three times
    keep, info = C.semdedup(x, 40, k=5, seed=0)
    assert len({tuple(r) for r in x[keep.numpy()]}) == 40 and info["n_tie_fill"] == 0


def test_kmeans_balanced_draws_equal_shares_and_passes_on_what_small_clusters_lack(rng):
    x = np.concatenate([rng.standard_normal((300, 4)) + 20, rng.standard_normal((5, 4)) - 20]).astype(np.float32)
    keep, info = C.kmeans_balanced(x, 100, k=2, seed=0)
    assert len(keep) == len(set(keep.tolist())) == 100
    small = int((keep >= 300).sum())
    assert small == 5  # the small cluster gives all it has, the big one the rest
    a, _ = C.kmeans_balanced(x, 100, k=2, seed=0)
    assert torch.equal(a, keep)


def test_cli_select_semdedup(tmp_path, rng):
    np.save(tmp_path / "x.npy", blobs(rng, N=200, d=8))
    r = CliRunner().invoke(cli, ["select", "--in", str(tmp_path / "x.npy"), "--n", "50", "--method", "semdedup",
                                "--out", str(tmp_path / "s.npy")])
    assert r.exit_code == 0, r.output
    s = np.load(tmp_path / "s.npy")
    assert len(s) == 50 == len(set(s.tolist()))


def test_registered_semdedup_reaches_small_n(rng):
    """k = min(ceil(sqrt(N)), n): n below sqrt(N) is still reachable through fastsel.select."""
    x = blobs(rng, N=1000, d=8)
    idx = fastsel.select(x, 10, "semdedup", seed=0)
    assert len(set(idx.tolist())) == 10
