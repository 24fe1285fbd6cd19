"""fastsel/loop/columns.py is the one list of the loop's metric keys: the report (fastsel/loop/report/) and the
``fastsel loop`` summary (fastsel/cli/loop.py) read the keys from it and never type one themselves."""
import ast
import types
from pathlib import Path

import click
from click.testing import CliRunner

from fastsel.loop import columns as C

ROOT = Path(__file__).resolve().parents[1]

# string constants equal to a metric key that are not a metric chosen by the reader, with the reason
ALLOWED = {
    ("fastsel/loop/report/stats.py", "gs"): "correlation()/run_correlation()'s default y (a public signature)",
    ("fastsel/loop/report/figures.py", "n_train"): "iteration 0's training-set size, read as data (not a metric "
                                                   "drawn or tested)",
}


def _key_literals(path: Path) -> set:
    """The string constants of a module that equal a metric key (docstrings and f-string text aside)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    keys = {c.key for c in C.COLUMNS}
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in keys and id(n) not in docs}


def test_the_report_and_the_cli_type_no_metric_key():
    readers = sorted((ROOT / "fastsel" / "loop" / "report").glob("*.py")) + [ROOT / "fastsel" / "cli" / "loop.py"]
    assert len(readers) >= 5  # the report's modules and the CLI
    typed = sorted((str(p.relative_to(ROOT)), k) for p in readers for k in _key_literals(p))
    assert [t for t in typed if t not in ALLOWED] == []


def test_the_key_scan_sees_a_typed_key(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('"""gs in a docstring is prose."""\nKEYS = [("copy_fraction", "copies")]\n')
    assert _key_literals(p) == {"copy_fraction"}


def _records(extra=None):
    recs = []
    for arm in ("accumulate-none", "accumulate-greedy"):
        for t in range(2):
            recs.append({"arm": arm, "iteration": t, "copy_fraction": 0.1, "gs_norm": 0.5, "entropy_fixed": 3.0,
                         "gs": 1.0, "shares": [1.0], "n_train": 16, **(extra or {}).get((arm, t), {})})
    return recs


def _summary(records) -> str:
    from fastsel.cli import loop as L
    cfg = types.SimpleNamespace(features="pixels", fid_features="pixels", dataset="mnist", preset="cpu", n=16,
                                paradigm="accumulate", alpha=None, unet="tiny", iterations=1, seed=0, train_steps=10)

    @click.command()
    def show():
        L._summary(records, cfg)
    r = CliRunner().invoke(show, [])
    assert r.exit_code == 0, r.output
    return r.output


def test_the_cli_summary_takes_its_comparisons_and_notes_from_the_columns(monkeypatch):
    out = _summary(_records())
    assert "copies 0.1 vs 0.1" in out and "GS/held-out 0.5 vs 0.5" in out and "entropy@m 3 vs 3" in out
    assert "conf = " not in out.splitlines()[0]  # no record holds class_confidence: its note is not said
    toy = C.Column("toy", None, cli="toy", cli_vs="toy-vs", cli_note="toy = a column added here")
    cols = tuple(c._replace(cli_vs=None) if c.key == "copy_fraction" else c for c in C.COLUMNS) + (toy,)
    monkeypatch.setattr(C, "COLUMNS", cols)
    out = _summary(_records({("accumulate-none", 1): {"toy": 1.0}, ("accumulate-greedy", 1): {"toy": 2.0}}))
    assert out.splitlines()[0].endswith("; toy = a column added here")
    assert "toy-vs 2 vs 1" in out and "copies 0.1 vs" not in out


def test_the_correlation_figures_and_table_read_the_columns():
    from fastsel.loop.report import CORR_PAIRS
    assert CORR_PAIRS == [("raw KL entropy", "log GS"), ("KL entropy at m", "log GS"),
                          ("KL entropy at m", "log GS/held-out"), ("covariance trace", "log GS"),
                          ("covariance trace", "log GS/held-out")]  # report.md's rows, as before
    for stem, (paper, title, what, panels) in C.CORRELATIONS.items():
        for p in panels:
            assert C.column(p.x).axis and C.column(p.y)  # every panel names columns that exist
