"""Issue 44, the loop's and the report's part: a --run-dir or report --out holding the user's own files
is refused before anything is written (1), runs that differ in more than the seed are never pooled as
seeds (2), a metrics.json recording one step twice is damaged (3), a --iteration no run has is refused
(4), scipy's warnings become one "warning: ..." line each (5). Report runs are copies of the records
in docs/selectors/records (metrics.json only); the loop's cases run a tiny .npz through the CLI."""
import json
import os
import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from click.testing import CliRunner  # noqa: E402

from fastsel.cli.main import cli  # noqa: E402
from _helpers import one_line, tree, user_folder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "docs", "selectors", "records", "selectors")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_copy(dst, seed, config=None, records=None, edit=None):
    """A copy of the recorded run of ``seed`` (its metrics.json), with ``config`` changes, the
    ``records`` of another run, or ``edit`` applied to each record."""
    os.makedirs(dst)
    with open(os.path.join(RECORDS, f"seed{seed}", "metrics.json")) as f:
        m = json.load(f)
    if config:  # another condition's run, with the config_sha256 the loop records for its settings
        from fastsel.loop.config import settings_hash
        m["config"].update(config)
        m["config_sha256"] = settings_hash(m["config"])
        for r in m["iterations"]:
            r["config_sha256"] = m["config_sha256"]
    if records is not None:
        m["iterations"] = records
    for r in m["iterations"]:
        (edit or (lambda r: None))(r)
    with open(os.path.join(dst, "metrics.json"), "w") as f:
        json.dump(m, f)
    return dst


def test_item1_report_refuses_an_out_folder_of_the_users_own_files(tmp_path):
    rd = run_copy(tmp_path / "run", 0)
    proj = tmp_path / "userproj"
    user_folder(proj)
    before = tree(proj)
    for out in (proj, proj / "report"):
        err = one_line(run("report", rd, "--out", out), 1)
        assert "did not write" in err and "new or empty folder" in err, err
        assert tree(proj) == before
    # new, empty, the report's own (again), an earlier report's without the mark, the run's report/: written
    fresh, empty = tmp_path / "fresh", tmp_path / "empty"
    empty.mkdir()
    for out in (fresh, empty, fresh):
        r = run("report", rd, "--out", out)
        assert r.exit_code == 0, r.output
    old = tmp_path / "old"
    shutil.copytree(fresh, old)
    os.unlink(old / ".fastsel-report")
    assert run("report", rd, "--out", old).exit_code == 0
    (rd / "report").mkdir()
    (rd / "report" / "notes.txt").write_text("kept")
    r = run("report", rd)
    assert r.exit_code == 0, r.output
    assert (rd / "report" / "report.md").exists() and (rd / "report" / "notes.txt").read_text() == "kept"


# ------------------------------------------------------------------ 2. only runs that differ in the seed pool

def greedy_tests(out):
    with open(out / "arm_tests.json") as f:
        return {t["condition"]: t for t in json.load(f) if t["metric"] == "gs" and t["condition"].endswith("greedy")}


@pytest.mark.parametrize("change, tags", [
    ({"n": 32}, ["[n=16] accumulate-greedy", "[n=32] accumulate-greedy"]),
    ({"dataset": "cifar10", "features": "dinov2-s", "fid_features": "inception", "unet": "paper"},
     ["[dataset=cifar10] accumulate-greedy", "[dataset=mnist] accumulate-greedy"]),
], ids=["n", "dataset"])
def test_item2_runs_that_differ_in_more_than_the_seed_are_not_pooled(tmp_path, change, tags):
    a = run_copy(tmp_path / "a" / "seed0", 0, config=change)
    b = run_copy(tmp_path / "b" / "seed1", 1)
    out = tmp_path / "o"
    r = run("report", a, b, "--out", out)
    assert r.exit_code == 0, r.output
    tests = greedy_tests(out)
    assert sorted(tests) == tags and all(t["n_arm"] == 1 for t in tests.values())  # one run each, no Welch
    warns = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warns) == 1 and "differ in more than the seed" in warns[0] and "not pooled" in warns[0], r.stderr
    key = next(iter(change))
    assert f"{key} {change[key]} vs " in warns[0] or f" vs {change[key]}" in warns[0], warns[0]
    md = (out / "report.md").read_text()
    assert md.count("**Not pooled:**") == 1 and "differ in more than the seed" in md


def test_item2_runs_that_differ_only_in_the_seed_are_still_pooled(tmp_path):
    a = run_copy(tmp_path / "a" / "seed0", 0)
    b = run_copy(tmp_path / "b" / "seed1", 1)
    out = tmp_path / "o"
    r = run("report", a, b, "--out", out)
    assert r.exit_code == 0, r.output
    tests = greedy_tests(out)
    assert list(tests) == ["accumulate-greedy"] and tests["accumulate-greedy"]["n_arm"] == 2
    assert "Not pooled" not in (out / "report.md").read_text() and "differ" not in r.stderr


# ------------------------------------------------------------------ 3. a step recorded twice is damage

def test_item3_a_metrics_json_with_every_record_twice_is_damaged(tmp_path):
    with open(os.path.join(RECORDS, "seed0", "metrics.json")) as f:
        recs = json.load(f)["iterations"]
    rd = run_copy(tmp_path / "run", 0, records=recs + recs)
    err = one_line(run("report", rd), 1)
    assert os.path.join(str(rd), "metrics.json") in err and "damaged" in err, err
    assert "accumulate-none iteration 0 is recorded twice" in err
    assert not (rd / "report").exists()


# ------------------------------------------------------------------ 4. an iteration no run has

def test_item4_report_refuses_an_iteration_no_run_has(tmp_path):
    rd = run_copy(tmp_path / "run", 0)
    out = tmp_path / "o"
    err = one_line(run("report", rd, "--iteration", 99, "--out", out), 2)
    assert "iteration 99" in err and "0, 1, 2" in err, err
    assert not out.exists()
    assert run("report", rd, "--iteration", 2, "--out", out).exit_code == 0


# ------------------------------------------------------------------ 5. scipy's warnings as one line each

def test_item5_identical_values_across_seeds_give_warning_lines_not_raw_warnings(tmp_path):
    with open(os.path.join(RECORDS, "seed0", "metrics.json")) as f:
        recs = json.load(f)["iterations"]

    def same(r):  # every seed and arm measured alike: Welch's t and Pearson's r on identical values
        r["gs"] = 0.1
    runs = [run_copy(tmp_path / "x" / f"seed{s}", s, records=json.loads(json.dumps(recs)), edit=same)
            for s in range(3)]
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        r = run("report", *runs, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    assert [str(w.message) for w in escaped] == []  # none reaches Python's warning printer (file:line)
    lines = r.stderr.splitlines()
    assert lines and all(ln.startswith("warning: ") for ln in lines), r.stderr
    assert len(lines) == len(set(lines)) and not any(".py:" in ln or "Warning:" in ln for ln in lines)
    assert any("Welch test of gs" in ln for ln in lines), r.stderr


# ------------------------------------------------------------------ moved here from test_reliability4.py

# ------------------------------------------------------------------ 7. report: settings edited after the run

def _run_copy(dst, seed=0, config_json=True):
    shutil.copytree(os.path.join(RECORDS, f"seed{seed}"), dst)
    m = json.loads((dst / "metrics.json").read_text())
    if config_json:  # what the loop writes beside metrics.json
        (dst / "config.json").write_text(json.dumps(m["config"]))
    return dst


def _edit(path, **changes):
    d = json.loads(path.read_text())
    (d["config"] if "metrics" in path.name else d).update(changes)
    path.write_text(json.dumps(d))


def test_item7_report_refuses_a_run_whose_config_json_was_edited(tmp_path):
    a, b = _run_copy(tmp_path / "a" / "seed0", 0), _run_copy(tmp_path / "b" / "seed1", 1)
    _edit(a / "config.json", n=32)
    err = one_line(run("report", a, b, "--out", tmp_path / "o"), 1)
    assert "config.json: edited after the run: n differs" in err and "n 16 -> 32" in err, err
    assert not (tmp_path / "o").exists()
    (a / "config.json").write_text('{"dataset": "mn')  # truncated: the report cannot check it
    err = one_line(run("report", a, b, "--out", tmp_path / "o"), 1)
    assert "config.json: not readable JSON settings" in err and "restore it from metrics.json" in err, err


def test_item7_report_refuses_a_metrics_config_edited_to_pool_runs(tmp_path):
    a, b = _run_copy(tmp_path / "a" / "seed0", 0, False), _run_copy(tmp_path / "b" / "seed1", 1, False)
    _edit(a / "metrics.json", n=32)
    err = one_line(run("report", a, b, "--out", tmp_path / "o"), 1)
    assert "metrics.json: its config was edited after the run" in err and "config_sha256" in err, err


def test_item7_free_settings_may_change_and_old_runs_without_a_hash_still_report(tmp_path):
    a, b = _run_copy(tmp_path / "a" / "seed0", 0), _run_copy(tmp_path / "b" / "seed1", 1)
    _edit(a / "config.json", iterations=9, device="cuda", ckpt_every=7)  # a run extended, resumed elsewhere
    c = json.loads((b / "config.json").read_text())
    del c["entropy_m"]  # a config.json from before a setting existed: its default
    (b / "config.json").write_text(json.dumps(c))
    r = run("report", a, b, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    m = json.loads((b / "metrics.json").read_text())
    del m["config_sha256"]
    (b / "metrics.json").write_text(json.dumps(m))
    r = run("report", a, b, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
