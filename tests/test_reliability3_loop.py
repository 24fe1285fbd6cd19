"""Issue 23, the loop's part: hand-edited and bad configurations of a run (items 6, 11), damaged run
directories (12), stale temp files (20), the LeNet's non-writable-array warning (17). Every case goes
through the CLI on a tiny .npz (seconds per loop); a finished run is made once and copied per test."""
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("matplotlib")

from click.testing import CliRunner  # noqa: E402

from fastsel.cli.main import cli  # noqa: E402

ENV = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="100000000000", OMP_NUM_THREADS="1")
LOOP = ["--preset", "smoke", "-n", "8", "--train-steps", "2", "--batch-size", "4", "--sample-steps", "1",
        "--sample-batch", "8", "--iterations", "2", "--selector", "none,greedy", "--holdout", "8",
        "--ckpt-every", "1"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line(r, code):
    """Exit status `code`, no traceback, one "Error: ..." line (after click's usage lines for exit 2)."""
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert len(errors) == 1, r.stderr
    assert lines[-1] == errors[0] and (code == 2 or len(lines) == 1), r.stderr
    return errors[0]


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["iterations"]


def edit_config(run_dir, **changes):
    p = os.path.join(run_dir, "config.json")
    with open(p) as f:
        d = json.load(f)
    d.update(changes)
    with open(p, "w") as f:
        json.dump(d, f)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    np.savez(d / "tiny.npz", images=(rng.random((40, 8, 8, 1)) * 255).astype(np.uint8),
             labels=rng.integers(0, 3, 40))
    return d


@pytest.fixture(scope="module")
def finished(data):
    """A finished 2-iteration, 2-arm run (never modified: tests work on copies)."""
    rd = data / "finished"
    r = run("loop", data / "tiny.npz", *LOOP, "--run-dir", rd)
    assert r.exit_code == 0, r.output
    return rd


@pytest.fixture
def copy(finished, tmp_path):
    def make(drop=()):
        rd = tmp_path / "run"
        shutil.copytree(finished, rd)
        for p in drop:
            shutil.rmtree(rd / p) if (rd / p).is_dir() else os.unlink(rd / p)
        return rd
    return make


# ------------------------------------------------------------------ 17. no raw warning from the LeNet

def test_item17_loop_on_mnist_prints_no_raw_warning(tmp_path):
    """class_stats passes the memory-mapped (read-only) samples to the LeNet: torch's "non-writable
    NumPy array" UserWarning used to reach the terminal."""
    cache = tmp_path / "cache"
    (cache / "mnist").mkdir(parents=True)
    src = os.path.join(os.environ.get("FASTSEL_DATA", os.path.expanduser("~/.cache/fastsel")), "lenet")
    if not os.path.exists(os.path.join(src, "lenet-seed0.pt")):
        pytest.skip("no cached LeNet weights (fastsel embed mnist --features lenet trains them)")
    shutil.copytree(src, cache / "lenet")
    rng = np.random.default_rng(0)
    for pre, n in (("train", 40), ("t10k", 10)):
        ims = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
        with gzip.open(cache / "mnist" / f"{pre}-images-idx3-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in ims.shape) + ims.tobytes())
        with gzip.open(cache / "mnist" / f"{pre}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + (np.arange(n) % 10).astype(np.uint8).tobytes())
    args = [a for a in LOOP if a != "none,greedy"]
    args[args.index("--selector") + 1:args.index("--selector") + 1] = ["none"]
    r = subprocess.run([sys.executable, "-m", "fastsel", "loop", "mnist", *args, "--iterations", "1",
                        "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
                       env=dict(ENV, FASTSEL_DATA=str(cache)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Warning" not in r.stderr and "not writable" not in r.stderr, r.stderr[-3000:]
    assert "class_confidence" in json.dumps(metrics(tmp_path / "run"))
