"""fastsel._backend: --backend cpp without the extension, in the CLI and the Python API (moved here
from the reliability files)."""
import os
import subprocess
import sys

import pytest

import fastsel


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
