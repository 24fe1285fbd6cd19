"""Issue 44, round four: what a hostile sweep found after rounds one to three -- an output that
replaces the user's own file (embed's labels 1, select's --out 2), a metric left out without a word
(copy_fraction 3, vendi 5), an option ignored (curate --features with --embeddings 4), grammar (6), a
run whose settings were edited after it ran (report 7), embed's writes (8). Each case runs through the
CLI as a user meets it; tiny data, pixels features."""
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from fastsel.cli.main import cli
from _helpers import one_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "docs", "selectors", "records", "selectors")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def imgs(tmp_path):
    p = tmp_path / "imgs.npz"
    rng = np.random.default_rng(0)
    np.savez(p, images=rng.integers(0, 256, (12, 8, 8, 3)).astype(np.uint8), labels=np.arange(12) % 3)
    return p


@pytest.fixture
def pool(tmp_path):
    p = tmp_path / "pool.npy"
    np.save(p, np.random.default_rng(1).standard_normal((30, 4)))
    return p


# ------------------------------------------------------------------ 1. embed never replaces the user's labels

def test_item1_embed_refuses_to_overwrite_a_labels_file_it_did_not_write(imgs, tmp_path):
    mine = tmp_path / "out.labels.npy"
    np.save(mine, np.arange(12) * 7)  # the user's own labels, named as embed would name its own
    before = mine.read_bytes()
    err = one_line(run("embed", imgs, "--features", "pixels", "--out", tmp_path / "out.npy", "-q"), 1)
    assert "out.labels.npy" in err and "not an embedding fastsel embed wrote" in err and "nothing was written" in err
    assert mine.read_bytes() == before
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.npy.json").exists()


def test_item1_embed_refuses_a_json_or_npy_of_the_users_own(imgs, tmp_path):
    (tmp_path / "out.npy.json").write_text('{"mine": 1}\n')
    one_line(run("embed", imgs, "--features", "pixels", "--out", tmp_path / "out.npy", "-q"), 1)
    assert (tmp_path / "out.npy.json").read_text() == '{"mine": 1}\n'
    np.save(tmp_path / "data.npy", np.ones((3, 3)))
    one_line(run("embed", imgs, "--features", "pixels", "--out", tmp_path / "data.npy", "-q"), 1)
    assert np.load(tmp_path / "data.npy").tolist() == np.ones((3, 3)).tolist()


def test_item1_embed_replaces_its_own_earlier_embedding(imgs, tmp_path):
    out = tmp_path / "out.npy"
    assert run("embed", imgs, "--features", "pixels", "--out", out, "-q").exit_code == 0
    r = run("embed", imgs, "--features", "pixels", "--out", out, "--n", "5", "-q")
    assert r.exit_code == 0, r.output  # a rerun (another subset) replaces the whole set
    assert np.load(out).shape == (5, 192) and np.load(tmp_path / "out.labels.npy").shape == (5,)
    assert json.loads((tmp_path / "out.npy.json").read_text())["count"] == 5
    # an earlier embedding whose labels a user has since replaced with their own: those are refused
    np.save(tmp_path / "out.labels.npy", np.arange(40.0))
    err = one_line(run("embed", imgs, "--features", "pixels", "--out", out, "-q"), 1)
    assert "out.labels.npy" in err and "(5,) integer labels" in err
    assert np.load(tmp_path / "out.labels.npy").shape == (40,)


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


# ------------------------------------------------------------------ 4. curate: --features with --embeddings

def test_item4_curate_refuses_features_given_with_embeddings(imgs, tmp_path):
    np.save(tmp_path / "e.npy", np.random.default_rng(0).standard_normal((12, 4)))
    err = one_line(run("curate", imgs, "-n", 3, "--out", tmp_path / "c", "--embeddings", tmp_path / "e.npy",
                       "--features", "pixels", "-q"), 2)
    assert "--features" in err and "--embeddings" in err
    assert not (tmp_path / "c").exists()
    r = run("curate", imgs, "-n", 3, "--out", tmp_path / "c", "--embeddings", tmp_path / "e.npy", "-q")
    assert r.exit_code == 0, r.output  # --embeddings alone (the default --features unsaid) still works


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


# ------------------------------------------------------------------ 8. embed's writes

def test_item8_embed_never_writes_over_an_input_and_keeps_an_earlier_embedding_on_failure(imgs, tmp_path):
    out = tmp_path / "e.npy"
    assert run("embed", imgs, "--features", "pixels", "--out", out, "-q").exit_code == 0
    before = {p: p.read_bytes() for p in (out, tmp_path / "e.labels.npy", tmp_path / "e.npy.json")}
    # any of the three outputs naming the input (through a link too) is refused before any work
    os.symlink(imgs, tmp_path / "link.labels.npy")
    one_line(run("embed", imgs, "--features", "pixels", "--out", tmp_path / "link.npy", "-q"), 2)
    os.link(imgs, tmp_path / "hard.npy.json")
    one_line(run("embed", imgs, "--features", "pixels", "--out", tmp_path / "hard.npy", "-q"), 2)
    # a run that fails part-way (an image set with 5 channels) leaves the earlier embedding whole
    np.save(tmp_path / "bad.npy", np.zeros((4, 8, 8, 5), np.uint8))
    one_line(run("embed", tmp_path / "bad.npy", "--features", "pixels", "--out", out, "-q"), 1)
    assert {p: p.read_bytes() for p in before} == before
    assert imgs.stat().st_size > 0 and not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


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


def test_sweep_embed_refuses_size_and_split_it_would_ignore(imgs, tmp_path):
    """--size on an array of images and --split on a path were silently ignored (the embedding was of
    the unresized images, of every row)."""
    out = tmp_path / "o.npy"
    assert "--size" in one_line(run("embed", imgs, "--features", "pixels", "--out", out, "--size", 4), 2)
    assert "--split" in one_line(run("embed", imgs, "--features", "pixels", "--out", out, "--split", "test"), 2)
    assert not out.exists()


def test_embed_second_writer_of_one_out_is_refused(tmp_path):
    """Two embeds to one OUT: the second gets one line while the first holds OUT.lock (never a set of
    files from two runs); the lock file is gone after a run."""
    import numpy as np
    from click.testing import CliRunner

    from fastsel.cli.main import cli
    from fastsel.io import folder_lock
    np.save(tmp_path / "imgs.npy", (np.random.default_rng(0).random((6, 8, 8)) * 255).astype(np.uint8))
    out = str(tmp_path / "e.npy")
    held = folder_lock(out + ".lock", "busy {pid}")
    try:
        r = CliRunner().invoke(cli, ["embed", str(tmp_path / "imgs.npy"), "--features", "pixels", "--out", out])
    finally:
        held.close()
    assert r.exit_code != 0 and "is being written by another fastsel embed" in r.output
    assert not os.path.exists(out)
    r = CliRunner().invoke(cli, ["embed", str(tmp_path / "imgs.npy"), "--features", "pixels", "--out", out])
    assert r.exit_code == 0, r.output
    assert os.path.exists(out) and not os.path.exists(out + ".lock")
