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
from _helpers import one_line, tiny_npz

ENV = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="100000000000", OMP_NUM_THREADS="1")
LOOP = ["--preset", "smoke", "-n", "8", "--train-steps", "2", "--batch-size", "4", "--sample-steps", "1",
        "--sample-batch", "8", "--iterations", "2", "--selector", "none,greedy", "--holdout", "8",
        "--ckpt-every", "1"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])




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
    tiny_npz(d)
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


# ------------------------------------------------------------------ 11. bad values, checked before any work

@pytest.mark.parametrize("key, value, says", [
    ("adam_betas", 5, "adam_betas"), ("seed", 2 ** 70, "seed"), ("dataset", 123, "dataset"),
    ("device", "meta", "device"), ("device", "tpu", "device"), ("sample_steps", "abc", "sample_steps"),
    ("lr", True, "lr"), ("ema", "yes", "ema"), ("tau", float("inf"), "tau"), ("label_dropout", 1.5, "label_dropout"),
    ("extra", [], "extra"), ("paradigm", ["replace"], "paradigm")], ids=lambda v: str(v)[:12])
def test_item11_resume_validates_the_stored_config(copy, key, value, says):
    rd = copy(drop=["accumulate-none/iter_001", "accumulate-greedy/iter_001"])
    edit_config(rd, **{key: value})
    before = sorted(os.listdir(rd / "accumulate-none"))
    err = one_line(run("loop", "--resume", rd), 1)
    assert "config.json" in err and says in err
    assert sorted(os.listdir(rd / "accumulate-none")) == before  # nothing ran


def test_item11_resume_on_a_missing_device(copy):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    rd = copy(drop=["accumulate-none/iter_001"])
    edit_config(rd, device="cuda")
    err = one_line(run("loop", "--resume", rd), 1)
    assert "config.json" in err and "CUDA" in err and "--device cpu" in err
    assert not (rd / "accumulate-none" / "iter_001").exists()
    # the way out the line names: the saved configuration on this machine's device
    r = run("loop", "--resume", rd, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert (rd / "accumulate-none" / "iter_001" / "metrics.json").exists()


@pytest.mark.parametrize("args", [["--device", "meta"], ["--device", "tpu"], ["--seed", 2 ** 64 + 1], ["--seed", -1],
                                  ["--seeds", f"0,{2 ** 32}"]], ids=str)
def test_item11_new_run_refused_before_the_run_dir_exists(data, tmp_path, args):
    rd = tmp_path / "new"
    one_line(run("loop", data / "tiny.npz", *LOOP, *args, "--run-dir", rd), 2)
    assert not rd.exists()


def test_item11_seed_range_in_help_and_edges(data, tmp_path):
    r = run("loop", "--help")
    assert "[0, 2**32-1]" in " ".join(r.output.split())
    r = run("loop", data / "tiny.npz", *LOOP, "--seed", 2 ** 32 - 1, "--dry-run", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["seed"] == 2 ** 32 - 1


def test_item11_resume_refuses_options_it_would_ignore(finished):
    err = one_line(run("loop", "--resume", finished, "--train-steps", 50, "-n", 4), 2)
    assert "--train-steps" in err and "-n" in err


def test_item11_rerun_onto_a_truncated_config(copy, data):
    rd = copy()
    (rd / "config.json").write_text('{"dataset": ')
    assert "config.json" in one_line(run("loop", data / "tiny.npz", *LOOP, "--run-dir", rd), 1)


# ------------------------------------------------------------------ 6. a hand-edited config.json mid-run

def test_item6_edited_config_of_a_run_in_progress_is_refused(copy):
    from fastsel.loop.config import config_hash, load_config
    rd = copy(drop=["accumulate-none/iter_001", "accumulate-greedy/iter_001"])  # killed after iteration 0
    cfg_before = (rd / "config.json").read_text()
    edit_config(rd, n=12, train_steps=3, iterations=3)
    err = one_line(run("loop", "--resume", rd), 1)
    assert "config.json" in err and "n, train_steps" in err and "iteration 0" in err and "iterations" not in \
        err.split("differ")[0]
    assert not (rd / "accumulate-none" / "iter_001").exists()  # nothing ran
    # the iterations (and the device, the checkpoint interval) may change: the run is extended
    (rd / "config.json").write_text(cfg_before)
    edit_config(rd, iterations=3)
    r = run("loop", "--resume", rd)
    assert r.exit_code == 0, r.output
    recs = metrics(rd)
    assert sorted((x["arm"], x["iteration"]) for x in recs) == [(f"accumulate-{s}", t) for s in ("greedy", "none")
                                                                 for t in range(3)]
    h = config_hash(load_config(str(rd)))
    assert {x["config_sha256"] for x in recs} == {h}
    for d in ("real", "shared/iter_000", "accumulate-none/iter_000", "accumulate-greedy/iter_002"):
        st = json.loads((rd / d / "settings.json").read_text())
        assert st["config_sha256"] == h and st["config"]["n"] == 8 and "iterations" not in st["config"]
    with open(rd / "metrics.json") as f:
        top = json.load(f)
    assert top["config"]["iterations"] == 3 and top["config_sha256"] == h


def test_item6_a_record_without_its_settings_file_is_checked_by_hash(copy):
    rd = copy()
    for p in rd.glob("*/iter_*/settings.json"):
        p.unlink()
    (rd / "real" / "settings.json").unlink()
    edit_config(rd, sample_steps=3)
    err = one_line(run("loop", "--resume", rd), 1)
    assert "config_sha256" in err and "metrics.json" in err


def test_item6_rerun_with_more_iterations_extends_the_run(copy, data):
    rd = copy()
    args = list(LOOP)
    args[args.index("--iterations") + 1] = "3"
    r = run("loop", data / "tiny.npz", *args, "--run-dir", rd)
    assert r.exit_code == 0, r.output
    assert len(metrics(rd)) == 6 and json.loads((rd / "config.json").read_text())["iterations"] == 3
    r = run("loop", data / "tiny.npz", *LOOP, "--sample-steps", "2", "--run-dir", rd)
    assert "sample_steps" in one_line(r, 1)


# ------------------------------------------------------------------ 12. damaged run directories

def test_item12_truncated_iteration_metrics_on_resume(copy, finished):
    rd = copy()
    p = rd / "accumulate-none" / "iter_000" / "metrics.json"
    p.write_text(p.read_text()[:40])
    err = one_line(run("loop", "--resume", rd), 1)
    assert str(p) in err and "damaged" in err and "delete it" in err
    p.unlink()  # the advice: the metrics are recomputed from the iteration's files
    r = run("loop", "--resume", rd)
    assert r.exit_code == 0, r.output
    assert metrics(rd) == metrics(finished)


@pytest.mark.parametrize("damage", [
    lambda m: m.update(iterations=5), lambda m: m.update(config=[]), lambda m: m["config"].pop("n"),
    lambda m: m["iterations"][0].update(gs="big"), lambda m: m["iterations"][0].pop("shares"),
    lambda m: m["iterations"][0].update(iteration="0"), lambda m: m["iterations"].append(7),
    lambda m: m["iterations"][1].update(pool_sources=[{"rows": "x"}]), lambda m: m["config"].update(alpha=None),
    lambda m: m["iterations"][1].update(selection={"tau0": "x", "tau_end": 1, "decays": 1, "passes": 1,
                                                   "n_filled": 1, "order": "random"})])
def test_item12_report_on_a_malformed_metrics_json(copy, damage):
    rd = copy()
    with open(rd / "metrics.json") as f:
        m = json.load(f)
    damage(m)
    (rd / "metrics.json").write_text(json.dumps(m))
    err = one_line(run("report", rd), 1)
    assert str(rd / "metrics.json") in err and "damaged" in err


def test_item12_report_on_a_truncated_metrics_json_and_sweep(copy):
    rd = copy()
    (rd / "metrics.json").write_text('{"config": {')
    assert "metrics.json" in one_line(run("report", rd), 1)
    (rd / "sweep.json").write_text('{"runs": "abc"}')
    assert "sweep.json" in one_line(run("report", rd), 1)


@pytest.mark.parametrize("path, bad", [
    ("shared/iter_000/samples.npy", np.arange(10, dtype=np.uint8)),            # 1-D
    ("shared/iter_000/samples.npy", np.zeros((16, 4, 4, 1), np.uint8)),        # another image size
    ("shared/iter_000/samples.npy", b"\x93NUMPY trunc"),                        # truncated
    ("shared/iter_000/feats.npy", np.zeros((16, 3), np.float32)),               # another feature size
    ("shared/iter_000/sample_labels.npy", np.zeros((2,), np.int64)),            # too few rows
    ("real/images.npy", np.zeros((8, 8, 8), np.uint8)),                         # 3-D
    ("real/feats.npy", np.zeros((8, 64), np.complex64)),                        # dtype
    ("accumulate-greedy/iter_001/train_src.npy", np.full(8, 9, np.int16)),      # sources that do not exist
    ("accumulate-greedy/iter_001/train_idx.npy", np.full(8, 10 ** 6)),          # rows past the pool
], ids=lambda v: v if isinstance(v, str) else "")
def test_item12_damaged_arrays_on_resume(copy, finished, path, bad):
    keep = ["accumulate-greedy/iter_001/" + f for f in ("train_src.npy", "train_idx.npy", "selection.json",
                                                        "pool.json", "settings.json")]
    rd = copy()
    for p in (rd / "accumulate-greedy" / "iter_001").iterdir():  # iteration 1 of greedy: only its training set
        if str(p.relative_to(rd)) not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if isinstance(bad, bytes):
        (rd / path).write_bytes(bad)
    else:
        np.save(rd / path, bad)
    err = one_line(run("loop", "--resume", rd), 1)
    assert str(rd / path) in err or (path.endswith("train_idx.npy") and "train_idx.npy" in err), err
    assert "damaged" in err and "delete" in err and "--resume" in err
    assert not (rd / "accumulate-greedy" / "iter_001" / "model.pt").exists()  # before any work
    if path.startswith("accumulate-greedy"):  # the advice: delete that iteration's folder and resume
        shutil.rmtree(rd / "accumulate-greedy" / "iter_001")
        r = run("loop", "--resume", rd)
        assert r.exit_code == 0, r.output
        assert metrics(rd) == metrics(finished)


def test_item12_report_on_a_damaged_samples_file(copy):
    rd = copy()
    np.save(rd / "accumulate-none" / "iter_001" / "samples.npy", np.arange(10, dtype=np.uint8))
    err = one_line(run("report", rd), 1)
    assert "accumulate-none/iter_001/samples.npy" in err and "damaged" in err


def test_item12_damaged_json_side_files(copy, finished):
    rd = copy(drop=["accumulate-greedy/iter_001/metrics.json"])
    (rd / "accumulate-greedy" / "iter_001" / "pool.json").write_text("[{")
    err = one_line(run("loop", "--resume", rd), 1)
    assert "pool.json" in err and "accumulate-greedy/iter_001" in err
    (rd / "accumulate-greedy" / "iter_001" / "pool.json").write_text('{"a": 1}')
    assert "pool.json" in one_line(run("loop", "--resume", rd), 1)
    shutil.copy(finished / "accumulate-greedy" / "iter_001" / "pool.json", rd / "accumulate-greedy" / "iter_001")
    (rd / "timing.json").write_text("{")  # informational: started afresh
    (rd / "accumulate-greedy" / "iter_001" / "model.pt").unlink()  # so that the resume times a training
    (rd / "accumulate-none" / "iter_001" / "settings.json").write_text("[]")
    assert "settings.json" in one_line(run("loop", "--resume", rd), 1)
    shutil.copy(finished / "accumulate-none" / "iter_001" / "settings.json", rd / "accumulate-none" / "iter_001")
    r = run("loop", "--resume", rd)
    assert r.exit_code == 0, r.output
    assert metrics(rd) == metrics(finished)
    json.loads((rd / "timing.json").read_text())


def test_item12_a_damaged_sampling_batch_is_sampled_again(copy, finished):
    rd = copy(drop=["accumulate-none/iter_001/samples.npy", "accumulate-none/iter_001/sample_labels.npy",
                    "accumulate-none/iter_001/feats.npy", "accumulate-none/iter_001/fid_feats.npy",
                    "accumulate-none/iter_001/metrics.json"])
    parts = rd / "accumulate-none" / "iter_001" / "parts"
    parts.mkdir(exist_ok=True)
    (parts / "part_000000000.npy").write_bytes(b"\x93NUMPY")
    r = run("loop", "--resume", rd)
    assert r.exit_code == 0, r.output
    assert "part_000000000.npy is damaged" in r.stderr
    assert metrics(rd) == metrics(finished)


# ------------------------------------------------------------------ 20. stale temp files of a killed loop

def _temp(path):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # what mkstemp leaves: 0 bytes, mode 0600
    os.close(fd)
    return path


def test_item20_resume_removes_stale_temp_files(copy, finished):
    rd = copy(drop=["accumulate-greedy/iter_001"])
    (rd / "shared" / "iter_000" / "parts").mkdir(exist_ok=True)
    stale = [_temp(rd / d / n) for d, n in [("shared/iter_000", ".ckpt.pt.w2hq9hd4.tmp"),
                                            ("shared/iter_000/parts", ".part_000000008.npy.ab_cd123.tmp"),
                                            ("real", ".feats.npy.0123abcd.tmp"), (".", ".metrics.json.zzzzzzzz.tmp"),
                                            ("report", ".gs.png.k3j4h5g6.tmp"),
                                            ("accumulate-none/iter_001", ".model.pt.qwertyui.tmp")]]
    kept = [_temp(rd / n) for n in ("notes.tmp", ".short.tmp", "x.npy.abcdefgh.tmp", ".a.ABCDEFGH.tmp")]
    os.makedirs(rd / "mine")
    kept.append(_temp(rd / "mine" / ".data.npy.abcdefgh.tmp"))  # not a folder of the run
    # a second process on a locked run directory removes nothing
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); "
        "print('ok', flush=True); time.sleep(60)"), str(rd / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        assert "in use" in one_line(run("loop", "--resume", rd), 1)
        assert all(p.exists() for p in stale + kept)
    finally:
        holder.kill()
        holder.wait()
    r = run("loop", "--resume", rd)
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in stale), [p for p in stale if p.exists()]
    assert all(p.exists() for p in kept)
    assert metrics(rd) == metrics(finished)


def test_loop_fid_rounding_below_zero_is_zero_and_nan_stays():
    import math

    from fastsel.loop.run import _nonneg
    assert _nonneg(-9.3e-05) == 0.0 and _nonneg(2.5) == 2.5 and math.isnan(_nonneg(float("nan")))
    assert _nonneg(-5.0) == -5.0  # not rounding: left visible
