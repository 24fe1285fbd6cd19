"""Issue 23: more hostile and careless inputs -- special files, mixed scales, odd statistics, loose
Python arguments. Each test is named after the issue's item number."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel.cli.main import cli
from _helpers import one_line, select_under_file_size_limit


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)






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


# ------------------------------------------------------------------ 5. images of zero size, no images

def test_item5_embed_of_zero_size_or_no_images(tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((5, 0, 0), np.uint8))
    assert "zero size" in one_line(run("embed", tmp_path / "z.npy", "--features", "pixels", "--out",
                                       tmp_path / "o.npy"), 1)
    np.save(tmp_path / "e.npy", np.zeros((0, 8, 8), np.uint8))
    assert "no images" in one_line(run("embed", tmp_path / "e.npy", "--features", "pixels", "--out",
                                       tmp_path / "o.npy"), 1)
    assert not (tmp_path / "o.npy").exists()


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


# ------------------------------------------------------------------ 7. loose Python arguments

def test_item7_python_api_refuses_loose_numbers(rng):
    X = rng.standard_normal((20, 3))
    cases = [(lambda: fastsel.greedy(X, 2.5), ValueError, "n"),
             (lambda: fastsel.greedy(X, 3, start=2.7), ValueError, "start"),
             (lambda: fastsel.greedy(X, 3, start=np.float64(1.9)), ValueError, "start"),
             (lambda: fastsel.greedy(X, True), TypeError, "n"),
             (lambda: fastsel.greedy(X, "3"), TypeError, "n"),
             (lambda: fastsel.greedy(X, 3, start=False), TypeError, "start"),
             (lambda: fastsel.threshold_decay(X, 5, tau="1.0"), TypeError, "tau"),
             (lambda: fastsel.threshold_decay(X, 5, alpha="0.9"), TypeError, "alpha"),
             (lambda: fastsel.threshold_decay(X, 2.5), ValueError, "n"),
             (lambda: fastsel.nn(X, k=1.5), ValueError, "k"),
             (lambda: fastsel.nn(X, k=True), TypeError, "k"),
             (lambda: fastsel.select(X, 2.5, method="random"), ValueError, "n"),
             (lambda: fastsel.select(X, True, method="random"), TypeError, "n"),
             (lambda: fastsel.select(X, 3, method="greedy", start=1.5), ValueError, "start")]
    for f, exc, name in cases:
        with pytest.raises(exc, match=rf"^{name}\b"):
            f()
    # integers of every kind are still numbers
    ref = fastsel.greedy(X, 3, 1).indices.tolist()
    assert fastsel.greedy(X, np.int64(3), np.int32(1)).indices.tolist() == ref
    assert fastsel.greedy(X, torch.tensor(3), start=np.uint8(1)).indices.tolist() == ref
    assert fastsel.threshold_decay(X, np.int16(4), 0, tau=np.float32(0.5), alpha=np.float64(0.5)).indices.numel() == 4
    assert fastsel.select(X, np.int64(3), method="random").numel() == 3


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


def test_item8_seed_range_in_the_python_api(rng):
    X = rng.standard_normal((20, 3))
    for f in (lambda s: fastsel.greedy(X, 3, seed=s), lambda s: fastsel.threshold_decay(X, 3, seed=s),
              lambda s: fastsel.select(X, 3, method="random", seed=s), lambda s: fastsel.scan_order(20, s),
              lambda s: fastsel.default_tau(X, seed=s)):
        for bad, exc in ((2 ** 70, ValueError), (2 ** 32, ValueError), (-1, ValueError), (None, TypeError),
                         (1.5, ValueError), ("1", TypeError)):
            with pytest.raises(exc, match="seed"):
                f(bad)
    assert fastsel.greedy(X, 3, seed=2 ** 32 - 1).indices.numel() == 3
    assert fastsel.greedy(X, 3, seed=np.uint32(7)).indices.tolist() == fastsel.greedy(X, 3, seed=7).indices.tolist()


# ------------------------------------------------------------------ 18. tensors without values, complex tensors

def test_item18_meta_complex_and_sparse_tensors(rng):
    X = torch.from_numpy(rng.standard_normal((20, 3)))
    for f, name in ((lambda x: fastsel.greedy(x, 3), "x"), (lambda x: fastsel.threshold_decay(x, 3), "x"),
                    (lambda x: fastsel.nn(x), "query"), (lambda x: fastsel.select(x, 3, method="random"), "x")):
        with pytest.raises(ValueError, match=f"^{name} is a meta tensor"):
            f(torch.empty(20, 3, device="meta"))
        with pytest.raises(TypeError, match=f"^{name} must hold real numbers"):
            f(X.to(torch.complex64))
        with pytest.raises(ValueError, match=f"^{name} is a torch.sparse_coo tensor"):
            f(X.to_sparse())
    with pytest.raises(ValueError, match="^query is a meta tensor"):
        fastsel.nn(torch.empty(4, 3, device="meta"), X)
    with pytest.raises(TypeError, match="^ref must hold real numbers"):
        fastsel.nn(X, X.to(torch.complex128))


# ------------------------------------------------------------------ 9. --backend cpp without the extension

@pytest.mark.parametrize("switch", ["FASTSEL_NO_EXTENSION", "FASTSEL_DISABLE_EXTENSION"])  # the one switch, its old name
def test_item9_backend_cpp_without_the_extension(feats, tmp_path, switch):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTSEL_NO_EXTENSION", "FASTSEL_DISABLE_EXTENSION")}
    env[switch] = "1"
    out = tmp_path / "o.npy"
    for method in ("greedy", "threshold"):
        p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", str(feats), "-n", "5", "--method",
                            method, "--backend", "cpp", "--out", str(out)], capture_output=True, text=True,
                           env=env, timeout=120)
        assert p.returncode == 1 and p.stderr.startswith("Error: ") and p.stderr.strip().count("\n") == 0, p.stderr
        assert switch in p.stderr and not out.exists()
    v = subprocess.run([sys.executable, "-m", "fastsel", "--version"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert v.returncode == 0 and "extension not loaded" in v.stdout and switch in v.stdout
    assert "extension yes" not in v.stdout


def test_item9_backend_cpp_error_in_the_python_api(monkeypatch, rng):
    from fastsel import _backend
    monkeypatch.setattr(_backend, "has_kernel", lambda op, dev: False)
    monkeypatch.setattr(_backend, "loaded", lambda: False)
    with pytest.raises(RuntimeError, match="backend 'cpp' is unavailable"):  # still a RuntimeError
        fastsel.greedy(rng.standard_normal((10, 2)), 3, backend="cpp")


# ------------------------------------------------------------------ 3. mixed scales in float32

def _greedy64(x64, n, start):
    """Farthest-point sampling in float64 numpy, ties to the lowest index."""
    md = np.full(len(x64), np.inf)
    out, p = [], start
    for _ in range(n):
        out.append(p)
        md = np.minimum(md, ((x64 - x64[p]) ** 2).sum(1))
        md[out] = -1
        p = int(np.argmax(md))
    return out


def _mixed(rng, scale, N=200, d=4):
    x = np.zeros((N, d), np.float32)
    x[0] = [1, 0, 0, 0]
    x[1:] = (rng.standard_normal((N - 1, d)) * scale).astype(np.float32)
    return x


@pytest.mark.parametrize("scale", [1e-18, 1e-20, 1e-22, 1e-25, 1e-30, 1e-41])
def test_item3_mixed_scales_match_float64(scale, backend, rng):
    x = _mixed(rng, scale)
    x64 = x.astype(np.float64)
    assert len(np.unique(x64, axis=0)) == len(x64) or scale == 1e-41
    ref = _greedy64(x64, 10, 0)
    assert fastsel.greedy(x, 10, 0, backend=backend).indices.tolist() == ref
    for order in ("index", "random"):
        t = fastsel.threshold_decay(x, 10, 0, order=order, backend=backend)
        t64 = fastsel.threshold_decay(x64, 10, 0, order=order, backend=backend)
        assert t.indices.tolist() == t64.indices.tolist() and t.n_filled == t64.n_filled
    tb = fastsel.greedy(torch.from_numpy(x).to(torch.bfloat16), 10, 0, backend=backend)
    xb = torch.from_numpy(x).to(torch.bfloat16).double().numpy()
    assert tb.indices.tolist() == _greedy64(xb, 10, 0)


def test_item3_mixed_scales_through_the_cli(tmp_path, rng):
    x = _mixed(rng, 1e-25)
    np.save(tmp_path / "m.npy", x)
    ref = _greedy64(x.astype(np.float64), 10, 0)
    assert ref[:2] == [0, 1] and ref != list(range(10))
    for be in ("auto", "torch"):
        r = run("select", "--in", tmp_path / "m.npy", "--n", 10, "--start", 0, "--backend", be, "--out",
                tmp_path / "o.npy", "--json")
        assert r.exit_code == 0, r.output
        assert np.load(tmp_path / "o.npy").tolist() == ref
    r = run("select", "--in", tmp_path / "m.npy", "--n", 10, "--start", 0, "--method", "threshold", "--order", "index",
            "--out", tmp_path / "t.npy", "--json")
    assert r.exit_code == 0 and '"n_filled": 0' in r.stdout, r.output
    # float64 data whose differences underflow float64 itself: refused in one line, nothing written
    x64 = x.astype(np.float64) * 1e-140
    x64[0] = [1, 0, 0, 0]
    np.save(tmp_path / "m64.npy", x64)
    assert "underflow" in one_line(run("select", "--in", tmp_path / "m64.npy", "--n", 10, "--out",
                                       tmp_path / "o64.npy"), 1)
    assert not (tmp_path / "o64.npy").exists()


def test_item3_real_duplicates_are_still_filled(backend):
    x = np.zeros((12, 3), np.float32)
    x[6:] = 1.0
    g = fastsel.greedy(x, 4, 0, backend=backend)
    assert g.indices.tolist() == [0, 6, 1, 2] and g.distances.dtype == torch.float32
    t = fastsel.threshold_decay(x, 5, 0, order="index", backend=backend)
    assert t.n_filled == 3 and t.distances.dtype == torch.float32


def test_item3_mixed_scales_in_sets_and_streaming(backend, rng):
    from fastsel import streaming
    x = _mixed(rng, 1e-25)
    ref = _greedy64(x.astype(np.float64), 10, 0)
    s = fastsel.greedy_sets(torch.from_numpy(np.stack([x, x])), 10, 0, backend=backend)
    assert s.indices[0].tolist() == ref and s.indices[1].tolist() == ref
    for chunk in (37, 65536):
        assert streaming.greedy(x, 10, 0, chunk_rows=chunk, backend=backend).indices.tolist() == ref


@pytest.mark.parametrize("exp", [70, -80, -140])
def test_sweep_streaming_extreme_magnitudes_as_unscaled(exp, rng):
    """Found in the sweep: fastsel.streaming.greedy did not scale extreme magnitudes (pow2_scale)."""
    from fastsel import streaming
    y = rng.standard_normal((300, 5)).astype(np.float32)
    x = y * np.float32(2.0 ** exp)
    g = fastsel.greedy(x, 20, 0)
    s = streaming.greedy(x, 20, 0, chunk_rows=64)
    assert s.indices.tolist() == g.indices.tolist()
    assert torch.allclose(s.distances[1:].double(), g.distances[1:].double(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_item3_a_distinct_row_among_duplicates(dtype, backend):
    """The picks at distance 0 are true duplicates, but an unpicked row is not: it must come first."""
    x = torch.zeros(10, 4, dtype=dtype)
    x[0, 0] = 1.0
    x[5, 1] = 1e-30
    assert fastsel.greedy(x, 3, 0, backend=backend).indices.tolist() == [0, 1, 5]
    t = fastsel.threshold_decay(x, 3, 0, order="index", backend=backend)
    assert t.indices.tolist() == [0, 1, 5] and t.n_filled == 0


# ------------------------------------------------------------------ 4. statistics that are no covariances

def test_item4_fid_refuses_statistics_that_are_not_covariances(tmp_path):
    np.savez(tmp_path / "a.npz", mu=np.zeros(3), sigma=np.eye(3), n=10)
    bad = {"neg": dict(mu=np.zeros(3), sigma=-np.eye(3), n=10),
           "nonsym": dict(mu=np.zeros(3), sigma=np.array([[1, .5, 0], [0, 1, 0], [0, 0, 1.]]), n=10),
           "empty": dict(mu=np.zeros(0), sigma=np.zeros((0, 0)), n=10),
           "shape": dict(mu=np.zeros(3), sigma=np.eye(4), n=10),
           "indef": dict(mu=np.zeros(3), sigma=np.diag([1.0, 1.0, -0.01]), n=10)}
    words = {"neg": "positive semi-definite", "nonsym": "symmetric", "empty": "d >= 1", "shape": "(d, d)",
             "indef": "positive semi-definite"}
    for k, v in bad.items():
        np.savez(tmp_path / f"{k}.npz", **v)
        msg = one_line(run("fid", tmp_path / "a.npz", tmp_path / f"{k}.npz"), 1)
        assert words[k] in msg and f"{k}.npz" in msg, msg
    from fastsel import fid as F
    with pytest.raises(ValueError, match="positive semi-definite"):
        F.frechet(F.Stats(np.zeros(3), np.eye(3), 10), F.Stats(np.zeros(3), -np.eye(3), 10))
    # a computed covariance (rounding leaves it symmetric and PSD only within tolerance) passes
    f = np.random.default_rng(0).standard_normal((50, 6)) * 1e3
    s = F.stats(f)
    assert F.frechet(s, s) == pytest.approx(0, abs=1e-6)


def test_item4_item17_negative_fid_from_rounding_is_0_with_one_clean_warning(tmp_path):
    from fastsel import fid as F
    s = F.stats(np.random.default_rng(0).standard_normal((4, 256)))  # n = 4 <= d: singular covariance
    F.save_stats(str(tmp_path / "s.npz"), s)
    with pytest.warns(RuntimeWarning, match="reported as 0"):
        assert F.frechet(s, s) == 0.0
    p = subprocess.run([sys.executable, "-m", "fastsel", "fid", str(tmp_path / "s.npz"), str(tmp_path / "s.npz"),
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and '"fid": 0.0' in p.stdout, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "singular" in lines[0], p.stderr
    assert "n <= d" in lines[0] and "LinAlgWarning" not in p.stderr and ".py:" not in p.stderr


def test_item17_read_only_images_give_no_torch_warning():
    # a fresh process: torch warns about a non-writable array only once per process
    code = ("import warnings, numpy as np; warnings.simplefilter('error'); "
            "from fastsel.features import get, lenet; a = np.zeros((3, 28, 28, 1), np.uint8); "
            "a.flags.writeable = False; print(tuple(lenet.to_input(a).shape), tuple(get('pixels', 'cpu')(a).shape), "
            "a.flags.writeable)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "(3, 1, 28, 28) (3, 784) False", p.stderr
    assert "not writable" not in p.stderr


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


def test_sweep_fps_ratio_string_is_a_type_error():
    with pytest.raises(TypeError, match="^ratio"):
        fastsel.fps(torch.randn(6, 2), ratio="0.5")
    with pytest.raises(TypeError, match="^ratio"):
        fastsel.fps(torch.randn(6, 2), ratio=True)
    assert fastsel.fps(torch.randn(6, 2), ratio=np.float32(0.5)).numel() == 3


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
