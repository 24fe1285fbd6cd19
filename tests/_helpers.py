"""Helpers the tests share: devices, backends and dtypes to parametrise over, data makers (integer
pools with exact ties, tight far-away clusters) and the float64 checkers every kernel is held to."""
import contextlib
import os

import numpy as np
import pytest
import torch

import fastsel._backend as B

HAS_CUDA = torch.cuda.is_available()
# no compiled backend on purpose: the switch (FASTSEL_NO_EXTENSION, or its old run-time name) is set,
# or the package was installed with it; otherwise a missing extension fails the cpp tests
NO_EXT = B._off is not None or B.build_info().get("extension") is False

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device"))]
BACKENDS = [pytest.param("cpp", marks=pytest.mark.skipif(NO_EXT, reason="installed without the extension")),
            "torch"]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# relative tolerance of a float64 check on data stored in each dtype (accumulation in float32 / float64)
RTOL = {torch.float32: 2e-5, torch.float16: 2e-5, torch.bfloat16: 2e-5, torch.float64: 1e-12}


def int_pool(rng, N, d, lo=-6, hi=7):
    """Small-integer coordinates: every squared distance is exact in float16/bfloat16 storage and float32 sums."""
    return rng.integers(lo, hi, size=(N, d)).astype(np.float64)


def clustered_pool(rng, N, d, clusters=8, spread=0.05, offset=100.0):
    """Tight clusters far from the origin: where the GEMM form loses digits to cancellation."""
    centres = rng.standard_normal((clusters, d)) * 3 + offset
    return centres[rng.integers(clusters, size=N)] + spread * rng.standard_normal((N, d))


def d2_64(x64, rows, c):
    diff = x64[rows] - x64[c]
    return (diff * diff).sum(-1)


def check_greedy_maximal(x_stored, idx, rtol):
    """Every pick attains the largest min-distance to the earlier picks, checked in float64 on the stored data."""
    x64 = x_stored.detach().cpu().double().numpy()
    idx = idx.cpu().numpy()
    N = x64.shape[0]
    md = np.full(N, np.inf)
    selected = np.zeros(N, bool)
    for t, p in enumerate(idx):
        assert not selected[p], f"pick {t}: row {p} selected twice"
        if t > 0:
            best = md[~selected].max()
            assert md[p] >= best * (1 - rtol) - 1e-30, f"pick {t}: row {p} at {md[p]!r} < max {best!r}"
        selected[p] = True
        diff = x64 - x64[p]
        md = np.minimum(md, (diff * diff).sum(1))


def brute_knn(q64, r64, k, exclude_self=False):
    """float64 difference-form k-NN, ties to the lowest index (stable sort)."""
    d = ((q64[:, None, :] - r64[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(d, idx, 1)), idx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for torchrun / process-group tests)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ device-parametrised op tests

def kernel_device(device: str) -> str:
    """The device a compiled-kernel test runs on; skips when that device's kernels are not built."""
    if NO_EXT:
        pytest.skip("installed without the extension")
    if device == "cuda" and not B.has_kernel("greedy", "cuda"):
        pytest.skip("extension built without CUDA kernels")
    return device


def cuda_only(device: str, why: str) -> None:
    if device != "cuda":
        pytest.skip(why)


@contextlib.contextmanager
def tf32(on: bool):
    """cuBLAS TF32 on or off for the block (the CUDA multi-pick / chunked paths run GEMMs)."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def same(got, want, what="values"):
    """Exact equality (on any device), reporting the first mismatch."""
    got, want = got.cpu(), want.cpu()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    bad = (got != want) & ~(torch.isnan(got) & torch.isnan(want)) if got.is_floating_point() else got != want
    if bool(bad.any()):
        i = int(torch.nonzero(bad.reshape(-1))[0])
        raise AssertionError(f"{what}: {int(bad.sum())} mismatches, first at {i}: "
                             f"{got.reshape(-1)[i].item()!r} != {want.reshape(-1)[i].item()!r}")


def as_t(a, dtype):
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def one_line(r, code):
    """A click result: exit status `code`, no traceback, one "Error: ..." line (a usage error, exit 2,
    may come after click's usage lines, as every click usage error does). Returns that line."""
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert len(errors) == 1, r.stderr
    assert lines[-1] == errors[0] and (code == 2 or len(lines) == 1), r.stderr
    return errors[0]


def select_under_file_size_limit(pool, out):
    """`fastsel select --method random -n 5000` of `pool` into `out` in a child process whose
    file-size limit (RLIMIT_FSIZE) is 4,096 bytes, SIGXFSZ ignored: the write fails part-way."""
    import subprocess
    import sys
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); from fastsel.cli.main import main; "
            f"sys.argv = ['fastsel', 'select', '--in', {str(pool)!r}, '-n', '5000', '--method', 'random', "
            f"'--out', {str(out)!r}, '--no-metrics']; main()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ CLI cases (the files several test files share)

def invoke(*args, **kw):
    """`fastsel ARGS...` in process through click's runner (exceptions caught: a traceback shows in the output)."""
    from click.testing import CliRunner

    from fastsel.cli.main import cli
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def tiny_npz(folder) -> str:
    """``folder/tiny.npz``: 40 random 8x8 grey images (seed 0) with labels 0-2 -- the loop tests' dataset."""
    rng = np.random.default_rng(0)
    path = os.path.join(str(folder), "tiny.npz")
    np.savez(path, images=(rng.random((40, 8, 8, 1)) * 255).astype(np.uint8), labels=rng.integers(0, 3, 40))
    return path


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


def user_folder(path):
    """A user's project folder: their own metrics.csv, timing.json and report/report.md."""
    files = {"metrics.csv": b"epoch,loss\n1,0.5\n", "timing.json": b'{"mine": 1}\n',
             os.path.join("report", "report.md"): b"# my notes\n"}
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    return files


def tree(path):
    """Every file under ``path`` with its bytes."""
    out = {}
    for d, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                out[os.path.relpath(os.path.join(d, n), path)] = f.read()
    return out
