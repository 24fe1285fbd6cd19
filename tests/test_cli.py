"""The CLI end to end: outputs, JSON keys, and every bad input of the core issue (one line, exit code, no file)."""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import pytest
from click.testing import CliRunner

from fastsel.cli.main import cli
from _helpers import free_port


@pytest.fixture
def feats(tmp_path, rng):
    p = tmp_path / "feats.npy"
    np.save(p, rng.standard_normal((300, 16)).astype(np.float32))
    return str(p)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def outputs(folder):
    return sorted(f for f in os.listdir(folder) if f != "feats.npy" and not f.startswith("in"))


@pytest.mark.parametrize("method", ["greedy", "threshold", "random"])
def test_select_writes_indices_and_json(feats, tmp_path, method):
    r = run("select", "--in", feats, "--n", 40, "--method", method, "--json", "--seed", 3)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["N"] == 300 and s["d"] == 16 and s["n"] == 40 and s["method"] == method
    assert s["out"] == str(tmp_path / f"feats.{method}-40.npy")
    idx = np.load(s["out"], allow_pickle=False)
    assert idx.dtype == np.int64 and idx.shape == (40,) and len(set(idx.tolist())) == 40
    assert s["selection"]["mnnd"] > 0 and s["pool"]["rows"] == 300
    if method != "random":
        assert s["selection"]["mnnd"] > s["pool"]["mnnd"]


def test_select_matches_api_and_npz_key(tmp_path, rng):
    import fastsel
    x = rng.standard_normal((120, 5))
    np.savez(tmp_path / "f.npz", a=x, b=x[:10])
    out = tmp_path / "sel.npy"
    r = run("select", "--in", tmp_path / "f.npz", "--key", "a", "--n", 30, "--start", 7, "--out", out, "--no-metrics")
    assert r.exit_code == 0, r.output
    assert np.load(out).tolist() == fastsel.greedy(x, 30, 7).indices.tolist()
    r = run("select", "--in", tmp_path / "f.npz", "--n", 3)
    assert r.exit_code == 1 and "choose one with --key" in r.stderr


def test_select_human_summary(feats):
    r = run("select", "--in", feats, "--n", 20, "--backend", "torch")
    assert r.exit_code == 0
    assert "selected 20 of 300 rows (d=16) with greedy [torch]" in r.stdout
    assert "entropy" in r.stdout and "selection" in r.stdout


def test_metrics_json_keys(feats, tmp_path, rng):
    ref = tmp_path / "ref.npy"
    np.save(ref, rng.standard_normal((50, 16)))
    r = run("metrics", "--in", feats, "--json")
    assert r.exit_code == 0 and set(json.loads(r.stdout)) == {"entropy", "mnnd", "cov_trace", "vendi"}
    r = run("metrics", "--in", feats, "--ref", ref, "--k", 2, "--json")
    assert r.exit_code == 0 and set(json.loads(r.stdout)) == {"entropy", "mnnd", "cov_trace", "vendi", "gs",
                                                                  "copy_fraction"}


def test_metrics_duplicates_give_null_entropy_and_a_warning(tmp_path):
    p = tmp_path / "dup.npy"
    np.save(p, np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 2.0]]))
    r = run("metrics", "--in", p, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["entropy"] is None
    assert "duplicate" in r.stderr


def test_info_and_demo(tmp_path):
    r = run("info", "--json")
    assert r.exit_code == 0 and "greedy" in json.loads(r.stdout)["kernels"]
    out = tmp_path / "demo.npy"
    r = run("demo", "--out", out, "--pool", 600, "--d", 8, "--n", 60, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert np.load(out).shape == (600, 8)
    sel = {s["method"]: s for s in d["selectors"]}
    assert sel["greedy"]["mnnd"] > sel["random"]["mnnd"]
    assert sel["greedy"]["real_share"] > sel["random"]["real_share"]


def test_demo_reads_the_live_registry(tmp_path):
    from fastsel.selectors import SELECTORS, register_selector, selector_names
    register_selector("first-rows-demo", lambda x, n, **_: torch.arange(n), help="toy")
    try:
        r = run("demo", "--out", tmp_path / "d.npy", "--pool", 300, "--d", 4, "--n", 30, "--method", "all", "--json")
        assert r.exit_code == 0, r.output
        got = [s["method"] for s in json.loads(r.stdout)["selectors"]]
        assert got == list(selector_names()) and "first-rows-demo" in got and "kmeans-balanced" in got
        r = run("demo", "--out", tmp_path / "e.npy", "--pool", 300, "--d", 4, "--n", 30, "--method", "kmeans-balanced")
        assert r.exit_code == 0 and "  kmeans-balanced " in r.output, r.output  # the column fits the name
        r = run("demo", "--out", tmp_path / "f.npy", "--method", "greedy,nope")
        assert r.exit_code != 0 and "nope" in r.output
    finally:
        SELECTORS.pop("first-rows-demo")


def _write(tmp_path, name, arr):
    p = tmp_path / name
    np.save(p, arr)
    return p


BAD = {
    # name: (args builder, expected exit code, message fragment)
    "nan": (lambda t: ["--in", _write(t, "in.npy", np.array([[0.0, np.nan], [1, 2]])), "--n", 1], 1, "NaN or Inf"),
    "inf": (lambda t: ["--in", _write(t, "in.npy", np.array([[0.0, np.inf], [1, 2]])), "--n", 1], 1, "NaN or Inf"),
    "n0": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 0], 2, "--n"),
    "n_big": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 5], 1, "larger than the pool"),
    "start_big": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 2, "--start", 4], 1, "out of range"),
    "start_neg": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 2, "--start", -1], 2, "--start"),
    "1d": (lambda t: ["--in", _write(t, "in.npy", np.zeros(4)), "--n", 1], 1, "2-D"),
    "3d": (lambda t: ["--in", _write(t, "in.npy", np.zeros((2, 2, 2))), "--n", 1], 1, "2-D"),
    "empty": (lambda t: ["--in", _write(t, "in.npy", np.zeros((0, 3))), "--n", 1], 1, "empty"),
    "missing": (lambda t: ["--in", t / "nope.npy", "--n", 1], 2, "does not exist"),
    "not_npy": (lambda t: ["--in", _w_text(t), "--n", 1], 1, "not a readable"),
    "truncated": (lambda t: ["--in", _w_trunc(t), "--n", 1], 1, "not a readable"),
    "pickled": (lambda t: ["--in", _write(t, "in.npy", np.array([{"a": 1}], dtype=object)), "--n", 1], 1,
                "never loaded"),
    "tau0": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 2, "--method", "threshold",
                        "--tau", 0], 2, "--tau"),
    "alpha1": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 2, "--method", "threshold",
                          "--alpha", 1], 2, "--alpha"),
    "alpha0": (lambda t: ["--in", _write(t, "in.npy", np.zeros((4, 2))), "--n", 2, "--method", "threshold",
                          "--alpha", 0], 2, "--alpha"),
}


def _w_text(t):
    p = t / "in.npy"
    p.write_text("this is not an array\n")
    return p


def _w_trunc(t):
    p = _write(t, "in.npy", np.ones((100, 8)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


@pytest.mark.parametrize("case", sorted(BAD))
def test_select_bad_input(tmp_path, case):
    build, code, frag = BAD[case]
    r = run("select", *build(tmp_path), "--out", tmp_path / "out.npy")
    assert r.exit_code == code, (r.exit_code, r.output)
    assert frag in r.stderr
    assert "Traceback" not in r.output
    if code == 1:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out.npy").exists()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_metrics_dimension_mismatch(tmp_path):
    a = _write(tmp_path, "a.npy", np.zeros((5, 3)) + np.arange(5)[:, None])
    b = _write(tmp_path, "b.npy", np.zeros((5, 4)))
    r = run("metrics", "--in", a, "--ref", b)
    assert r.exit_code == 1 and "dimension mismatch" in r.stderr and "Traceback" not in r.output


def test_python_dash_m_entry_point(feats, tmp_path):
    out = tmp_path / "o.npy"
    p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", feats, "--n", "5", "--out", str(out),
                        "--json", "--no-metrics"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["n"] == 5 and np.load(out).shape == (5,)
    p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", feats, "--n", "999"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_select_under_torchrun_equals_single_process(feats, tmp_path):
    port = free_port()
    for method in ("greedy", "threshold"):
        out = tmp_path / f"dist-{method}.npy"
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                            "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "fastsel", "select",
                            "--in", feats, "-n", "60", "--method", method, "--out", str(out), "--json",
                            "--no-metrics"], capture_output=True, text=True, timeout=240,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert p.returncode == 0, p.stderr[-2000:]
        s = json.loads(p.stdout.strip().splitlines()[-1])
        assert s["world_size"] == 2
        r = run("select", "--in", feats, "--n", 60, "--method", method, "--out", tmp_path / "single.npy",
                "--no-metrics")
        assert r.exit_code == 0
        assert np.load(out).tolist() == np.load(tmp_path / "single.npy").tolist()


def test_fallback_says_why_once(feats, tmp_path):
    p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", feats, "-n", "5", "--out",
                        str(tmp_path / "o.npy"), "--no-metrics"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, FASTSEL_DISABLE_EXTENSION="1"))
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("uses the PyTorch fallback (extension not loaded: disabled by") == 1
    assert "[torch]" in p.stdout


def test_torchrun_bad_rows_fail_every_rank(tmp_path):
    x = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    x[90, 1] = np.nan  # only rank 1's shard is bad; rank 0 must not wait forever
    np.save(tmp_path / "bad.npy", x)
    port = free_port()
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                        "127.0.0.1", "--master-port", str(port), "-m", "fastsel", "select", "--in",
                        str(tmp_path / "bad.npy"), "-n", "5", "--out", str(tmp_path / "o.npy")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode != 0
    assert "rows 50:100 of the sharded pool holds NaN or Inf" in p.stderr
    assert "another rank's shard holds invalid rows" in p.stderr
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
@pytest.mark.parametrize("args, match", [
    (["select", "--device", "cuda"], "no CUDA device"),
    (["select", "--device", "tpu"], "--device must be cpu or cuda"),
    (["bench", "--gpu"], "needs a CUDA device"),
])
def test_device_options_without_gpu(feats, args, match):
    extra = ["--in", feats, "--n", 4] if args[0] == "select" else []
    r = run(*args, *extra)
    assert r.exit_code == 2 and match in r.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_select_on_cuda_equals_cpu(feats, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run("select", "--in", feats, "--n", 20, "--out", a, "-q").exit_code == 0
    assert run("select", "--in", feats, "--n", 20, "--out", b, "-q", "--device", "cuda").exit_code == 0
    assert np.array_equal(np.load(a), np.load(b))


def test_every_package_ships_in_a_wheel():
    """setup.py's find_packages needs an __init__.py in every package folder: without one, a
    non-editable install would lack that folder (fastsel bench, the loop, the data sources)."""
    import os

    from setuptools import find_packages
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = set(find_packages(root, include=["fastsel", "fastsel.*"]))
    folders = {os.path.relpath(d, root).replace(os.sep, ".") for d, _, files in os.walk(os.path.join(root, "fastsel"))
               if any(f.endswith(".py") for f in files) and "__pycache__" not in d}
    assert folders <= found, folders - found


def test_select_benchmark_runs_every_case_on_a_tiny_grid(tmp_path):
    """`fastsel bench`'s runner end to end on a tiny grid (every op and pool kind, anchors where
    installed): rows for each case, results written; a broken case fails here, not after minutes
    of a real run."""
    from fastsel.benchmarks import select as bs
    grid = {"greedy": [(2000, 8, 160, "float32"), (2000, 8, 160, "float32", "clustered")],
            "threshold": [(2000, 8, 160, "float32")],
            "nn": [(64, 128, 8, "float32")],
            "sets": [(2, 300, 16, 20, "blobs"), (3, 200, 3, 10, "gauss")]}
    out = bs.run(grid, out_dir=str(tmp_path), log=lambda *a: None)
    ops_seen = {r["op"] for r in out["rows"]}
    assert {"greedy", "threshold", "nn", "sets"} <= ops_seen
    sets_rows = [r for r in out["rows"] if r["op"] == "sets" and r["impl"] == "fastsel.greedy_sets"]
    assert len(sets_rows) == 2 and all(r["extra"]["agree_f64"] >= 1 for r in sets_rows)
    assert (tmp_path / "bench_select.json").exists() and (tmp_path / "bench_select.md").exists()


def test_bench_scaling_row_states_its_gemm_multiple_and_peak_memory(tmp_path):
    from types import SimpleNamespace

    from fastsel.benchmarks import scaling
    res = scaling.run(SimpleNamespace(sizes="4096", d=16, n=64, pools="gauss", out=str(tmp_path)))
    (r,) = res["rows"]
    gemm_s = 2 * 4096 * 16 * 64 / (res["meta"]["gemm_GFLOPs"] * 1e9)
    assert r["x_gemm"] == pytest.approx(r["seconds"] / gemm_s, rel=1e-9) and r["peak_rss_gb"] > 0
    assert "× one GEMM" in (tmp_path / "bench_scaling.md").read_text()


def test_benchmark_try_import_returns_the_named_submodule_or_none():
    """A dotted name gives the submodule itself (``__import__`` would give the top package), and an
    absent anchor gives None, so a benchmark skips it instead of failing."""
    from fastsel.benchmarks.common import try_import
    assert try_import("os.path") is os.path
    assert try_import("fastsel.benchmarks.common").__name__ == "fastsel.benchmarks.common"
    assert try_import("fastsel_no_such_anchor_module") is None
