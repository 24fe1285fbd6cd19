"""fastsel bench check: the verdict rules, the baseline's format and coverage, and the harness itself
(--quick --dry-run, as CI runs it: tiny shapes, no timing compared)."""
import glob
import json
import os

import pytest
from click.testing import CliRunner

import fastsel
from fastsel.benchmarks import check as C
from fastsel.cli.main import cli as main
from fastsel.errors import FastselError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "bench", "baseline.json")
BASELINES = sorted(glob.glob(os.path.join(ROOT, "bench", "baseline*.json")))  # one per machine class


def _got(ratios, checks=None):
    return {"ratios": ratios, "checks": checks or {}}


def test_a_ratio_that_falls_past_the_tolerance_fails_and_one_within_passes():
    base = {"shape": {"N": 8}, "ratios": {"a": 10.0}}
    ok = C.verdict("c", {"N": 8}, _got({"a": 7.6}), base, 0.25, {})
    assert ok[0][4] and ok[0][3] == pytest.approx(-0.24)
    bad = C.verdict("c", {"N": 8}, _got({"a": 7.4}), base, 0.25, {})
    assert not bad[0][4] and "fell 26%" in bad[0][5]
    assert C.verdict("c", {"N": 8}, _got({"a": 30.0}), base, 0.25, {})[0][4]  # faster is never a failure


def test_a_baseline_of_another_shape_is_not_compared():
    base = {"shape": {"N": 16}, "ratios": {"a": 10.0}}
    row = C.verdict("c", {"N": 8}, _got({"a": 1.0}), base, 0.25, {})[0]
    assert row[4] and row[1] is None and "no baseline" in row[5]


def test_absolute_floors_and_failed_checks_fail_whatever_the_baseline():
    row = C.verdict("c", {}, _got({"unpruned": 0.9}), None, 0.25, {"unpruned": 0.95})[0]
    assert not row[4] and "under 0.95" in row[5]
    rows = C.verdict("c", {}, _got({}, {"same picks as unpruned": False}), None, 0.25, {})
    assert not rows[0][4]


@pytest.mark.parametrize("text, msg", [("{", "not a readable"), ('{"quick": {}}', "no meta"),
                                       ('{"meta": {"commit": "a", "machine": "m", "date": "d", "why": "w"}, '
                                        '"full": {"x": 1}}', "not a mapping")])
def test_a_damaged_baseline_is_one_line(tmp_path, text, msg):
    p = tmp_path / "b.json"
    p.write_text(text)
    with pytest.raises(FastselError, match=msg):
        C.load_baseline(str(p))
    with pytest.raises(FastselError, match="no baseline"):
        C.load_baseline(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("path", BASELINES, ids=os.path.basename)
def test_the_committed_baseline_covers_every_case_at_its_shape(path):
    """A new case (or a changed shape) without a baseline entry is caught here, not silently unchecked
    (every machine's baseline)."""
    b = C.load_baseline(path)
    for c in C.cases():
        for mode in ("full",) + (("quick",) if c.quick else ()):
            entry = b[mode].get(c.name)
            if entry is None and (c.name.startswith("selector") or c.name.startswith("greedy mnist")):
                continue  # optional anchors / data: absent where not installed when the baseline was made
            assert entry is not None, (mode, c.name)
            assert entry["shape"] == c.shape, (mode, c.name)
            assert entry["ratios"] and all(r > 0 for r in entry["ratios"].values())
    for k in ("commit", "machine", "date", "why"):
        assert b["meta"][k]


def test_update_needs_a_reason_and_a_real_run(tmp_path):
    r = CliRunner().invoke(main, ["bench", "check", "--update", "--baseline", str(tmp_path / "b.json")])
    assert r.exit_code != 0 and "--why" in r.output
    r = CliRunner().invoke(main, ["bench", "check", "--update", "--why", "x", "--dry-run",
                                  "--baseline", str(tmp_path / "b.json")])
    assert r.exit_code != 0 and "dry" in r.output
    r = CliRunner().invoke(main, ["bench", "check", "--tolerance", "1.5"])
    assert r.exit_code != 0
    r = CliRunner().invoke(main, ["bench", "check", "--only", "no-such-case", "--dry-run"])
    assert r.exit_code != 0 and "no case matches" in r.output


def test_each_machine_is_compared_with_its_own_baseline(tmp_path):
    """Ratios against anchors can depend on the CPU, so the default baseline is the one measured on this
    CPU model; without one, bench/baseline.json (and the check says the machines differ); --update writes
    this machine's file and never another machine's."""
    def write(name, machine):
        (tmp_path / name).write_text(json.dumps({"meta": {"commit": "abc1234", "machine": machine, "date": "d",
                                                          "why": "w"}, "quick": {}, "full": {}}))
    write("baseline.json", "AMD EPYC")
    write("baseline-intel-r-xeon-r-processor.json", "Intel(R) Xeon(R) Processor")
    f = str(tmp_path)
    assert C.default_baseline("Intel(R) Xeon(R) Processor", f) == os.path.join(f, "baseline-intel-r-xeon-r-processor.json")
    assert C.default_baseline("AMD EPYC", f) == os.path.join(f, "baseline.json")
    assert C.default_baseline("Some Other CPU", f) == os.path.join(f, "baseline.json")
    assert C.baseline_for_update("AMD EPYC", f) == os.path.join(f, "baseline.json")
    assert C.baseline_for_update("Some Other CPU", f) == os.path.join(f, "baseline-some-other-cpu.json")
    assert C.machine_slug("Intel(R) Xeon(R) Processor") == "intel-r-xeon-r-processor"


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")
def test_the_check_names_its_baseline_and_a_machine_it_was_not_measured_on(tmp_path, monkeypatch):
    (tmp_path / "b.json").write_text(json.dumps({"meta": {"commit": "abc1234", "machine": "Not This CPU", "date": "d",
                                                          "why": "w"}, "quick": {}, "full": {}}))
    lines = []
    C.run(quick=True, dry_run=True, baseline=str(tmp_path / "b.json"), only="knn", log=lines.append)
    assert any(line.startswith("baseline: ") and "Not This CPU" in line for line in lines)
    assert any(line.startswith("note: the baseline was measured on 'Not This CPU'") for line in lines)


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")
def test_quick_dry_run_runs_every_quick_case(tmp_path):
    """What CI runs: the harness end to end at tiny shapes (every quick case, its anchors if installed)."""
    r = CliRunner().invoke(main, ["bench", "check", "--quick", "--dry-run"])
    assert r.exit_code == 0, r.output
    names = {c.name for c in C.cases() if c.quick}
    for name in names:
        assert name in r.output
    assert "dry run: timings not compared" in r.output


@pytest.mark.parametrize("path", BASELINES, ids=os.path.basename)
def test_the_baseline_file_is_json_with_machine_commit_and_date(path):
    with open(path) as f:
        b = json.load(f)
    assert len(b["meta"]["commit"]) >= 7 and "T" in b["meta"]["date"]
    assert C.default_baseline(b["meta"]["machine"], os.path.dirname(path)) == path  # each machine finds its own


@pytest.mark.parametrize("path", BASELINES, ids=os.path.basename)
def test_docs_carry_the_baselines_table_exactly(path):
    """docs/benchmarks.md, "Regression check", is each committed baseline's table (one source: a figure
    there that the check does not reproduce cannot drift in)."""
    b = C.load_baseline(path)
    with open(os.path.join(ROOT, "docs", "benchmarks.md"), encoding="utf-8") as f:
        docs = f.read()
    assert C.baseline_markdown(b) in docs


def test_a_broken_fastsel_import_fails_and_a_missing_anchor_is_skipped(monkeypatch):
    """A case whose own fastsel import breaks (a helper renamed) fails the check -- the dry run in CI
    included -- instead of reading as 'anchor not installed'; a missing third-party anchor is skipped."""
    def broken(shape):
        from fastsel.benchmarks.selectors import no_such_helper  # noqa: F401
    def anchorless(shape):
        import not_an_installed_anchor  # noqa: F401
    cases = [C.Case("broken", True, {"n": 1}, broken), C.Case("anchorless", True, {"n": 1}, anchorless)]
    monkeypatch.setattr(C, "cases", lambda: cases)
    r = CliRunner().invoke(main, ["bench", "check", "--quick", "--dry-run"])
    assert r.exit_code != 0, r.output
    assert "broken" in r.output and "ImportError" in r.output and "FAIL" in r.output
    assert "anchorless" in r.output and "skipped" in r.output
