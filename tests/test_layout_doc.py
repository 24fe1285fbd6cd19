"""docs/layout.md matches the tree: every source file is mentioned, and every path it mentions exists.

The rule. The page is one fenced block of entries; an entry is a line that starts in the first column
(its first word is a path) and the indented lines under it. Source files are the tracked-in-the-tree
files ``fastsel/**/*.py``, ``csrc/**/*.{cpp,h,cu,cuh}``, ``bench/*.py``, ``bench/*.sh`` (the wheel's
benchmarks are under ``fastsel/benchmarks/``). A source file is mentioned when

- its path from the repository root is written anywhere on the page (``fastsel/io.py``), or
- an entry for a folder that holds it (a first word ending in ``/``, or a pattern such as
  ``csrc/cpu/*_cpu.cpp``, whose folder is the part before the last ``/``) names it by its path
  from that folder or by its file name (``fastsel/curate/ ... sources.py, embed.py``).

A package's ``__init__.py`` is mentioned when its folder is: the folder's own entry, or its path
from the folder of an entry that holds it written with a trailing ``/`` (``report/`` in the
``fastsel/loop/`` entry). Tests are described generally (``tests/``), not file by file.

Every path the page writes must exist: a word that starts at the repository root (``fastsel/``,
``csrc/``, ``bench/``, ``docs/``, ``tests/``, ``.ci/``) is looked up from the root, a patterned one
(``*``) must match at least one file, and a file name inside a folder entry must exist under that
folder."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("fastsel/", "csrc/", "bench/", "docs/", "tests/", ".ci/")
FILE = r"[\w.*<>-]+\.(?:py|cpp|h|cu|cuh|sh)"
# a path from the root: a known first folder, then folders and an optional file name
ROOTED = re.compile(r"(?<![\w/.-])((?:fastsel|csrc|bench|docs|tests|\.ci)/(?:[\w.*<>-]+/)*(?:[\w.*<>-]+)?)")
NAME = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*" + FILE + r")(?![\w])")


def _block() -> str:
    text = (ROOT / "docs" / "layout.md").read_text()
    return text.split("```")[1]


def _entries(block: str) -> list[tuple[str, str]]:
    """(first word, the entry's whole text) for each entry of the block."""
    out: list[tuple[str, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        if line[0] != " ":
            out.append((line.split()[0], line))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out


def _folder(word: str) -> str | None:
    """The folder an entry describes ('' for none): 'fastsel/curate/' or the folder of a pattern."""
    if word.endswith("/"):
        return word
    if "*" in word or "<" in word:
        return word[: word.rindex("/") + 1]
    return None


def _sources() -> list[str]:
    pats = ["fastsel/**/*.py", *(f"csrc/**/*.{e}" for e in ("cpp", "h", "cu", "cuh")), "bench/*.py", "bench/*.sh"]
    found = {p.relative_to(ROOT).as_posix() for pat in pats for p in ROOT.glob(pat)}
    return sorted(f for f in found if "__pycache__" not in f)


def _names(text: str) -> set[str]:
    return set(NAME.findall(text)) | {m.rstrip("/") + "/" for m in re.findall(r"(?<![\w/.-])([\w-]+/)", text)}


def _mentioned(path: str, block: str, entries: list[tuple[str, str]]) -> bool:
    p = Path(path)
    if p.name == "__init__.py":
        folder = p.parent.as_posix() + "/"
        if re.search(r"(?<![\w/.-])" + re.escape(folder), block):
            return True
        for word, text in entries:
            f = _folder(word)
            if f and folder.startswith(f) and folder != f and folder[len(f):] in _names(text):
                return True
        return False
    if re.search(r"(?<![\w/.-])" + re.escape(path) + r"(?![\w])", block):
        return True
    for word, text in entries:
        f = _folder(word)
        if f and path.startswith(f):
            names = _names(text)
            if path[len(f):] in names or p.name in names:
                return True
    return False


def missing() -> list[str]:
    block = _block()
    entries = _entries(block)
    return [f for f in _sources() if not _mentioned(f, block, entries)]


def dangling() -> list[str]:
    """The paths the page writes that name nothing in the tree."""
    block = _block()
    bad = []
    for word in set(ROOTED.findall(block)):
        word = word.rstrip(".")
        if not word.rstrip("/"):
            continue
        pat = word.replace("<op>", "*")
        if not (list(ROOT.glob(pat.rstrip("/"))) if "*" in pat else (ROOT / pat).exists()):
            bad.append(word)
    for word, text in _entries(block):
        f = _folder(word)
        if not f:
            continue
        for name in NAME.findall(text):
            if name.startswith(ROOTS) or "*" in name or "<" in name:
                continue  # a rooted path, checked above; a pattern, its entry's first word
            if not list((ROOT / f).glob("**/" + name)) and not (ROOT / name).is_file():
                bad.append(f"{name} (in the {word} entry)")
    return sorted(bad)


def test_every_source_file_is_in_layout_md():
    assert missing() == [], "docs/layout.md does not mention: " + ", ".join(missing())


def test_every_path_layout_md_names_exists():
    assert dangling() == [], "docs/layout.md names what is not in the tree: " + ", ".join(dangling())


def test_the_rule_can_fail():
    """The check sees an omission and a dangling name (guards the rule itself)."""
    block = "fastsel/curate/   sources.py, embed.py\nfastsel/io.py   io\n"
    entries = _entries(block)
    assert _mentioned("fastsel/curate/embed.py", block, entries)
    assert _mentioned("fastsel/curate/__init__.py", block, entries)
    assert not _mentioned("fastsel/curate/report.py", block, entries)
    assert not _mentioned("fastsel/_dist.py", block, entries)
    assert not _mentioned("fastsel/loop/report/__init__.py", "fastsel/loop/  run.py\n",
                          _entries("fastsel/loop/  run.py\n"))
    assert _mentioned("fastsel/loop/report/__init__.py", "fastsel/loop/  run.py, report/\n",
                      _entries("fastsel/loop/  run.py, report/\n"))
