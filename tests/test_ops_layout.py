"""``fastsel.ops`` is a package of modules: ``import fastsel.ops.greedy`` is the module (the package
rebinds no submodule name to a function), its ``__init__`` re-exports nothing, every helper is
imported from the module where it lives, each public op says honestly where it lives (``help()`` and
the API reference), and the seed range and the device check are written once."""
import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import fastsel

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "fastsel"
OPS = PKG / "ops"
SUBMODULES = sorted(p.stem for p in OPS.glob("*.py") if p.stem != "__init__")


def test_each_op_module_imports_as_a_module():
    """In a fresh interpreter, as a user would type it: ``import fastsel.ops.greedy as g`` gave the
    function ``greedy`` while ops/__init__.py re-exported it."""
    assert {"greedy", "nn", "threshold"} <= set(SUBMODULES)
    code = "import inspect, sys\n" + "".join(
        f"import fastsel.ops.{m} as m\nassert inspect.ismodule(m), ({m!r}, m)\n"
        f"assert inspect.ismodule(sys.modules['fastsel.ops'].{m}), {m!r}\n" for m in SUBMODULES)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_ops_init_re_exports_nothing():
    """ops/__init__.py imports its own submodules (``_fake`` registers the fake kernels) and binds
    no other name: no private helper, no second name for a public one."""
    tree = ast.parse((OPS / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
            continue
        assert isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None, ast.dump(node)
        assert all(a.name in SUBMODULES and a.asname is None for a in node.names), ast.dump(node)
    import fastsel.ops
    public = {k: v for k, v in vars(fastsel.ops).items() if not k.startswith("__")}
    assert all(inspect.ismodule(v) for v in public.values()), sorted(public)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` in ``module`` (a dotted name) reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _python_files():
    for top in ("fastsel", "tests", "bench"):
        for p in sorted((ROOT / top).rglob("*.py")):
            rel = p.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            # a package's __init__ resolves relative imports from the package itself
            yield p, ".".join(parts + (("__init__",) if rel.name == "__init__" else ()))


def test_nothing_is_imported_from_the_ops_package_itself():
    """``from fastsel.ops import X`` (or ``from .ops import X``) names a submodule, never a helper:
    each helper is imported from the module where it lives (``from .ops._inputs import check_int``)."""
    bad, seen = [], 0
    for path, module in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and _resolve(module, node) == "fastsel.ops":
                seen += 1
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}: {a.name}" for a in node.names
                        if a.name not in SUBMODULES]
            elif isinstance(node, ast.ImportFrom) and _resolve(module, node) == "fastsel":
                # `from fastsel import ops` / `from .. import ops`, then ops.NAME: the same re-export by another path
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}: ops" for a in node.names if a.name == "ops"]
    assert seen >= 1 and not bad, bad  # ops/__init__.py's own `from . import _fake` is seen


def test_the_public_ops_say_where_they_live():
    """``fastsel.greedy`` is the function its module defines (no wrapper wearing another function's
    ``__module__`` and docstring): ``help()`` and ``inspect.getsource`` lead to the real code."""
    for name in fastsel.__all__:
        obj = getattr(fastsel, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        home = importlib.import_module(obj.__module__)
        assert getattr(home, obj.__qualname__) is obj, name
        assert not hasattr(obj, "__wrapped__"), name
        src = Path(inspect.getsourcefile(obj)).read_text()
        assert re.search(rf"^(def|class) {obj.__qualname__}\b", src, re.M), name
    assert fastsel.greedy.__module__ == "fastsel.ops.greedy"
    assert Path(inspect.getsourcefile(fastsel.greedy)) == OPS / "greedy.py"


def test_the_api_reference_names_each_op_where_it_lives():
    """Every op docs/reference.md renders is listed under its own module's path (the page once listed
    ``fastsel.ops.greedy``, which rendered the 2-D op under the name of the set dispatch's wrapper)."""
    listed = re.findall(r"^::: ([\w.]+)$", (ROOT / "docs" / "reference.md").read_text(), re.M)
    ops = []
    for path in listed:
        try:
            importlib.import_module(path)
            continue  # a whole module
        except ImportError:
            mod, _, name = path.rpartition(".")
        obj = getattr(importlib.import_module(mod), name)
        if obj.__module__.startswith("fastsel.ops."):
            assert f"{obj.__module__}.{obj.__qualname__}" == path, path
            ops.append(obj)
    for name in ("greedy", "greedy_from", "threshold_decay", "nn", "default_tau", "greedy_sets", "fps"):
        assert getattr(fastsel, name) in ops, name


def _definitions(name: str) -> list:
    """Where fastsel's sources define ``name`` (a def, a class or a module-level assignment)."""
    found = []
    for p in sorted(PKG.rglob("*.py")):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    return found


def test_seed_range_and_device_check_are_written_once():
    for name in ("SEED_MAX", "check_seed", "check_device"):
        assert len(_definitions(name)) == 1, (name, _definitions(name))
    # and the range's number is computed nowhere else (``2 ** 32`` in code, not in messages or help)
    pows = [f"{p.relative_to(ROOT)}:{node.lineno}" for p in sorted(PKG.rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
            and [getattr(node.left, "value", None), getattr(node.right, "value", None)] == [2, 32]]
    assert pows == _definitions("SEED_MAX"), pows


def test_the_definition_scan_finds_a_repeat(tmp_path, monkeypatch):
    """The scan above can fail: two modules defining the same name are both found."""
    for k in ("a", "b"):
        (tmp_path / f"{k}.py").write_text("SEED_MAX = 1\n\ndef check_seed():\n    pass\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert len(_definitions("SEED_MAX")) == 2 and len(_definitions("check_seed")) == 2


def test_the_one_device_rule_takes_what_torch_takes_for_cpu_and_cuda():
    """``fastsel select --device`` parsed with torch.device and the loop with its own pattern; the
    one rule accepts exactly the cpu/cuda spellings torch.device accepts (what select took), and
    the CLI's one usage line is the one it printed."""
    import click
    import pytest
    import torch

    from fastsel.cli._common import require_device
    from fastsel.errors import DataError
    from fastsel.loop.config import check_device
    for s in ["cpu", "cuda", "cpu:0", "cpu:3", "cuda:1", "cuda:10", "CPU", "Cuda", " cpu", "cuda:00", "cuda:-1",
              "cuda 1", "cuda:", "cpu:00", "cuda:1:2", "mps", "meta", "tpu", "", 0, None]:
        try:
            torch_ok = torch.device(s).type in ("cpu", "cuda")
        except (RuntimeError, TypeError, ValueError):
            torch_ok = False
        try:
            check_device(s)
            ok = True
        except DataError:
            ok = False
        assert ok == torch_ok, s
    with pytest.raises(click.UsageError, match=r"^--device must be cpu or cuda\[:K\], got 'tpu'$"):
        require_device("tpu")


def test_the_config_seed_rule_is_the_ops_rule_on_a_plain_integer():
    import pytest

    from fastsel.errors import DataError
    from fastsel.loop.config import LoopConfig, preset
    from fastsel.ops._inputs import SEED_MAX
    cfg = LoopConfig(dataset="mnist", **preset("smoke", "mnist"))
    for seed in (0, 7, SEED_MAX):
        cfg.seed = seed
        cfg.validate()
    for seed in (-1, SEED_MAX + 1, 3.0, True, "3", None):
        cfg.seed = seed
        with pytest.raises(DataError, match=r"seed must be an integer in \[0, 2\*\*32-1\]"):
            cfg.validate()
