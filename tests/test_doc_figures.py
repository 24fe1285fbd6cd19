"""Every performance figure in the benchmark pages says where it comes from.

docs/benchmarks.md, bench/README.md and the README's performance sections ("Switching from ..." and
"Headline figures") may carry a figure -- a ratio like ``4.5×`` / ``0.90x`` or a time, memory or rate
like ``1.45 s``, ``6.6 GB``, ``335 GFLOP/s`` -- only in a paragraph that names the commit it was
measured at (a 7- to 40-digit hex hash) or says it is ``bench check``'s (the figures that
``fastsel bench check`` reproduces at HEAD, from bench/baseline.json). A table or a code block takes
its provenance from the paragraph just before it (its caption), and in a table a bare decimal
(seconds, a ratio) counts as a figure too; a list item from its own text or the
lead-in line of its list. Paragraph level on purpose: simple, and it cannot be met by a hash far
from the figure.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a number, then a unit; "16×16" / "65,536 × 384" (shapes) and "20000x64" are not figures
FIGURE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?"
    r"(?:\s?×(?!\s?\d)|x(?!\w)|\s?(?:GFLOP/s|TB/s|GB/s|img/s|GiB|GB|MiB|MB|ms|µs|min|s)(?![\w/]))")
# a commit hash ("commit 8889470", or any hex word with a digit and a letter) or the regression check's table
PROVENANCE = re.compile(r"\bcommits?\s+[0-9a-f]{7,40}\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"
                        r"|bench check|Regression check")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")  # in a table, a bare 2.009 is a measurement too
ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s")


def blocks(text: str):
    """The page's blocks in order, as (kind, text): kind "fence", "table", "heading" or "para"
    (blank-line separated; a fenced code block is one block whatever it holds)."""
    out, cur, fence = [], [], False

    def flush():
        if cur:
            body = "\n".join(cur)
            if all(line.lstrip().startswith("|") for line in cur):
                kind = "table"
            elif cur[0].startswith("#"):
                kind = "heading"
            else:
                kind = "para"
            out.append((kind, body))
            cur.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if fence:
                cur.append(line)
                out.append(("fence", "\n".join(cur)))
                cur.clear()
                fence = False
            else:
                flush()
                cur.append(line)
                fence = True
        elif fence:
            cur.append(line)
        elif not line.strip():
            flush()
        else:
            cur.append(line)
    flush()
    return out


def pieces(body: str):
    """A paragraph's list items with the lead-in before them (each item is judged on its own text
    plus the lead-in); a paragraph without items is one piece."""
    lines = body.splitlines()
    starts = [i for i, line in enumerate(lines) if ITEM.match(line)]
    if not starts:
        return [("", body)]
    lead = "\n".join(lines[:starts[0]])
    items = [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]
    return ([("", lead)] if lead.strip() else []) + [(lead, "\n".join(item)) for item in items]


def unsourced(text: str):
    """The pieces of a page that carry a figure but no provenance, each cut to its first 100 characters."""
    bad, caption = [], ""
    for kind, body in blocks(text):
        if kind == "heading":
            continue
        if kind in ("table", "fence"):
            measured = FIGURE.search(body) or (kind == "table" and DECIMAL.search(body))
            if measured and not PROVENANCE.search(body) and not PROVENANCE.search(caption):
                bad.append(body[:100])
            continue
        caption = body
        for lead, piece in pieces(body):
            if FIGURE.search(piece) and not PROVENANCE.search(piece) and not PROVENANCE.search(lead):
                bad.append(piece[:100])
    return bad


def readme_performance(text: str) -> str:
    """README.md's performance sections: "Switching from ..." (bench compat's table) and "Headline figures"."""
    keep, on = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            on = line.startswith(("## Switching from", "## Headline figures"))
        if on:
            keep.append(line)
    return "\n".join(keep)


def test_the_rule_catches_a_figure_without_its_commit():
    page = ("Intro.\n\nfastsel takes 1.45 s, 11.6× torch-quickfps.\n\n"
            "At commit 7d7f83a: 1.45 s.\n\n"
            "Caption, commit 8889470:\n\n| a | b |\n|---|---|\n| 1 | 2.4× |\n\n"
            "Caption without one:\n\n| a | b |\n|---|---|\n| 1 | 2.4× |\n\n"
            "Lead-in, all at commit bb2766e:\n- one: 7.8×\n- two: 3 s\n\n"
            "Lead-in:\n- one: 7.8× (commit 515a6f5)\n- two: 3 s\n\n"
            "Shapes are no figures: 16×16 digits, 65,536 × 384, 20000x64, n = 2,048.\n\n"
            "The check's own: `fastsel bench check` reads 15.6×.\n")
    assert unsourced(page) == ["fastsel takes 1.45 s, 11.6× torch-quickfps.", "| a | b |\n|---|---|\n| 1 | 2.4× |",
                               "- two: 3 s"]


@pytest.mark.parametrize("path", ["docs/benchmarks.md", "bench/README.md", "README.md"])
def test_every_figure_names_its_commit_or_the_check(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    if path == "README.md":
        text = readme_performance(text)
        assert "Headline figures" in text  # the section this test reads is still there
    bad = unsourced(text)
    assert not bad, f"{path}: figures with no commit hash or 'bench check' in their paragraph:\n" + "\n---\n".join(bad)
