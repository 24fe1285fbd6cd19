"""`fastsel select` through the CLI: outputs that are inputs, extreme magnitudes, seeds, what it prints
and which files it replaces (moved here from the reliability files; their issue/item names kept)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from _helpers import invoke as run, one_line, pool


# ------------------------------------------------------------------ 2. select --out never replaces the user's data

def test_item2_select_refuses_to_overwrite_a_file_that_is_not_a_selection(pool, tmp_path):
    data = tmp_path / "mine.npy"
    np.save(data, np.arange(6.0).reshape(2, 3))  # the user's own data
    txt = tmp_path / "notes.txt"
    txt.write_text("my notes\n")
    for target in (data, txt):
        before = target.read_bytes()
        err = one_line(run("select", "--in", pool, "-n", 5, "--out", target, "--no-metrics"), 1)
        assert "not a selection fastsel select wrote" in err and "nothing was written" in err, err
        assert target.read_bytes() == before


def test_item2_select_replaces_an_earlier_selection(pool, tmp_path):
    out = tmp_path / "sel.npy"
    assert run("select", "--in", pool, "-n", 5, "--out", out, "--no-metrics").exit_code == 0
    r = run("select", "--in", pool, "-n", 7, "--out", out, "--no-metrics")
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (7,) and np.load(out).dtype == np.int64
    # the default output beside the input follows the same rule
    np.save(tmp_path / "pool.greedy-5.npy", np.ones((2, 2)))
    one_line(run("select", "--in", pool, "-n", 5, "--no-metrics"), 1)
    assert np.load(tmp_path / "pool.greedy-5.npy").shape == (2, 2)


def test_item2_select_help_states_the_rule():
    r = run("select", "--help")
    assert "never overwritten" in " ".join(r.output.split())


# ------------------------------------------------------------------ 6. grammar

def test_item6_one_threshold_option_applies_two_apply(pool):
    assert "--tau applies to --method threshold, not greedy" in one_line(
        run("select", "--in", pool, "-n", 3, "--tau", "1"), 2)
    assert "--tau, --alpha apply to --method threshold" in one_line(
        run("select", "--in", pool, "-n", 3, "--tau", "1", "--alpha", "0.5"), 2)


def test_item6_a_lower_bound_reads_must_be_at_least():
    from fastsel.errors import FastselError
    from fastsel.ops._inputs import check_int
    with pytest.raises(FastselError) as e:
        check_int(0, "chunk_rows", 1)
    assert str(e.value) == "chunk_rows must be >= 1, got 0"
    with pytest.raises(FastselError, match=r"k must be in \[1, 4\], got 5"):
        check_int(5, "k", 1, 4)


# ------------------------------------------------------------------ moved here from test_reliability.py

# ------------------------------------------------------------------ 1. data loss

def test_output_that_is_an_input_is_refused(feats, tmp_path):
    before = feats.read_bytes()
    one_line(run("select", "--in", feats, "-n", 5, "--out", feats), 2)
    os.symlink(feats, tmp_path / "link.npy")
    one_line(run("select", "--in", feats, "-n", 5, "--out", tmp_path / "link.npy"), 2)
    os.chdir(tmp_path)
    one_line(run("select", "--in", "feats.npy", "-n", 5, "--out", "./sub/../feats.npy"), 2)
    imgs = tmp_path / "imgs.npy"
    np.save(imgs, np.zeros((4, 8, 8, 1), np.uint8))
    b2 = imgs.read_bytes()
    one_line(run("embed", imgs, "--features", "pixels", "--out", imgs), 2)
    one_line(run("fid", imgs, imgs, "--save-stats", imgs, tmp_path / "b.npz"), 2)
    assert feats.read_bytes() == before and imgs.read_bytes() == b2


def test_extreme_magnitudes_through_the_cli(tmp_path, rng):
    base = rng.standard_normal((150, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", base)
    np.save(tmp_path / "b.npy", base * np.float32(2.0 ** 64))
    for m in ("greedy", "threshold"):
        ra = run("select", "--in", tmp_path / "a.npy", "-n", 30, "--method", m, "--out", tmp_path / "ia.npy")
        rb = run("select", "--in", tmp_path / "b.npy", "-n", 30, "--method", m, "--out", tmp_path / "ib.npy")
        assert ra.exit_code == 0 and rb.exit_code == 0, rb.output
        assert np.load(tmp_path / "ia.npy").tolist() == np.load(tmp_path / "ib.npy").tolist()


# ------------------------------------------------------------------ 12. cosmetic

def test_duplicates_warning_is_one_clean_line(tmp_path):
    x = np.zeros((20, 3), np.float32)
    x[10:] = 1.0
    np.save(tmp_path / "dup.npy", x)
    p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", str(tmp_path / "dup.npy"), "-n", "4",
                        "--out", str(tmp_path / "o.npy")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "UserWarning" not in p.stderr and ".py:" not in p.stderr
    assert p.stderr.count("warning: ") == 2 and p.stderr.strip().count("\n") == 1  # selection and pool


def test_selection_of_one_row_prints_no_none(feats, tmp_path):
    r = run("select", "--in", feats, "-n", 1, "--out", tmp_path / "o.npy")
    assert r.exit_code == 0 and "None" not in r.stdout


# ------------------------------------------------------------------ moved here from test_reliability3.py

# ------------------------------------------------------------------ 8. seeds

def test_item8_seed_range_in_the_cli(feats, tmp_path):
    for method in ("greedy", "threshold", "random"):
        for bad in (2 ** 64, 2 ** 32, -1):
            assert "--seed" in one_line(run("select", "--in", feats, "-n", 5, "--method", method, "--seed", bad,
                                            "--out", tmp_path / "o.npy"), 2)
    r = run("select", "--in", feats, "-n", 5, "--seed", 2 ** 32 - 1, "--out", tmp_path / "o.npy")
    assert r.exit_code == 0, r.output
    assert "2^32" in run("select", "--help").output
    for cmd in (("fid", "a", "b"), ("embed", "a", "--out", tmp_path / "e.npy")):
        one_line(run(*cmd, "--seed", 2 ** 64), 2)
