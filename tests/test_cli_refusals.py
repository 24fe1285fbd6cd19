"""Found by a reviewer acting as a user (2026-12-05): report runs that share a folder name, report
inputs behind links in its output folder, runs with no iteration, a header claiming pooled seeds,
select's threshold options with other methods, embed's --device."""
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import fastsel
from fastsel.cli.main import cli
from fastsel.io import DataError
from fastsel.loop.report import write_report

from _helpers import invoke as run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "docs", "selectors", "records", "selectors")


def _run_copy(dst, seed, shift=0.0):
    shutil.copytree(os.path.join(RECORDS, f"seed{seed}"), dst)
    if shift:
        p = os.path.join(dst, "metrics.json")
        d = json.load(open(p))
        for r in d["iterations"]:
            r["gs"] = r["gs"] + shift
        json.dump(d, open(p, "w"))


def test_runs_in_folders_of_the_same_name_are_kept_apart_and_pooled_by_seed(tmp_path):
    for k in (0, 1):
        _run_copy(tmp_path / "lrA" / f"seed{k}", k)
        _run_copy(tmp_path / "lrB" / f"seed{k}", k, shift=100.0)  # B's GS far from A's
    out = tmp_path / "o"
    write_report([str(tmp_path / "lrA" / "seed0"), str(tmp_path / "lrB" / "seed0"),
                  str(tmp_path / "lrA" / "seed1"), str(tmp_path / "lrB" / "seed1")], str(out), quiet=True)
    md = (out / "report.md").read_text()
    assert "Runs: lrA/seed0, lrB/seed0, lrA/seed1, lrB/seed1" in md and "(mean ± sd)" in md
    tests = json.loads((out / "arm_tests.json").read_text())
    gs = {t["condition"]: t for t in tests if t["metric"] == "gs" and t["condition"].endswith("accumulate-greedy")}
    assert set(gs) == {"lrA accumulate-greedy", "lrB accumulate-greedy"}
    assert all(t["n_arm"] == 2 for t in gs.values())  # each pooled its two seeds, none overwrote another
    assert gs["lrB accumulate-greedy"]["mean_arm"] == pytest.approx(gs["lrA accumulate-greedy"]["mean_arm"] + 100.0)


def test_a_second_run_with_the_same_condition_and_seed_is_an_error_not_dropped(tmp_path):
    from fastsel.loop.report import _conditions, load_runs
    _run_copy(tmp_path / "a", 0)
    _run_copy(tmp_path / "b", 0, shift=1.0)
    runs = load_runs([str(tmp_path / "a"), str(tmp_path / "b")])
    for r in runs:
        r["label"] = "same"  # as if both were named alike after the seed part
    with pytest.raises(DataError, match="same seed 0"):
        _conditions(runs)


def test_unpooled_seeds_are_not_called_mean_and_sd(tmp_path):
    for k in (0, 1):
        _run_copy(tmp_path / f"s{k}", k)
    out = tmp_path / "o"
    write_report([str(tmp_path / "s0"), str(tmp_path / "s1")], str(out), quiet=True)
    head = (out / "report.md").read_text().splitlines()[0]
    assert "not pooled" in head and "mean ± sd" not in head


def test_report_refuses_an_output_that_is_its_input_and_a_run_without_iterations(tmp_path):
    _run_copy(tmp_path / "r", 0)
    before = (tmp_path / "r" / "metrics.json").read_bytes()
    (tmp_path / "r" / "report").mkdir()
    os.symlink("../metrics.json", tmp_path / "r" / "report" / "report.md")
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "r")])
    assert r.exit_code == 2 and "is the input" in r.output
    assert (tmp_path / "r" / "metrics.json").read_bytes() == before
    os.unlink(tmp_path / "r" / "report" / "report.md")
    d = json.loads(before)
    d["iterations"] = []
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.json").write_text(json.dumps(d))
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no finished iteration" in r.output and "Traceback" not in r.output


def test_select_refuses_threshold_options_with_other_methods_and_embed_checks_its_device(tmp_path):
    np.save(tmp_path / "f.npy", np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32))
    for opt in (["--tau", "2"], ["--alpha", "0.5"], ["--decay", "every-pass"], ["--order", "index"]):
        r = CliRunner().invoke(cli, ["select", "--in", str(tmp_path / "f.npy"), "-n", "5", "--method", "greedy",
                                     "--out", str(tmp_path / "i.npy"), *opt])
        assert r.exit_code == 2 and f"{opt[0]} applies to --method threshold" in r.output, opt
    r = CliRunner().invoke(cli, ["select", "--in", str(tmp_path / "f.npy"), "-n", "5", "--method", "threshold",
                                 "--tau", "2", "--order", "index", "--out", str(tmp_path / "i.npy"), "--no-metrics"])
    assert r.exit_code == 0, r.output
    np.save(tmp_path / "im.npy", np.zeros((4, 6, 6, 3), np.uint8))
    for dev in ("foo", "mps", ""):
        r = CliRunner().invoke(cli, ["embed", str(tmp_path / "im.npy"), "--features", "pixels", "--out",
                                     str(tmp_path / "e.npy"), "--device", dev])
        assert r.exit_code == 2 and "--device must be cpu or cuda" in r.output and not (tmp_path / "e.npy").exists()


# ------------------------------------------------------------------ moved here from test_reliability.py

# ------------------------------------------------------------------ 8. real bugs keep their traceback

def test_unexpected_errors_print_a_traceback_and_the_version(feats, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("an internal bug")
    monkeypatch.setattr(fastsel.selectors, "greedy", boom)
    r = run("select", "--in", feats, "-n", 5)
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and "an internal bug" in r.stderr and "fastsel 0." in r.stderr
    assert "report" in r.stderr


# ------------------------------------------------------------------ moved here from test_reliability3.py

# ------------------------------------------------------------------ 19. usage errors: what docs/errors.md promises

def test_item19_usage_errors_are_clicks_form_as_the_readme_says(feats):
    r = run("select", "--in", feats, "-n", 0)
    lines = r.stderr.rstrip("\n").split("\n")
    assert r.exit_code == 2 and len(lines) == 4, r.stderr
    assert lines[0].startswith("Usage: ") and lines[1].startswith("Try ") and lines[2] == ""
    assert lines[3].startswith("Error: ")
    page = open(os.path.join(os.path.dirname(__file__), "..", "docs", "errors.md")).read()
    section = page[page.index("**Bad input and failures.**"):page.index("**Loop run directories**")]
    assert "`Usage: …`" in section and "the `Error:` line is the last" in section
    assert "ChildFailedError" in section
