"""No import cycle among fastsel's modules, counting imports inside functions too (a function-level
import that closes a cycle only hides it). A package importing its own submodules is not a cycle;
the compiled extension (``fastsel._C``) is not a Python module."""
import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "fastsel"


def _modules() -> dict:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    return mods


def _imports(mods: dict) -> dict:
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg
                    for _ in range(node.level - 1):
                        up = up.rpartition(".")[0]
                    base = up + ("." + node.module if node.module else "")
                for a in node.names:
                    targets.append(base + "." + a.name if base + "." + a.name in mods else base)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and t != m and not t.startswith(m + "."):
                    edges[m].add(t)
    return edges


def _cycles(edges: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    mods = _modules()
    edges = _imports(mods)
    assert len(mods) > 30 and sum(map(len, edges.values())) > 50  # the scan sees the package
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# ---------------------------------------------------------------- the CLI parses and calls

# modules outside fastsel/cli/ that may import it: the ``python -m fastsel`` entry point only
CLI_ENTRY_POINTS = {"fastsel.__main__"}


def _cli_importers(mods: dict) -> list:
    """Modules outside fastsel.cli that import it (at any depth: module level or in a function)."""
    edges = _imports(mods)
    return sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts
                  if not (m == "fastsel.cli" or m.startswith("fastsel.cli.")) and m not in CLI_ENTRY_POINTS
                  and (t == "fastsel.cli" or t.startswith("fastsel.cli.")))


def test_nothing_outside_the_cli_imports_it():
    """The CLI parses and calls the library: sweeps, sharded selection, memory rules live below it,
    so a benchmark or a library module never reaches up into fastsel.cli."""
    mods = _modules()
    assert "fastsel.cli.loop" in mods and "fastsel.benchmarks.frontier" in mods
    assert _cli_importers(mods) == []


def test_the_cli_importer_scan_sees_an_import(tmp_path):
    """The scan above can fail: a library module that imports fastsel.cli (either spelling) is listed."""
    pkg = tmp_path / "fastsel"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "cli" / "loop.py").write_text("X = 1\n")
    (pkg / "bench.py").write_text("def f():\n    from fastsel.cli.loop import X\n")
    (pkg / "lib.py").write_text("from .cli import loop\n")
    mods = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
            for p in pkg.rglob("*.py")}
    assert _cli_importers(mods) == ["fastsel.bench -> fastsel.cli.loop", "fastsel.lib -> fastsel.cli.loop"]


# ---------------------------------------------------------------- function-level imports say why

# where a function-level import is allowed, each with its reason in a comment on its line: an optional
# dependency (``# optional: faiss (a bench anchor)``; a Unix-only module counts), start-up time (``# start-up:
# fastsel --help must not load it``) or an import cycle a top-level import would close (``# cycle: ...``)
REASON = re.compile(r"#.*\b(optional|start-up|cycle):")


def _function_imports(path: Path) -> list:
    """(line, text) of every import statement inside a function of ``path`` whose (first) line does not
    name its reason."""
    src = path.read_text()
    lines = src.splitlines()
    seen, bare = set(), []
    for fn in ast.walk(ast.parse(src)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno not in seen:
                seen.add(node.lineno)
                here = lines[node.lineno - 1]
                if not REASON.search(here):
                    bare.append((node.lineno, here.strip()))
    return bare


def _bare_function_imports(pkg: Path) -> list:
    """``path:line: text`` of each function-level import without its reason, in every module of ``pkg``."""
    return [f"{p.relative_to(pkg.parent)}:{ln}: {text}" for p in sorted(pkg.rglob("*.py"))
            for ln, text in _function_imports(p)]


def test_function_level_imports_in_the_whole_package_say_why():
    """An import inside a function hides a dependency and its cost; in every module of fastsel each one
    names its reason (an optional package, start-up time, a cycle) in a comment, else it moves to the
    top of its module."""
    assert len(list(PKG.rglob("*.py"))) > 30  # the scan sees the package
    assert _bare_function_imports(PKG) == []


def test_the_function_import_scan_sees_a_bare_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import os\n\n\ndef f():\n    import json\n    # optional: a comment on another line\n"
                 "    import matplotlib\n    import scipy  # optional: scipy (the data extra)\n"
                 "    import csv  # the rows, a comment that names no reason\n"
                 "    import fcntl  # noqa: F401 -- optional: Unix only\n    import x  # start-up: heavy\n\n"
                 "    def g():\n        from . import y  # cycle: y imports m\n        import z\n")
    assert _function_imports(p) == [(5, "import json"), (7, "import matplotlib"),
                                    (9, "import csv  # the rows, a comment that names no reason"), (15, "import z")]


def test_the_function_import_scan_covers_the_whole_package(tmp_path):
    """Not only fastsel/cli and fastsel/loop: a bare function-level import in any sub-package or top
    module is listed."""
    pkg = tmp_path / "fastsel"
    for d in ("cli", "curate", "benchmarks"):
        (pkg / d).mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "x.py").write_text("def f():\n    import json  # start-up: the reason\n")
    (pkg / "curate" / "sources.py").write_text("def f():\n    from .. import data\n")
    (pkg / "benchmarks" / "check.py").write_text("def f():\n    import apricot  # optional: a bench anchor\n")
    (pkg / "fid.py").write_text("def f():\n    import warnings\n")
    assert _bare_function_imports(pkg) == ["fastsel/curate/sources.py:2: from .. import data",
                                           "fastsel/fid.py:2: import warnings"]


def test_tests_live_next_to_the_module_they_guard():
    """Issue 42: tests are organised by the module they guard, not by the round of past work that found
    them; the reliability files (test_reliability*.py, test_*_reliability.py) were split up by module
    (select's CLI cases in test_cli_select.py, io's rules in test_io.py, the ops' input checks in
    test_ops_inputs.py, ...) and no such file comes back."""
    tests = Path(__file__).resolve().parent
    grouped_by_round = sorted(p.name for p in tests.glob("test_*.py") if "reliability" in p.stem)
    assert grouped_by_round == []
