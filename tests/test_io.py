"""fastsel.io's rules as a user meets them: odd input files refused in one line, outputs written
atomically (never a half file, never the wrong file), the umask followed (moved here from the
reliability files; their issue/item names kept)."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

import fastsel

from _helpers import invoke as run, one_line, select_under_file_size_limit


# ------------------------------------------------------------------ 4. integers beyond 2^53

def test_integers_beyond_2_53_are_refused(tmp_path):
    x = np.array([[2**53 + 1, 0], [0, 1], [3, 4]], dtype=np.int64)
    with pytest.raises(ValueError, match="2\\^53"):
        fastsel.greedy(x, 2)
    np.save(tmp_path / "i.npy", x)
    assert "2^53" in one_line(run("select", "--in", tmp_path / "i.npy", "-n", 2), 1)
    np.save(tmp_path / "u.npy", np.array([[2**63, 1], [1, 2]], dtype=np.uint64))
    one_line(run("select", "--in", tmp_path / "u.npy", "-n", 2), 1)
    ok = np.array([[2**53, 0], [0, 1], [-2**53, 4]], dtype=np.int64)  # exactly representable: accepted
    assert fastsel.greedy(ok, 3, 0).indices.tolist() == [0, 2, 1]


# ------------------------------------------------------------------ 6. one line where a traceback was

def test_unwritable_outputs_are_one_line_and_keep_the_old_file(feats, tmp_path):
    one_line(run("select", "--in", feats, "-n", 5, "--out", tmp_path / "no" / "such" / "dir" / "o.npy"), 1)
    one_line(run("select", "--in", feats, "-n", 5, "--out", str(tmp_path) + "/"), 2)
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a read-only bind mount if we can, else skip that part
        pass
    else:
        one_line(run("select", "--in", feats, "-n", 5, "--out", ro / "o.npy"), 1)
    os.chmod(ro, 0o755)


def test_file_size_limit_mid_write_keeps_the_earlier_output(tmp_path, rng):
    big = tmp_path / "big.npy"
    np.save(big, rng.standard_normal((20000, 8)).astype(np.float32))
    out = tmp_path / "o.npy"
    out.write_bytes(b"earlier output")
    p = select_under_file_size_limit(big, out)
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert out.read_bytes() == b"earlier output"
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


@pytest.mark.parametrize("case", ["float128", "big-endian", "npy-named-npz", "npz-named-npy"])
def test_odd_npy_files(case, tmp_path, rng):
    x = rng.standard_normal((50, 4))
    p = tmp_path / "f.npy"
    if case == "float128":
        if not hasattr(np, "float128"):
            pytest.skip("no float128 on this platform")
        np.save(p, x.astype(np.float128))
        assert "float128" in one_line(run("select", "--in", p, "-n", 5), 1)
        return
    if case == "big-endian":
        np.save(p, x.astype(">f4"))
        r = run("select", "--in", p, "-n", 5, "--out", tmp_path / "o.npy", "--start", 0)
        assert r.exit_code == 0, r.output
        assert np.load(tmp_path / "o.npy").tolist() == fastsel.greedy(x.astype(np.float32), 5, 0).indices.tolist()
        return
    if case == "npy-named-npz":
        p = tmp_path / "f.npz"
        with open(p, "wb") as f:
            np.save(f, x)
    else:
        np.savez(tmp_path / "g.npz", a=x)
        os.rename(tmp_path / "g.npz", p)
    r = run("select", "--in", p, "-n", 5, "--out", tmp_path / "o.npy", "--start", 0)
    assert r.exit_code == 0, r.output  # read by its contents, not its name
    assert np.load(tmp_path / "o.npy").tolist() == fastsel.greedy(x, 5, 0).indices.tolist()


def test_key_on_npy_is_refused(feats):
    assert "--key" in one_line(run("select", "--in", feats, "-n", 5, "--key", "x"), 2)


# ------------------------------------------------------------------ 10. the umask applies

def test_outputs_follow_the_umask(feats, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "o.npy"
        assert run("select", "--in", feats, "-n", 5, "--out", out).exit_code == 0
        assert (os.stat(out).st_mode & 0o777) == 0o644
        os.umask(0o077)
        out2 = tmp_path / "o2.npy"
        assert run("select", "--in", feats, "-n", 5, "--out", out2).exit_code == 0
        assert (os.stat(out2).st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


# ------------------------------------------------------------------ moved here from test_reliability3.py

# ------------------------------------------------------------------ 1. outputs that are not regular files

def test_item1_fifo_output_is_refused_and_stays_a_fifo(feats, tmp_path):
    f = tmp_path / "f"
    os.mkfifo(f)
    assert "FIFO" in one_line(run("select", "--in", feats, "-n", 5, "--out", f), 2)
    assert stat.S_ISFIFO(os.stat(f).st_mode)
    np.savez(tmp_path / "s.npz", mu=np.zeros(2), sigma=np.eye(2), n=3)
    one_line(run("fid", tmp_path / "s.npz", tmp_path / "s.npz", "--save-stats", tmp_path / "a.npz", f), 2)
    assert stat.S_ISFIFO(os.stat(f).st_mode) and not (tmp_path / "a.npz").exists()


def test_item1_dev_null_stays_a_character_device(feats, tmp_path):
    """A private copy of /dev/null (same device numbers) in tmp_path: a regression replaces that
    node, never the system's /dev/null (which running these tests on old code as root did)."""
    if os.geteuid() != 0:
        pytest.skip("only root can make (and could replace) a device node")
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
    except OSError as e:
        pytest.skip(f"cannot make a device node here: {e}")
    assert "character device" in one_line(run("select", "--in", feats, "-n", 5, "--out", null), 2)
    assert stat.S_ISCHR(os.stat(null).st_mode)


def test_item1_symlinked_output_is_written_through(feats, tmp_path):
    real = tmp_path / "real.npy"
    assert run("select", "--in", feats, "-n", 3, "--out", tmp_path / "link.npy").exit_code == 0  # an earlier
    os.replace(tmp_path / "link.npy", real)  # selection (OUT.json its record), moved and linked by the user
    os.symlink(real, tmp_path / "link.npy")
    assert run("select", "--in", feats, "-n", 5, "--out", tmp_path / "link.npy").exit_code == 0
    assert os.path.islink(tmp_path / "link.npy") and np.load(real).shape == (5,)


# ------------------------------------------------------------------ 2. two outputs, one file

def test_item2_two_outputs_that_are_one_file(tmp_path):
    np.savez(tmp_path / "a.npz", mu=np.zeros(2), sigma=np.eye(2), n=3)
    np.savez(tmp_path / "b.npz", mu=np.ones(2), sigma=np.eye(2), n=3)
    for second in (tmp_path / "s.npz", tmp_path / "sub" / ".." / "s.npz"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert "same file" in one_line(run("fid", tmp_path / "a.npz", tmp_path / "b.npz", "--save-stats",
                                           tmp_path / "s.npz", second), 2)
    assert not (tmp_path / "s.npz").exists()
    one_line(run("fid", tmp_path / "a.npz", tmp_path / "b.npz", "--save-stats", tmp_path / "x.npz",
                 tmp_path / "b.npz"), 2)  # an output that is an input


# ------------------------------------------------------------------ 15. long output names

def test_item15_longest_valid_output_name_works(feats, tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    out = tmp_path / ("a" * (limit - 9) + ".npy")  # select writes OUT.json beside OUT: its name is the longest
    r = run("select", "--in", feats, "-n", 5, "--out", out, "--no-metrics")
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (5,)
    assert "too long" in one_line(run("select", "--in", feats, "-n", 5, "--out", str(out) + "x"), 2)
    # embed writes OUT.json beside OUT: refused before any work when that name would be too long
    np.save(tmp_path / "im.npy", np.zeros((3, 4, 4), np.uint8))
    assert "too long" in one_line(run("embed", tmp_path / "im.npy", "--features", "pixels", "--out",
                                      tmp_path / ("b" * (limit - 2))), 2)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# ------------------------------------------------------------------ 16. disk full / file-size limit

def test_item16_file_size_limit_is_named(tmp_path, rng):
    big = tmp_path / "big.npy"
    np.save(big, rng.standard_normal((20000, 8)).astype(np.float32))
    for earlier in (True, False):
        out = tmp_path / ("o.npy" if earlier else "new.npy")
        if earlier:  # an earlier selection (select replaces nothing else: OUT.json is its record)
            assert run("select", "--in", big, "-n", 3, "--out", out, "--no-metrics").exit_code == 0
            kept = out.read_bytes()
        p = select_under_file_size_limit(big, out)
        assert p.returncode == 1 and p.stderr.strip().count("\n") == 0, p.stderr
        assert "file-size limit" in p.stderr and "requested" not in p.stderr, p.stderr
        if earlier:
            assert "earlier" in p.stderr and "intact" in p.stderr and out.read_bytes() == kept
        else:
            assert "no " in p.stderr and not out.exists()
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


# ------------------------------------------------------------------ 10. odd .npz files for fid and embed

def _odd_files(tmp_path):
    ims = np.zeros((4, 8, 8), np.uint8)
    with open(tmp_path / "npy.npz", "wb") as f:  # a .npy named .npz: read by content
        np.save(f, ims)
    np.savez(tmp_path / "obj.npz", images=np.array([1, "a", None], dtype=object))
    np.savez(tmp_path / "good.npz", images=np.zeros((6, 8, 8, 1), np.uint8))
    b = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(b[: len(b) // 2])
    np.save(tmp_path / "objnpy.npy", np.array([1, None], dtype=object), allow_pickle=True)
    return ["obj.npz", "trunc.npz", "objnpy.npy"]


@pytest.mark.parametrize("cmd", ["fid", "embed"])
def test_item10_odd_npz_files_are_one_line(cmd, tmp_path):
    np.savez(tmp_path / "s.npz", mu=np.zeros(3), sigma=np.eye(3), n=5)
    for name in _odd_files(tmp_path):
        p = tmp_path / name
        args = ("fid", p, tmp_path / "s.npz") if cmd == "fid" else ("embed", p, "--features", "pixels", "--out",
                                                                    tmp_path / "o.npy")
        msg = one_line(run(*args), 1)
        assert name in msg, msg
        if "obj" in name:
            assert "Python objects" in msg
    r = run("embed", tmp_path / "npy.npz", "--features", "pixels", "--out", tmp_path / "o.npy")
    assert r.exit_code == 0 and np.load(tmp_path / "o.npy").shape == (4, 64), r.output


# ------------------------------------------------------------------ 13. torch.save files

@pytest.mark.parametrize("cmd", ["select", "embed", "fid"])
def test_item13_pt_file_says_how_to_convert(cmd, tmp_path):
    torch.save(torch.randn(10, 3), tmp_path / "x.pt")
    args = {"select": ("select", "--in", tmp_path / "x.pt", "-n", 2),
            "embed": ("embed", tmp_path / "x.pt", "--features", "pixels", "--out", tmp_path / "o.npy"),
            "fid": ("fid", tmp_path / "x.pt", tmp_path / "x.pt")}[cmd]
    msg = one_line(run(*args), 1)
    assert "torch.save" in msg and "np.save" in msg and "data.pkl" not in msg


# ------------------------------------------------------------------ 14. pipes, devices, empty files as inputs

def test_item14_inputs_that_are_not_regular_files(feats, tmp_path):
    p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", "/dev/stdin", "-n", "2", "--out",
                        str(tmp_path / "o.npy")], stdin=open(feats, "rb"), capture_output=True, text=True,
                       timeout=120)
    # a redirected file is a regular file: read; a pipe is not
    assert p.returncode == 0, p.stderr
    p = subprocess.run(f"cat {feats} | {sys.executable} -m fastsel select --in /dev/stdin -n 2 --out "
                       f"{tmp_path / 'o2.npy'}", shell=True, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "FIFO" in p.stderr and "no such file" not in p.stderr, p.stderr
    assert p.stderr.strip().count("\n") == 0
    assert "character device" in one_line(run("select", "--in", "/dev/null", "-n", 2), 1)
    (tmp_path / "empty.npy").write_bytes(b"")
    assert "empty" in one_line(run("select", "--in", tmp_path / "empty.npy", "-n", 2), 1)
    assert "character device" in one_line(run("embed", "/dev/null", "--features", "pixels", "--out",
                                              tmp_path / "o3.npy"), 1)


def test_control_characters_in_file_names_stay_one_line(tmp_path):
    """A newline or carriage return in a path is shown as an escape: the error is one line naming the
    whole path, and the success line says which file was written."""
    import subprocess
    import sys
    x = np.random.default_rng(3).standard_normal((50, 4)).astype(np.float32)
    np.save(tmp_path / "ok.npy", x)
    (tmp_path / "bad\nname.npy").write_bytes(b"not an array")
    r = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", str(tmp_path / "bad\nname.npy"), "--n", "3"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "bad\\x0aname.npy" in r.stderr, r.stderr
    out = tmp_path / "a\rb.npy"
    r = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", str(tmp_path / "ok.npy"), "--n", "3",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "a\\x0db.npy" in r.stdout and "\r" not in r.stdout, r.stdout
    assert np.load(out).shape == (3,)
