"""The self-consuming loop: pool bookkeeping on hand-made pools, UNet presets, an end-to-end CLI
run on tiny data, SIGKILL + resume giving identical metrics, classifier-free guidance."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("matplotlib")

from click.testing import CliRunner  # noqa: E402

from fastsel.cli.main import cli  # noqa: E402
from fastsel.loop.pool import candidate_pool, equal_share_counts, select_from, source_shares  # noqa: E402
from _helpers import free_port, invoke as run, one_line, tiny_npz, tree, user_folder  # noqa: E402

ENV = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="100000000000", OMP_NUM_THREADS="1")


# ------------------------------------------------------------------ bookkeeping

def test_candidate_pool_composition():
    real = np.zeros((3, 2), np.float32)
    g1, g2 = np.ones((4, 2), np.float32), 2 * np.ones((5, 2), np.float32)
    c = candidate_pool("accumulate", real, [g1, g2])
    assert c.src.tolist() == [0] * 3 + [1] * 4 + [2] * 5
    assert c.idx.tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    r = candidate_pool("replace", real, [g1, g2])
    assert r.src.tolist() == [2] * 5 and r.idx.tolist() == list(range(5))
    with pytest.raises(ValueError, match="iteration 0"):
        candidate_pool("replace", real, [])
    with pytest.raises(ValueError, match="paradigm"):
        candidate_pool("mix", real, [g1])


@pytest.mark.parametrize("sizes, n, want", [([10, 10, 10], 10, [4, 3, 3]), ([2, 10, 10], 10, [2, 4, 4]),
                                             ([0, 5, 5], 10, [0, 5, 5]), ([3, 3], 5, [3, 2])])
def test_equal_share_counts(sizes, n, want):
    assert equal_share_counts(sizes, n) == want
    with pytest.raises(ValueError, match="smaller"):
        equal_share_counts(sizes, sum(sizes) + 1)


def test_selectors_on_a_hand_made_pool():
    rng = np.random.default_rng(0)
    real = rng.uniform(-10, 10, size=(20, 2)).astype(np.float32)        # spread out
    gen = (0.01 * rng.standard_normal((80, 2))).astype(np.float32)      # a collapsed cluster
    c = candidate_pool("accumulate", real, [gen])
    # vanilla uniform: about the pool's share of real rows; equal share: exactly half
    eq = select_from(c, 20, "none", vanilla="equal", seed=1)
    assert source_shares(c.src[eq], 2) == [0.5, 0.5]
    assert len(set(eq.tolist())) == 20
    assert select_from(c, 100, "none").tolist() == list(range(100))
    # greedy keeps the spread-out (real) rows: at most one row of the collapsed cluster is ever far
    g = select_from(c, 20, "greedy", seed=1)
    assert source_shares(c.src[g], 2)[0] >= 0.9
    t = select_from(c, 20, "threshold", seed=1, tau=1.0)
    assert len(set(t.tolist())) == 20 and source_shares(c.src[t], 2)[0] >= 0.9
    with pytest.raises(ValueError, match="selector"):
        select_from(c, 5, "best")


def test_unet_presets_match_the_documented_sizes():
    from fastsel.loop.config import LoopConfig
    from fastsel.loop.train import build_unet
    want = {"c32": 7.13, "c48": 16.01, "paper": 10.69}
    for name, m in want.items():
        net = build_unet(LoopConfig(dataset="x", unet=name), 32, 3)
        assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - m) < 0.01, name
    with pytest.raises(ValueError, match="divisible"):
        build_unet(LoopConfig(dataset="x", unet="paper"), 28, 1)


# ------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return tiny_npz(tmp_path_factory.mktemp("loopdata"))


TINY = ["--preset", "smoke", "-n", "16", "--train-steps", "6", "--batch-size", "8", "--sample-steps", "2", "--sample-batch", "8",
        "--iterations", "2", "--ckpt-every", "2"]


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastsel", *args], capture_output=True, text=True, env=env or ENV,
                          timeout=600)


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["iterations"]


def test_loop_end_to_end_replace_three_arms(tiny_data, tmp_path):
    run = str(tmp_path / "run")
    r = _cli("loop", tiny_data, *TINY, "--paradigm", "replace", "--selector", "none,greedy,threshold",
             "--run-dir", run)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _metrics(run)
    assert sorted((x["arm"], x["iteration"]) for x in recs) == sorted(
        (f"replace-{s}", t) for s in ("none", "greedy", "threshold") for t in (0, 1))
    for x in recs:
        assert x["gs"] > 0 and x["fid"] is not None and x["cov_trace"] > 0 and abs(sum(x["shares"]) - 1) < 1e-9
        if x["iteration"] == 1:  # replace: every training row comes from generation 1
            assert x["shares"] == [0.0, 1.0]
    # replace + selector generated pool_factor * n, the vanilla arm n
    d1 = os.path.join(run, "replace-greedy", "iter_001")
    assert np.load(os.path.join(run, "shared", "iter_000", "samples.npy")).shape == (32, 8, 8, 1)
    assert np.load(os.path.join(d1, "samples.npy")).shape == (32, 8, 8, 1)
    assert np.load(os.path.join(run, "replace-none", "iter_001", "samples.npy")).shape == (16, 8, 8, 1)
    assert sorted(np.load(os.path.join(d1, "train_src.npy")).tolist()) == [1] * 16
    for f in ("gs.png", "fid.png", "entropy.png", "entropy_vs_gs.png", "neighbours.png", "report.md"):
        assert os.path.getsize(os.path.join(run, "report", f)) > 0, f
    # replace trains on the newest generation alone: the source-share panels are constant, left out and said
    assert not os.path.exists(os.path.join(run, "report", "shares.png"))
    assert "shares.png: replace-" in open(os.path.join(run, "report", "report.md")).read()
    csv = open(os.path.join(run, "metrics.csv")).read().splitlines()
    head = csv[0].split(",")
    assert head[:2] == ["arm", "iteration"] and len(csv) == 7
    assert {"copy_fraction", "gs_norm", "gs", "fid", "entropy", "entropy_fixed", "vendi"} <= set(head)
    assert "report:" in r.stdout and "replace-threshold" in r.stdout
    # a rerun of the finished command redoes nothing and prints the same table
    r2 = _cli("loop", tiny_data, *TINY, "--paradigm", "replace", "--selector", "none,greedy,threshold",
              "--run-dir", run)
    assert r2.returncode == 0 and r2.stdout == r.stdout
    # a run written before a setting existed (its config.json lacks the key) resumes: the default applies
    cfg_path = os.path.join(run, "config.json")
    cfg = json.load(open(cfg_path))
    assert cfg.pop("beta_schedule") == "linear"
    json.dump(cfg, open(cfg_path, "w"))
    r2b = _cli("loop", tiny_data, *TINY, "--paradigm", "replace", "--selector", "none,greedy,threshold",
               "--run-dir", run)
    assert r2b.returncode == 0 and r2b.stdout == r.stdout, r2b.stderr[-2000:]
    # another configuration in the same directory is refused in one line
    r3 = _cli("loop", tiny_data, *TINY, "--paradigm", "accumulate", "--run-dir", run)
    assert r3.returncode == 1 and "another configuration" in r3.stderr and "paradigm" in r3.stderr


KILL_ARGS = ("--selector", "none,greedy")


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    ref = str(tmp_path_factory.mktemp("ref") / "run")
    r = _cli("loop", tiny_data, *TINY, *KILL_ARGS, "--run-dir", ref)
    assert r.returncode == 0, r.stderr[-3000:]
    return _metrics(ref)


# killed mid-training (right after a checkpoint, and between checkpoints) and mid-sampling
@pytest.mark.parametrize("kill", ["train_step:4", "train_step:9", "sample_batch:2"])
def test_sigkill_and_resume_give_identical_metrics(tiny_data, tmp_path, uninterrupted, kill):
    run = str(tmp_path / "killed")
    r = _cli("loop", tiny_data, *TINY, *KILL_ARGS, "--run-dir", run, env=dict(ENV, FASTSEL_LOOP_KILL=kill))
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    r = _cli("loop", "--resume", run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _metrics(run) == uninterrupted


def test_classifier_free_guidance_run(tiny_data, tmp_path):
    run = str(tmp_path / "cfg")
    r = _cli("loop", tiny_data, *TINY, "--iterations", "1", "--selector", "none", "--cfg-scale", "2.0",
             "--run-dir", run)
    assert r.returncode == 0, r.stderr[-3000:]
    import torch
    sd = torch.load(os.path.join(run, "shared", "iter_000", "model.pt"), weights_only=True)
    assert sd["class_embedding.weight"].shape[0] == 4  # 3 classes + the null label
    labels = np.load(os.path.join(run, "shared", "iter_000", "sample_labels.npy"))
    assert labels.tolist()[:6] == [0, 1, 2, 0, 1, 2]


def test_bad_loop_arguments(tiny_data, tmp_path):
    r = CliRunner().invoke(cli, ["loop", tiny_data, "--selector", "none,best"])
    assert r.exit_code == 2 and "selectors must be" in r.output
    r = CliRunner().invoke(cli, ["loop"])
    assert r.exit_code == 2 and "DATASET" in r.output
    r = CliRunner().invoke(cli, ["loop", str(tmp_path / "nothing.npy"), "--run-dir", str(tmp_path / "r")])
    assert r.exit_code == 1 and "unknown dataset" in r.output
    r = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert r.exit_code == 1 and "no metrics.json" in r.output


def test_training_under_torchrun_matches_one_process(tiny_data, tmp_path):
    """Two ranks (gloo, CPU): DDP training on halves of each global batch; rank 0 samples,
    selects and measures. Same data and seeds as one process, so the metrics agree up to the
    rounding of the gradient all-reduce."""
    port = free_port()
    args = ["loop", tiny_data, *TINY, "--iterations", "1", "--selector", "none"]
    one = str(tmp_path / "one")
    assert _cli(*args, "--run-dir", one).returncode == 0
    two = str(tmp_path / "two")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                        "127.0.0.1", "--master-port", str(port), "-m", "fastsel", *args, "--run-dir", two],
                       capture_output=True, text=True, timeout=600, env=ENV)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("report:") == 1  # rank 0 alone reports
    a, b = _metrics(one), _metrics(two)
    assert [x["arm"] for x in a] == [x["arm"] for x in b]
    for x, y in zip(a, b):
        for k in ("gs", "fid", "entropy", "mnnd", "cov_trace"):
            assert y[k] == pytest.approx(x[k], rel=2e-2), k


def test_loop_ships_in_a_wheel_and_has_a_python_api():
    """setup.py's find_packages needs an __init__.py: without it `fastsel loop` would be missing
    from a non-editable install."""
    from setuptools import find_packages
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert "fastsel.loop" in find_packages(root, include=["fastsel", "fastsel.*"])
    from fastsel.loop import LoopConfig, preset, run_loop, write_report  # noqa: F401
    cfg = LoopConfig(dataset="mnist", **preset("smoke", "mnist"))
    assert cfg.selectors == ("none", "greedy", "threshold") and cfg.unet == "tiny"


def test_bench_loop_times_steps_as_the_bare_loop(tmp_path):
    """`fastsel bench loop` on a tiny UNet: the ratios are the two loops' throughputs over the same steps,
    and fastsel's whole call (3 + 2 steps, model build, final checkpoint) takes longer than its 3 timed steps."""
    r = CliRunner().invoke(cli, ["bench", "loop", "--unet", "tiny", "--size", "16", "--channels", "1",
                                 "--batch-size", "4", "--steps", "3", "--sample-count", "2", "--sample-steps", "2",
                                 "--repeats", "1", "--out-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "bench_loop.json").read_text())
    steps_s = 3 * 4 / res["train_img_per_s"]["fastsel"]
    assert 0 < steps_s < res["train_whole_call_s"]
    ips = res["train_img_per_s"]
    assert res["train_ratio"] == pytest.approx(ips["fastsel"] / ips["bare"])
    assert res["train_whole_call_ratio"] == pytest.approx(5 * 4 / res["train_whole_call_s"] / ips["bare"])
    assert res["sample_ratio"] > 0


# ------------------------------------------------------------------ the loop's cases of issue 44 (from test_report_reliability.py)

LOOP = ["--preset", "smoke", "-n", "8", "--train-steps", "2", "--batch-size", "4", "--sample-steps", "1",
        "--sample-batch", "8", "--iterations", "1", "--selector", "none", "--holdout", "8", "--ckpt-every", "1"]


# ------------------------------------------------------------------ 1. the user's files are never overwritten

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Path(tiny_npz(tmp_path_factory.mktemp("data")))


@pytest.mark.parametrize("sweep", [[], ["--seeds", "0,1"]], ids=["run", "sweep"])
def test_item1_loop_refuses_a_run_dir_of_the_users_own_files(tiny, tmp_path, sweep):
    proj = tmp_path / "userproj"
    files = user_folder(proj)
    before = tree(proj)
    err = one_line(run("loop", tiny, *LOOP, *sweep, "--run-dir", proj), 1)
    assert "did not write" in err and "metrics.csv" in err and "choose a new or empty folder" in err
    assert tree(proj) == before and set(before) == set(files)  # byte for byte, and nothing added (no .lock)


def test_item1_loop_runs_in_an_empty_folder_or_one_a_stopped_run_left(tiny, tmp_path):
    left = tmp_path / "left"
    left.mkdir()
    (left / ".lock").write_text("123")  # what a run that failed before its first step leaves
    r = run("loop", tiny, *LOOP, "--run-dir", left)
    assert r.exit_code == 0, r.output
    assert (left / "metrics.csv").exists() and (left / "config.json").exists()
    r = run("loop", tiny, *LOOP, "--run-dir", left)  # the loop's own folder: resumed, not refused
    assert r.exit_code == 0, r.output
