"""The documentation site (mkdocs.yml: the guides in docs/ and the API reference built from the
docstrings) builds with warnings as errors, and every function the reference lists documents its
arguments and what it returns in Google-style sections."""
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _listed():
    """The objects docs/reference.md renders (``::: module.name`` lines)."""
    for m in re.finditer(r"^::: ([\w.]+)$", (ROOT / "docs" / "reference.md").read_text(), re.M):
        try:
            yield m.group(1), importlib.import_module(m.group(1))  # a whole module
        except ImportError:
            mod, _, name = m.group(1).rpartition(".")
            yield m.group(1), getattr(importlib.import_module(mod), name)


def test_every_listed_function_has_args_and_returns_sections():
    seen = 0
    for path, obj in _listed():
        fns = ([f for n, f in inspect.getmembers(obj, inspect.isfunction)
                if f.__module__ == obj.__name__ and not n.startswith("_")] if inspect.ismodule(obj)
               else [obj] if inspect.isfunction(obj) else [])
        for f in fns:
            doc = inspect.getdoc(f) or ""
            params = [p for p in inspect.signature(f).parameters if p != "self" and not p.startswith("_")]
            assert not params or "\nArgs:\n" in doc, f"{path}.{f.__name__}: no Args section"
            assert "\nReturns:\n" in doc, f"{path}.{f.__name__}: no Returns section"
            for p in params:
                assert re.search(rf"^    {p}( \(|:)", doc.split("\nArgs:\n", 1)[-1], re.M), \
                    f"{path}.{f.__name__}: argument {p!r} undocumented"
            seen += 1
    assert seen >= 15


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    ref = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "threshold_decay" in ref and "Returns" in ref
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Set-up (two commands)" in home  # the README, rendered as the home page
