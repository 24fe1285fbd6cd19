"""``fastsel select --out`` replaces only what an earlier ``fastsel select`` wrote there: OUT and its
provenance record OUT.json (written last: the writer, how the selection was made, the SHA-256 of OUT).
The user's own file at OUT -- a 1-D int64 .npy included, which looks exactly like a selection -- is
refused in one line and left as it was."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import fastsel
from fastsel.cli.main import cli


@pytest.fixture
def feats(tmp_path):
    p = tmp_path / "f.npy"
    np.save(p, np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32))
    return p


def run(*args):
    return CliRunner().invoke(cli, ["select", *map(str, args)])


def one_error_line(r):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def test_the_users_own_int64_array_is_refused_and_kept(feats, tmp_path):
    mine = tmp_path / "mine.npy"
    np.save(mine, np.arange(5, dtype=np.int64))  # shape and dtype of a selection; the user's own data
    kept = mine.read_bytes()
    msg = one_error_line(run("--in", feats, "-n", 5, "--out", mine))
    assert "not a selection fastsel select wrote" in msg and "no provenance record" in msg
    assert mine.read_bytes() == kept and not (tmp_path / "mine.npy.json").exists()


def test_a_rerun_replaces_its_own_selection_and_records_how_it_was_made(feats, tmp_path):
    out = tmp_path / "sel.npy"
    assert run("--in", feats, "-n", 5, "--out", out, "--no-metrics").exit_code == 0
    r = run("--in", feats, "-n", 7, "--out", out, "--no-metrics", "--method", "threshold", "--alpha", "0.5",
            "--seed", "3")
    assert r.exit_code == 0, r.output
    idx = np.load(out)
    rec = json.loads((tmp_path / "sel.npy.json").read_text())
    assert rec["written_by"] == "fastsel select" and rec["method"] == "threshold" and rec["n"] == 7
    assert rec["seed"] == 3 and rec["options"] == {"alpha": 0.5} and rec["in"] == os.path.abspath(feats)
    x = np.load(feats)
    want = fastsel.select(x, 7, "threshold", alpha=0.5, seed=3).numpy()
    assert idx.tolist() == want.tolist()
    import hashlib
    assert rec["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_a_selection_changed_since_its_record_is_refused(feats, tmp_path):
    out = tmp_path / "sel.npy"
    assert run("--in", feats, "-n", 5, "--out", out, "--no-metrics").exit_code == 0
    np.save(out, np.arange(9, dtype=np.int64))  # the user put their own indices there
    kept = out.read_bytes()
    msg = one_error_line(run("--in", feats, "-n", 5, "--out", out))
    assert "changed since" in msg and out.read_bytes() == kept


def test_the_users_own_file_at_the_record_path_is_refused(feats, tmp_path):
    out = tmp_path / "sel.npy"
    notes = tmp_path / "sel.npy.json"
    notes.write_text('{"my": "notes"}')
    msg = one_error_line(run("--in", feats, "-n", 5, "--out", out))
    assert "sel.npy.json" in msg and notes.read_text() == '{"my": "notes"}' and not out.exists()


def test_the_record_path_may_not_be_the_input(feats, tmp_path):
    pool = tmp_path / "p.npy.json"  # an odd name for an input, but it is one: never written over
    np.save(tmp_path / "p.npy", np.zeros((4, 2), np.float32))
    os.replace(tmp_path / "p.npy", pool)
    kept = pool.read_bytes()
    r = run("--in", pool, "-n", 2, "--out", tmp_path / "p.npy")
    assert r.exit_code != 0 and pool.read_bytes() == kept


@pytest.mark.parametrize("first", [True, False])
def test_a_run_stopped_between_its_two_writes_leaves_a_pair_a_rerun_replaces(feats, tmp_path, monkeypatch, first):
    """OUT.json is written first (naming the new OUT and the one it replaces), then OUT: a run killed in
    between -- on a first run or over an earlier selection -- leaves files the next run still owns."""
    from fastsel.cli import select as S
    out = tmp_path / "sel.npy"
    if not first:
        assert run("--in", feats, "-n", 4, "--out", out, "--no-metrics").exit_code == 0
    real = S.save_bytes

    def stopped(path, data):
        raise KeyboardInterrupt  # the user's Ctrl-C after OUT.json, before OUT
    monkeypatch.setattr(S, "save_bytes", stopped)
    assert run("--in", feats, "-n", 5, "--out", out, "--no-metrics").exit_code != 0
    monkeypatch.setattr(S, "save_bytes", real)
    r = run("--in", feats, "-n", 6, "--out", out, "--no-metrics")
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (6,)
