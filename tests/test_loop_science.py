"""The loop measures what the paper measures: an order-fair threshold filter, a default tau that
decays, the Appendix D recipe in the paper preset, honest labels, hints that name real options."""
import json
import os
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel.cli.main import cli
from fastsel.loop.pool import Candidates, select_from

from _helpers import clustered_pool


def stacked(rng, k, per, d=16):
    """k sources of `per` rows each, drawn from one distribution, stored one after another."""
    return np.concatenate([rng.standard_normal((per, d)) for _ in range(k)]).astype(np.float32)


def shares(idx, k, per):
    return np.bincount(np.asarray(idx) // per, minlength=k) / len(idx)


def fair(mean_shares, k, n, N, runs):
    # a fair selector's share of one source: hypergeometric, sd sqrt(p(1-p)/n (N-n)/(N-1)), averaged over runs
    p = 1.0 / k
    sd = np.sqrt(p * (1 - p) / n * (N - n) / (N - 1) / runs)
    return np.abs(mean_shares - p).max() <= 4 * sd + 1e-9


@pytest.mark.parametrize("k", [2, 3, 4])
def test_threshold_keeps_each_identical_source_in_proportion(k, rng):
    per, runs = 300, 6
    N, n = k * per, k * per // 2
    got = np.mean([shares(fastsel.threshold_decay(stacked(rng, k, per), n, seed=s).indices, k, per)
                   for s in range(runs)], 0)
    assert fair(got, k, n, N, runs), got
    # the control: the literal index-order scan favours the first source (what the loop reported before)
    idx = np.mean([shares(fastsel.threshold_decay(stacked(rng, k, per), n, seed=s, order="index").indices, k, per)
                   for s in range(runs)], 0)
    assert not fair(idx, k, n, N, runs) and idx[0] > 1.0 / k, idx


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")
def test_large_pool_kernels_keep_identical_sources_in_proportion(rng):
    """The null control at the sizes where the lazy threshold filter and greedy's block pruning
    engage (pools of 12,000 rows, 3,000 picks): one clustered distribution split into 3 sources,
    stored one after another; both selectors keep each source in proportion (the lazy filter picks
    what the chunked one picks; pruning examined under half the (row, pick) pairs)."""
    k, per, n, d = 3, 4000, 3000, 32
    centres = rng.standard_normal((64, d)) * 4
    pool = (centres[rng.integers(64, size=k * per)] + 0.1 * rng.standard_normal((k * per, d))).astype(np.float32)
    x = torch.from_numpy(pool)
    thr = fastsel.threshold_decay(x, n, seed=1)  # auto: the lazy filter at this size
    assert torch.equal(thr.indices, fastsel.threshold_decay(x, n, seed=1, mode="chunked").indices)
    g = fastsel.greedy(x, n, seed=1)
    stats = torch.ops.fastsel._greedy_stats().tolist()
    assert stats[2] < 0.5 * stats[3], stats  # pairs examined out of rows x picks: pruning engaged
    for idx in (thr.indices, g.indices):
        got = shares(idx, k, per)
        # 4 sd of a fair draw of n from N (one run)
        assert fair(got, k, n, k * per, 1), got


def test_loop_selection_step_is_fair(rng):
    k, per, runs = 3, 300, 6
    N, n = k * per, per
    got = []
    for s in range(runs):
        f = stacked(rng, k, per)
        c = Candidates(np.repeat(np.arange(k), per).astype(np.int16), np.tile(np.arange(per), k), f)
        rows, info = select_from(c, n, "threshold", seed=s, return_info=True)
        got.append(np.bincount(c.src[rows], minlength=k) / n)
        assert info["order"] == "random" and info["decays"] >= 1
    assert fair(np.mean(got, 0), k, n, N, runs), np.mean(got, 0)


def test_select_cli_is_fair_and_reports_tau(tmp_path, rng):
    k, per, runs = 2, 400, 4
    got = []
    for s in range(runs):
        p = str(tmp_path / f"pool{s}.npy")
        np.save(p, stacked(rng, k, per))
        out = str(tmp_path / f"sel{s}.npy")
        r = CliRunner().invoke(cli, ["select", "--in", p, "-n", str(per), "--method", "threshold", "--seed", str(s),
                                     "--out", out, "--json", "-q", "--no-metrics"])
        assert r.exit_code == 0, r.output
        info = json.loads(r.output)
        for key in ("tau0", "tau_end", "passes", "decays", "n_filled", "order"):
            assert key in info
        assert info["order"] == "random" and info["decays"] >= 1 and info["tau_end"] < info["tau0"]
        assert info["passes"] > info["decays"] >= 1
        got.append(shares(np.load(out), k, per))
    assert fair(np.mean(got, 0), k, per, k * per, runs)


def _mnist_pixels(n):
    from fastsel import data
    ds = data.load("mnist", n=n, seed=0)
    return ds.images.reshape(n, -1).astype(np.float32) / 255.0


@pytest.mark.parametrize("pool", ["gauss", "clustered", "mnist-pixels"])
def test_default_tau_decays_before_the_set_fills_and_alpha_matters(pool, rng):
    x = {"gauss": lambda: rng.standard_normal((3000, 32)),
         "clustered": lambda: clustered_pool(rng, 3000, 32, clusters=20, spread=0.3, offset=5.0),
         "mnist-pixels": lambda: _mnist_pixels(3000)}[pool]()
    x = torch.from_numpy(np.asarray(x, np.float32))
    n = 300
    runs = {a: fastsel.threshold_decay(x, n, seed=1, alpha=a) for a in (0.8, 0.9, 0.95)}
    for a, r in runs.items():
        taus = r.tau_at[1:].unique()
        assert r.decays >= 1 and len(taus) >= 2 and float(r.tau_at[-1]) < r.tau0, (a, r.info())
        assert r.tau0 == pytest.approx(fastsel.default_tau(x, int(r.indices[0])))
    # alpha changes the selection, and a larger alpha decays more often
    sets = {a: set(r.indices.tolist()) for a, r in runs.items()}
    assert sets[0.8] != sets[0.95] and sets[0.8] != sets[0.9]
    assert runs[0.95].decays > runs[0.8].decays


def test_epochs_on_the_command_line_set_the_training_length_under_a_step_preset():
    """The cpu preset trains by a fixed step count; --epochs given alone replaces it (it was ignored
    silently), and --train-steps beside it still wins."""
    def dry(*extra):
        r = CliRunner().invoke(cli, ["loop", "mnist", "--preset", "cpu", "--dry-run", "--json", *extra])
        assert r.exit_code == 0, r.output
        d = json.loads(r.output)
        return d["epochs"], d["train_steps"], d["steps_per_iteration"]
    e, t, steps = dry()
    assert e is None and t == steps and t > 100
    e, t, steps = dry("--epochs", "3", "-n", "64")
    assert (e, t) == (3, None) and steps == 3 * 64 // 16  # batch 16: 4 steps an epoch
    assert dry("--epochs", "3", "--train-steps", "7") == (3, 7, 7)


def test_paper_preset_dry_run_is_appendix_d():
    r = CliRunner().invoke(cli, ["loop", "cifar10", "--preset", "paper", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["unet_params"] == 10_692_675  # 10.69M: attention at the 5th down / 2nd up block
    assert d["optimizer"] == "adamw" and d["adam_betas"] == [0.95, 0.999] and d["adam_eps"] == 1e-8
    assert d["lr"] == 1e-4 and d["weight_decay"] == 1e-6 and d["lr_schedule"] == "cosine"
    assert d["warmup_steps"] == 500 and d["grad_clip"] == 1.0 and d["mixed_precision"] == "fp16"
    assert d["batch_size"] == 128 and d["epochs"] == 500 and d["n"] == 32768 and d["iterations"] == 8
    assert d["sampler"] == "ddpm" and d["sample_steps"] == 1000
    assert d["features"] == "dinov2-s" and d["fid_features"] == "inception"
    assert d["paradigm"] == "accumulate" and d["selectors"] == ["none", "greedy", "threshold"]
    assert d["order"] == "random" and d["decay"] == "empty-pass" and d["alpha"] == 0.9 and d["ema"] is False
    assert d["steps_per_iteration"] == 500 * 32768 // 128
    assert not os.path.exists(d["run_dir"])
    r = CliRunner().invoke(cli, ["loop", "mnist", "--preset", "paper", "--dry-run", "--json", "--order", "index",
                                 "--decay", "every-pass", "--alpha", "0.8"])
    d = json.loads(r.output)
    assert d["channels"] == 1 and d["order"] == "index" and d["decay"] == "every-pass" and d["alpha"] == 0.8
    assert d["unet_params"] > 50_000_000


def _options(cmd):
    r = CliRunner().invoke(cli, [cmd, "--help"])
    return set(re.findall(r"(--[a-z][a-z-]*)", r.output))


def test_every_hint_names_an_option_of_its_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEL_DATA", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    z = tmp_path / "two.npz"
    np.savez(z, a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    cases = [
        ("loop", ["loop", "cifar10"]), ("embed", ["embed", "cifar10", "--features", "pixels", "--out", "e.npy"]),
        ("fid", ["fid", "cifar10", "cifar10"]), ("select", ["select", "--in", str(z), "-n", "1"]),
        ("metrics", ["metrics", "--in", str(z)]),
    ]
    seen = 0
    for cmd, args in cases:
        r = CliRunner().invoke(cli, args)
        assert r.exit_code != 0
        hints = set(re.findall(r"(--[a-z][a-z-]*)", r.output))
        assert hints, r.output
        assert hints <= _options(cmd), (cmd, hints - _options(cmd), r.output)
        seen += len(hints)
    assert seen >= 5
    assert not os.path.exists(tmp_path / "runs")  # the failed loop start left no run directory


def test_dinov2_offline_names_model_home_and_path(monkeypatch):
    pytest.importorskip("transformers")
    from fastsel import features
    from fastsel.io import DataError
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent/hf-home")
    monkeypatch.delenv("FASTSEL_DINOV2_PATH", raising=False)
    with pytest.raises(DataError) as e:
        features.get("dinov2-s", "cpu")
    msg = str(e.value)
    assert "facebook/dinov2-small" in msg and "/nonexistent/hf-home" in msg and "FASTSEL_DINOV2_PATH" in msg
    assert "\n" not in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not features.hf_offline()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not features.hf_offline()  # the hub's convention: downloads allowed unless HF_HUB_OFFLINE=1
