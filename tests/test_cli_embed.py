"""`fastsel embed` through the CLI: labels, empty inputs, files it never replaces, a second writer
(moved here from the reliability files; their issue/item names kept)."""
import json
import os

import numpy as np
from click.testing import CliRunner

from fastsel.cli.main import cli

from _helpers import imgs, invoke as run, one_line


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


# ------------------------------------------------------------------ moved here from test_reliability.py

def test_embed_labels_shorter_than_images(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((6, 8, 8, 1), np.uint8), labels=np.zeros(4, np.int64))
    assert "labels" in one_line(run("embed", tmp_path / "d.npz", "--features", "pixels", "--out",
                                    tmp_path / "o.npy"), 1)


# ------------------------------------------------------------------ moved here from test_reliability3.py

# ------------------------------------------------------------------ 5. images of zero size, no images

def test_item5_embed_of_zero_size_or_no_images(tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((5, 0, 0), np.uint8))
    assert "zero size" in one_line(run("embed", tmp_path / "z.npy", "--features", "pixels", "--out",
                                       tmp_path / "o.npy"), 1)
    np.save(tmp_path / "e.npy", np.zeros((0, 8, 8), np.uint8))
    assert "no images" in one_line(run("embed", tmp_path / "e.npy", "--features", "pixels", "--out",
                                       tmp_path / "o.npy"), 1)
    assert not (tmp_path / "o.npy").exists()
