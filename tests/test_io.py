"""fastsel.io's rules as a user meets them: odd input files refused in one line, outputs written
atomically (never a half file, never the wrong file), the umask followed (moved here from the
reliability files; their issue/item names kept)."""
import os

import numpy as np
import pytest

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
