"""Every registry path the "Extending fastsel" page's table (docs/extending.md) names can be reached as written:
`from M import N` by importing, `a.b.C` by attribute access from the package (as a user types it)."""
import importlib
import re
from pathlib import Path

import fastsel


def _table() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    table = text[text.index("| to add | registry | one call |"):]
    return table[: table.index("\n\n")]


def test_the_documented_registry_paths_exist():
    found = 0
    for m in re.finditer(r"`from (fastsel[\w.]*) import (\w+)`|`fastsel((?:\.\w+)+)`", _table()):
        if m.group(1):
            assert hasattr(importlib.import_module(m.group(1)), m.group(2)), m.group(0)
        elif m.group(3).split(".")[-1].isupper():  # a registry written as an attribute path
            parts = m.group(3).strip(".").split(".")
            importlib.import_module(".".join(["fastsel", *parts[:-1]]))  # `import fastsel.a.b`, as a user would
            obj = fastsel
            for part in parts:
                obj = getattr(obj, part)  # AttributeError: the documented path is broken
            assert isinstance(obj, (dict, list, tuple)), m.group(0)
        else:
            continue
        found += 1
    assert found >= 4  # selector, dataset, extractor, loop column


def test_one_public_name_per_thing():
    """``fastsel.select`` is the function and only that: the registry module has its own name, so
    importing it (``import fastsel.selectors``) cannot rebind ``fastsel.select`` to a module, and
    ``fastsel.selectors.SELECTORS`` works as an attribute path."""
    import subprocess
    import sys
    code = ("import fastsel.selectors, fastsel; assert callable(fastsel.select) and not hasattr(fastsel.select, "
            "'SELECTORS'); assert 'greedy' in fastsel.selectors.SELECTORS; assert fastsel.select is "
            "fastsel.selectors.select\n"
            "try:\n    import fastsel.select\nexcept ModuleNotFoundError:\n    pass\n"
            "else:\n    raise AssertionError('fastsel.select is also a module')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
