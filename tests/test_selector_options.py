"""Selectors declare their options (fastsel.selectors.Option): fastsel.select passes a selector only
the common keywords and its own options; fastsel select, curate and loop build their flags and
refusals from the declarations; the loop saves each arm's options in config.json and checks them on
resume; a user's selector with an option works in all three without touching fastsel."""
import csv
import glob
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel.cli.main import cli
from fastsel.errors import FastselError
from fastsel.ops._inputs import DEFAULT_ALPHA, ORDERS
from fastsel.selectors import SELECTORS, Option, all_options
from _helpers import tiny_npz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def spread():
    """'spread': a user's selector with one option, ``gap`` (every gap-th row of the pool)."""
    seen = []

    @fastsel.register_selector("spread", help="every gap-th row", takes_start=False,
                               options=[Option("gap", int, 1, "take every GAP-th row", min=1)])
    def spread_sel(x, n, *, gap=1, **common):
        seen.append((gap, sorted(common)))
        return torch.arange(0, n * gap, gap) % len(x)
    yield seen
    del SELECTORS["spread"]


def test_the_built_ins_declare_their_options_once():
    opts = all_options()
    assert {k: v[1] for k, v in opts.items()} == {"tau": ("threshold",), "alpha": ("threshold",),
                                                  "decay": ("threshold",), "order": ("threshold",),
                                                  "knn": ("facility",), "bandwidth": ("facility",)}
    assert opts["order"][0].choices == tuple(ORDERS) and opts["alpha"][0].default == DEFAULT_ALPHA
    # the loop's --decay / --order and select's read the same declaration
    for cmd in ("select", "loop", "curate"):
        c = cli.commands[cmd]
        flags = {p.name: p for p in c.params}
        assert list(flags["decay"].type.choices) == list(opts["decay"][0].choices), cmd
        assert list(flags["order"].type.choices) == list(ORDERS), cmd
        assert "knn" in flags and "bandwidth" in flags, cmd


def test_select_passes_only_the_declared_options(spread, rng):
    x = torch.from_numpy(rng.standard_normal((30, 3)))
    assert fastsel.select(x, 4, "spread", gap=3).tolist() == [0, 3, 6, 9]
    assert fastsel.select(x, 4, "spread").tolist() == [0, 1, 2, 3]
    assert spread == [(3, ["backend", "progress", "seed", "start"]), (1, ["backend", "progress", "seed", "start"])]
    with pytest.raises(FastselError, match="^gap applies to the spread selector, not 'greedy'$"):
        fastsel.select(x, 4, "greedy", gap=3)
    with pytest.raises(FastselError, match="tau applies to the threshold selector, not 'spread'"):
        fastsel.select(x, 4, "spread", tau=1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'gapp'"):
        fastsel.select(x, 4, "spread", gapp=3)
    with pytest.raises(FastselError, match="option name"):
        fastsel.register_selector("bad-opt", lambda x, n, **_: torch.arange(n), options=[Option("seed", int)])
    assert fastsel.select(x, 4, "greedy", knn=None).shape == (4,)  # None: an option not given


def test_a_user_selector_option_in_fastsel_select(spread, tmp_path, rng):
    np.save(tmp_path / "f.npy", rng.standard_normal((30, 3)).astype(np.float32))
    r = run("select", "--in", tmp_path / "f.npy", "-n", 4, "--method", "spread", "--gap", 5, "--out",
            tmp_path / "s.npy", "--no-metrics", "-q")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "s.npy").tolist() == [0, 5, 10, 15] and spread[-1][0] == 5
    r = run("select", "--in", tmp_path / "f.npy", "-n", 4, "--gap", 5, "--out", tmp_path / "g.npy")
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == "Error: --gap applies to --method spread, not greedy"
    r = run("select", "--in", tmp_path / "f.npy", "-n", 4, "--method", "spread", "--gap", 0, "--out", tmp_path / "g.npy")
    assert r.exit_code == 2 and "--gap" in r.output and not (tmp_path / "g.npy").exists()
    r = run("select", "--in", tmp_path / "f.npy", "-n", 4, "--method", "spread", "--knn", 2, "--out", tmp_path / "g.npy")
    assert r.exit_code == 2 and "--knn applies to --method facility, not spread" in r.output


def _curate(tmp_path, rng, *extra):
    imgs = rng.integers(0, 256, (40, 8, 8, 1)).astype(np.uint8)
    emb = rng.standard_normal((40, 5)).astype(np.float32)
    np.save(tmp_path / "im.npy", imgs)
    np.save(tmp_path / "emb.npy", emb)
    out = tmp_path / f"cur{len(list(tmp_path.glob('cur*')))}"
    r = run("curate", tmp_path / "im.npy", "-n", 6, "--embeddings", tmp_path / "emb.npy", "--out", out, "-q", *extra)
    if r.exit_code != 0:
        return r, None, emb
    with open(out / "selected.csv") as f:
        rows = list(csv.DictReader(f))
    return r, [int(x["source_index"]) for x in rows], emb


def test_curate_knn_picks_what_select_picks(tmp_path, rng):
    r, got, emb = _curate(tmp_path, rng, "--method", "facility", "--knn", 3)
    assert r.exit_code == 0, r.output
    assert got == fastsel.select(torch.from_numpy(emb), 6, "facility", knn=3).tolist()
    assert json.loads((tmp_path / "cur0" / "curate.json").read_text())["options"] == {"knn": 3}
    assert "method facility, knn 3, seed 0." in (tmp_path / "cur0" / "report.md").read_text()
    r, _, _ = _curate(tmp_path, rng, "--knn", 3)
    assert r.exit_code == 2 and "--knn applies to --method facility, not greedy" in r.output
    r, got, emb = _curate(tmp_path, rng, "--method", "threshold", "--tau", "0.5", "--order", "index")
    assert r.exit_code == 0, r.output
    assert got == fastsel.select(torch.from_numpy(emb), 6, "threshold", seed=0, tau=0.5, order="index").tolist()


def test_curate_passes_a_user_selector_option(spread, tmp_path, rng):
    r, got, _ = _curate(tmp_path, rng, "--method", "spread", "--gap", 4)
    assert r.exit_code == 0, r.output
    assert got == [0, 4, 8, 12, 16, 20] and spread[-1][0] == 4
    r, _, _ = _curate(tmp_path, rng, "--method", "greedy", "--gap", 4)
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == "Error: --gap applies to --method spread, not greedy"


def _tiny(tmp_path):
    return ["loop", tiny_npz(tmp_path), "--preset", "smoke", "-n", "16", "--train-steps", "4",
            "--batch-size", "8", "--sample-steps", "2", "--sample-batch", "8", "--iterations", "2",
            "--ckpt-every", "2", "--paradigm", "replace"]


def _loop_picks(run_dir, arm):
    idx = np.load(os.path.join(run_dir, arm, "iter_001", "train_idx.npy"))
    feats = np.load(os.path.join(run_dir, "shared", "iter_000", "feats.npy"))  # the candidates: generation 1
    return idx, torch.from_numpy(feats)


def _tiny_loop_run(tmp_path, *args):
    """``fastsel loop`` on the tiny pool with ``args`` into tmp_path/run: (its base arguments, the run folder)."""
    pytest.importorskip("diffusers")
    pytest.importorskip("matplotlib")
    base, rd = _tiny(tmp_path), str(tmp_path / "run")
    r = CliRunner().invoke(cli, [*base, *args, "--run-dir", rd])
    assert r.exit_code == 0, r.output
    return base, rd


def test_loop_knn_picks_what_select_picks_and_is_checked_on_resume(tmp_path):
    base, rd = _tiny_loop_run(tmp_path, "--selector", "facility", "--knn", "3")
    idx, feats = _loop_picks(rd, "replace-facility")
    assert idx.tolist() == fastsel.select(feats, 16, "facility", knn=3).tolist()
    cfg = json.loads(open(os.path.join(rd, "config.json")).read())
    assert cfg["selector_options"] == {"facility": {"knn": 3}} and cfg["alpha"] == 0.9
    r = CliRunner().invoke(cli, [*base, "--selector", "facility", "--knn", "4", "--run-dir", rd])
    assert r.exit_code == 1 and "differs in: selector_options" in r.output.strip().splitlines()[-1]
    r = CliRunner().invoke(cli, [*base, "--selector", "greedy", "--knn", "4", "--run-dir", str(tmp_path / "g")])
    assert r.exit_code == 2 and "--knn applies to an arm of facility" in r.output
    # a hand-edited option is refused on resume like any other setting
    cfg["selector_options"]["facility"]["knn"] = 5
    with open(os.path.join(rd, "config.json"), "w") as f:
        json.dump(cfg, f)
    r = CliRunner().invoke(cli, ["loop", "--resume", rd])
    assert r.exit_code == 1 and "selector_options" in r.output and "Traceback" not in r.output


def test_loop_passes_a_user_selector_option(spread, tmp_path):
    base, rd = _tiny_loop_run(tmp_path, "--selector", "spread", "--gap", "2")
    idx, _ = _loop_picks(rd, "replace-spread")
    assert idx.tolist() == list(range(0, 32, 2)) and spread[-1][0] == 2
    r = CliRunner().invoke(cli, [*base, "--selector", "greedy", "--gap", "2", "--run-dir", str(tmp_path / "g")])
    assert r.exit_code == 2 and "--gap applies to an arm of spread; this run's arms are greedy" in r.output


def test_loop_config_maps_the_old_threshold_fields_and_keeps_every_saved_hash():
    """Every recorded run (docs/*/records) loads, its threshold settings land in the per-arm mapping,
    and its settings written back are the ones it saved: the same keys, values and hash."""
    from fastsel.loop.config import LoopConfig, result_settings, settings_hash
    paths = glob.glob(os.path.join(ROOT, "docs", "**", "records", "**", "metrics.json"), recursive=True)
    assert paths
    hashed = 0
    for p in paths:
        with open(p) as f:
            m = json.load(f)
        cfg = LoopConfig.from_json(m["config"], p)
        assert cfg.options_for("threshold") == {k: m["config"][k] for k in ("tau", "alpha", "decay", "order")}
        d = json.loads(json.dumps(cfg.to_json()))
        assert {k: d[k] for k in m["config"]} == m["config"] and "selector_options" not in d, p
        if m.get("config_sha256") and set(d) == set(m["config"]):  # (settings added since take their defaults)
            assert settings_hash(result_settings(cfg)) == m["config_sha256"], p
            hashed += 1
    assert hashed
    c = LoopConfig(dataset="mnist")
    c.set_option("knn", 8, arms=("facility",))
    d = c.to_json()
    assert d["selector_options"] == {"facility": {"knn": 8}} and d["alpha"] == 0.9 and "selector_options" not in \
        LoopConfig(dataset="mnist").to_json()
    assert LoopConfig.from_json(d).to_json() == d
    from fastsel.errors import DataError
    with pytest.raises(DataError, match="alpha must be in \\(0, 1\\), got 1.5"):
        LoopConfig.from_json(dict(d, alpha=1.5), "c")
    with pytest.raises(DataError, match="facility has no option 'gap'"):
        LoopConfig.from_json(dict(d, selector_options={"facility": {"gap": 1}}), "c")


def test_a_sweep_option_other_than_alpha_is_set_or_refused_never_ignored(tmp_path):
    """An option declared sweep=True other than alpha: one value reaches the arm's options, a list is
    refused in one line (the loop sweeps -n, --alpha and --seeds only); it was dropped silently."""
    got = []

    def mine(x, n, *, seed=0, radius=1.0, **_):
        got.append(radius)
        return torch.arange(n)
    fastsel.register_selector("mine", mine, options=(Option("radius", float, 1.0, "a radius", min=0, sweep=True),))
    try:
        r = CliRunner().invoke(cli, ["loop", "mnist", "--selector", "none,mine", "--radius", "0.5", "--dry-run",
                                     "--json", "--run-dir", str(tmp_path / "r")])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["selector_options"] == {"mine": {"radius": 0.5}}
        r = CliRunner().invoke(cli, ["loop", "mnist", "--selector", "none,mine", "--radius", "0.5,0.7", "--dry-run",
                                     "--run-dir", str(tmp_path / "r2")])
        assert r.exit_code == 2 and "--radius" in r.output and "one value" in r.output
    finally:
        del SELECTORS["mine"]
