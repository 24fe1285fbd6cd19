"""`fastsel metrics` through the CLI: a metric left out is said, and why (moved here from the
reliability files; their issue/item names kept)."""
import json

import numpy as np
import pytest

from _helpers import invoke as run, pool


# ------------------------------------------------------------------ 3. copy_fraction with a 1-row --ref

def test_item3_metrics_says_why_copy_fraction_is_left_out_for_a_one_row_ref(pool, tmp_path):
    np.save(tmp_path / "one.npy", np.ones((1, 4)))
    r = run("metrics", "--in", pool, "--ref", tmp_path / "one.npy", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["copy_fraction"] is None and out["gs"] is not None
    assert any("copy_fraction" in n and "1 row" in n for n in out["notes"]), out
    r = run("metrics", "--in", pool, "--ref", tmp_path / "one.npy")
    assert r.exit_code == 0, r.output
    assert any(ln.split() == ["copy_fraction", "-"] for ln in r.stdout.splitlines()), r.stdout
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note: copy_fraction")]
    assert len(notes) == 1 and "second nearest" in notes[0], r.stderr


# ------------------------------------------------------------------ 5. vendi with an all-zero row

def test_item5_metrics_reports_the_others_and_says_why_vendi_is_left_out(pool, tmp_path):
    x = np.load(pool)
    x[3] = 0
    np.save(tmp_path / "z.npy", x)
    r = run("metrics", "--in", tmp_path / "z.npy", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["vendi"] is None and all(out[k] is not None for k in ("entropy", "mnnd", "cov_trace"))
    assert out["notes"] == ["vendi left out: row 3 is all zeros (the Vendi score's cosine kernel needs nonzero rows)"]
    r = run("metrics", "--in", tmp_path / "z.npy")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("note:")] == [f"note: {out['notes'][0]}"]
    assert "mnnd" in r.stdout and any(ln.split() == ["vendi", "-"] for ln in r.stdout.splitlines())


# ------------------------------------------------------------------ found by this round's sweep

def test_sweep_metrics_on_rows_of_huge_magnitude_reports_vendi(tmp_path):
    """Rows near the float64 limit (1e300): the cosine kernel's row norms overflowed to inf and the
    whole command failed with 'hill_number needs at least one positive value'."""
    x = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "big.npy", x * 1e300)
    np.save(tmp_path / "x.npy", x)
    r = run("metrics", "--in", tmp_path / "big.npy", "--json")
    assert r.exit_code == 0, r.output
    want = json.loads(run("metrics", "--in", tmp_path / "x.npy", "--json").stdout)["vendi"]
    assert json.loads(r.stdout)["vendi"] == pytest.approx(want, rel=1e-9)
