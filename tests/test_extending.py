"""Extending fastsel: a selector registered in one place runs through fastsel.select, the
`fastsel select` command and the loop's selection step (docs/extending.md).

Every ```python block of docs/extending.md runs here as written (the ``test_doc_*`` tests): a page
example that breaks fails a test."""
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel.cli.main import cli
from fastsel.loop.pool import Candidates, select_from
from fastsel.selectors import SELECTORS
from _helpers import tiny_npz


def _tiny_loop(tmp_path, selector: str):
    """A two-iteration replace loop on 40 random 8x8 images, one arm: a minute's run on 2 cores."""
    from fastsel.loop import LoopConfig, preset
    return LoopConfig(dataset=tiny_npz(tmp_path), **dict(
        preset("smoke", "tiny"), n=16, train_steps=4, batch_size=8, sample_steps=2, sample_batch=8, iterations=2,
        ckpt_every=2, selectors=(selector,), paradigm="replace"))


@pytest.fixture
def toy():
    """'farthest-from-mean': the n rows farthest from the pool's mean (a toy: fixed answer)."""
    calls = []

    @fastsel.register_selector("farthest-from-mean", help="rows farthest from the mean")
    def farthest_from_mean(x, n, *, seed, **options):
        calls.append(sorted(options))
        d = ((x - x.mean(0)) ** 2).sum(1)
        return torch.argsort(d, descending=True, stable=True)[:n]
    yield calls
    del SELECTORS["farthest-from-mean"]


def _want(x, n):
    d = ((x - x.mean(0)) ** 2).sum(1)
    return np.argsort(-d, kind="stable")[:n]


def test_registered_selector_runs_through_select_cli_and_loop(toy, tmp_path, rng):
    x = rng.standard_normal((200, 6)).astype(np.float32)
    want = _want(x.astype(np.float64), 20)
    # 1. the Python entry point
    got = fastsel.select(torch.from_numpy(x), 20, "farthest-from-mean")
    assert np.array_equal(np.sort(got.numpy()), np.sort(want))
    # 2. the command line: a valid --method, the same rows written
    np.save(tmp_path / "f.npy", x)
    out = tmp_path / "sel.npy"
    r = CliRunner().invoke(cli, ["select", "--in", str(tmp_path / "f.npy"), "--n", "20", "--method",
                                 "farthest-from-mean", "--out", str(out), "--json", "--no-metrics", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["method"] == "farthest-from-mean"
    assert np.array_equal(np.sort(np.load(out)), np.sort(want))
    # 3. the loop: a valid arm name, and its selection step picks the same rows
    from fastsel.loop.config import LoopConfig, preset
    cfg = LoopConfig(dataset="mnist", **dict(preset("smoke", "mnist"), selectors=("none", "farthest-from-mean")))
    assert cfg.selectors[-1] == "farthest-from-mean"
    c = Candidates(np.zeros(200, np.int16), np.arange(200), x)
    rows = select_from(c, 20, "farthest-from-mean", seed=3)
    assert np.array_equal(np.sort(rows), np.sort(want))
    # every caller passed the same keywords: the common ones, never another selector's options
    assert toy[0] == toy[1] == toy[2] == ["backend", "progress", "start"]


def test_registry_refuses_bad_and_duplicate_names(toy):
    with pytest.raises(ValueError, match="already registered"):
        fastsel.register_selector("greedy", lambda x, n, **_: torch.arange(n))
    for bad in ("", "a,b", "none", "all"):
        with pytest.raises(ValueError, match="selector name"):
            fastsel.register_selector(bad, lambda x, n, **_: torch.arange(n))
    with pytest.raises(ValueError, match="method must be one of"):
        fastsel.select(torch.zeros(5, 2), 2, "no-such-method")


def test_a_selector_returning_the_wrong_count_is_one_line(rng):
    fastsel.register_selector("short", lambda x, n, **_: torch.arange(n - 1))
    try:
        with pytest.raises(ValueError, match="returned"):
            fastsel.select(torch.zeros(5, 2), 3, "short")
    finally:
        del SELECTORS["short"]


def test_registered_selector_runs_a_whole_loop(toy, tmp_path):
    """The loop's Python API with an arm of the toy selector: one iteration on tiny data, its
    training set is exactly what the selector picks from the candidates."""
    pytest.importorskip("diffusers")
    pytest.importorskip("matplotlib")
    from fastsel.loop import run_loop
    cfg = _tiny_loop(tmp_path, "farthest-from-mean")
    recs = run_loop(cfg, str(tmp_path / "run"), report=False)
    assert sorted((r["arm"], r["iteration"]) for r in recs) == [("replace-farthest-from-mean", 0),
                                                                 ("replace-farthest-from-mean", 1)]
    d1 = tmp_path / "run" / "replace-farthest-from-mean" / "iter_001"
    idx = np.load(d1 / "train_idx.npy")
    feats = np.load(tmp_path / "run" / "shared" / "iter_000" / "feats.npy")  # the candidates: generation 1
    assert np.array_equal(np.sort(idx), np.sort(_want(feats.astype(np.float64), 16)))


def test_a_registered_dataset_carries_every_fact_the_loop_reads():
    """One register_dataset call: the dry run counts the UNet from its shape, the paper preset takes
    its n and epochs, the CPU preset its classifier's features; a dataset without them gets the
    defaults (no UNet count, 8,192 / 500, pixels)."""
    from fastsel import data
    from fastsel.loop.config import preset
    load = lambda spec, split="train", download=False, size=None: None  # noqa: E731 -- never called by a dry run
    data.register_dataset("toy-digits", load, "toy", shape=(16, 1), paper_n=640, paper_epochs=7, classifier="lenet")
    data.register_dataset("toy-bare", load, "toy")
    try:
        r = CliRunner().invoke(cli, ["loop", "toy-digits", "--preset", "smoke", "--dry-run", "--json"])
        assert r.exit_code == 0, r.output
        d = json.loads(r.stdout)
        assert d["image_size"] == 16 and d["channels"] == 1 and d["unet_params"] > 0
        p = preset("paper", "toy-digits")
        assert p["n"] == 640 and p["epochs"] == 7
        assert preset("cpu", "TOY-DIGITS")["features"] == "lenet"
        bare = preset("paper", "toy-bare")
        assert bare["n"] == 8192 and bare["epochs"] == 500 and preset("cpu", "toy-bare")["features"] == "pixels"
        r = CliRunner().invoke(cli, ["loop", "toy-bare", "--preset", "smoke", "--dry-run", "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["unet_params"] is None, r.output
    finally:
        data.SOURCES.pop("toy-digits")
        data.SOURCES.pop("toy-bare")
    assert preset("paper", "mnist")["n"] == 12000 and preset("cpu", "fashion-mnist")["features"] == "lenet-fashion"


def test_a_column_declares_its_figure_and_how_it_is_read(monkeypatch):
    from fastsel.loop import columns as C
    from fastsel.loop import report as R
    from fastsel.loop.report import stats as S
    toy = C.Column("toy_metric", "toy ({fs})", figure="toy", read=lambda r: 2 * r["raw"], test=True)
    monkeypatch.setattr(C, "COLUMNS", C.COLUMNS + (toy,))
    figs = {stem: (cols, meta) for stem, cols, meta in C.figures()}
    assert [c.key for c in figs["toy"][0]] == ["toy_metric"] and "toy" in figs["toy"][1][0]
    assert [c.key for c in figs["memorization"][0]] == ["copy_fraction", "gs_norm"]
    assert toy.value({"raw": 3}) == 6 and C.COLUMNS[0].value({"copy_fraction": 0.5}) == 0.5
    share = next(c for c in C.COLUMNS if c.key == "share_real")
    assert share.value({"shares": [0.25, 0.75]}) == 0.25 and S._value({"shares": [0.25, 0.75]}, "share_real") == 0.25
    assert "share_real" in R.STAT_KEYS and "mnnd" not in R.STAT_KEYS


def test_arms_with_equal_curves_are_drawn_side_by_side_not_on_top(monkeypatch, tmp_path):
    """Two selectors that reach the same values (dpp and greedy's entropy did) once hid one another:
    several arms are drawn at small x offsets around each iteration, each with its own marker; one
    arm is drawn at the iterations themselves."""
    from fastsel.loop.report import figures as F
    figs = []
    monkeypatch.setattr(F, "_save", lambda fig, path: figs.append(fig))
    recs = [{"iteration": t, "gs": 1.0 + t} for t in range(3)]

    def cond(arm):
        return {"arm": arm, "n": 16, "paradigm": "accumulate", "seeds": {0: (None, recs), 1: (None, recs)}}
    conds = {f"accumulate-{a}": cond(a) for a in ("dpp", "greedy", "none")}
    assert F._curves(conds, [("gs", "GS")], str(tmp_path / "gs.png"), "t", "s")
    lines = figs[0].axes[0].get_lines()
    xs = [tuple(ln.get_xdata()) for ln in lines]
    assert len(set(xs)) == 3 and len({ln.get_marker() for ln in lines}) == 3
    assert all(abs(x[t] - t) < 0.2 for x in xs for t in range(3))
    assert [tuple(ln.get_ydata()) for ln in lines] == [(1.0, 2.0, 3.0)] * 3  # values untouched
    figs.clear()
    assert F._curves({"accumulate-dpp": cond("dpp")}, [("gs", "GS")], str(tmp_path / "one.png"), "t", "s")
    assert tuple(figs[0].axes[0].get_lines()[0].get_xdata()) == (0.0, 1.0, 2.0)


# ---- the page's own examples, run as written ------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _blocks(section: str) -> list:
    """The ```python blocks of the page's section ``## <section>``, in order."""
    text = DOC.read_text()
    start = text.index("\n## " + section + "\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start: end if end > 0 else len(text)], re.S)


def test_every_python_block_of_the_page_is_run_here():
    """The sections below are the page's: a new python block in another section fails here until a test runs it."""
    text = DOC.read_text()
    counted = {s: len(_blocks(s)) for s in ("A selector with an option", "A curate source", "A loop metric",
                                            "A new op")}
    assert counted == {"A selector with an option": 1, "A curate source": 1, "A loop metric": 2, "A new op": 3}
    assert text.count("```python") == sum(counted.values())


def test_doc_selector_with_an_option(tmp_path):
    (block,) = _blocks("A selector with an option")
    ns: dict = {}
    exec(compile(block, str(DOC), "exec"), ns)
    try:
        x, picked = ns["x"], ns["picked"]
        want = torch.argsort((x - x.mean(0)).abs().sum(1), descending=True)[:100]
        assert sorted(picked.tolist()) == sorted(want.tolist())
        # the option on the command line: a flag of its type, the same rows; refused for a method without it
        np.save(tmp_path / "f.npy", x.numpy())
        out = tmp_path / "sel.npy"
        args = ["select", "--in", str(tmp_path / "f.npy"), "--n", "100", "--out", str(out), "--no-metrics", "-q"]
        r = CliRunner().invoke(cli, [*args, "--method", "farthest-from-mean", "--power", "1"])
        assert r.exit_code == 0, r.output
        assert sorted(np.load(out).tolist()) == sorted(want.tolist())
        r = CliRunner().invoke(cli, [*args, "--method", "greedy", "--power", "1"])
        assert r.exit_code != 0 and "--power applies to --method farthest-from-mean, not greedy" in r.output
        # the loop's selection step passes it
        c = Candidates(np.zeros(1000, np.int16), np.arange(1000), x.numpy())
        rows = select_from(c, 100, "farthest-from-mean", seed=0, power=1.0)
        assert sorted(rows.tolist()) == sorted(want.tolist())
    finally:
        del SELECTORS["farthest-from-mean"]


def test_doc_curate_source(tmp_path, monkeypatch):
    from fastsel import data
    (block,) = _blocks("A curate source")
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(block, str(DOC), "exec"), {})  # registers "tiles", curates it by name, asserts the subset
        picks = _source_rows(tmp_path / "tiles-subset")
        assert len(picks) == 8
        images = data.load("tiles").images
        np.testing.assert_array_equal(np.load(tmp_path / "tiles-subset" / "subset" / "images.npy"), images[picks])
        # the command the page names: the same picks
        r = CliRunner().invoke(cli, ["curate", "tiles", "-n", "8", "--out", "cli-subset", "--features", "pixels", "-q"])
        assert r.exit_code == 0, r.output
        assert _source_rows(tmp_path / "cli-subset") == picks
    finally:
        data.SOURCES.pop("tiles", None)


def _source_rows(out):
    with open(out / "selected.csv") as f:
        return [int(r["source_index"]) for r in csv.DictReader(f)]


def test_doc_loop_metric_reaches_csv_report_figure_and_summary(tmp_path, monkeypatch, capsys):
    """The page's column and its Loop.measure line, added as the page says, through a whole (tiny) loop:
    metrics.csv, report.md's table, its own figure, the CLI summary."""
    pytest.importorskip("diffusers")
    pytest.importorskip("matplotlib")
    from fastsel.cli.loop import _summary
    from fastsel.loop import run_loop
    from fastsel.loop import columns as C
    from fastsel.loop import run as R
    from fastsel.loop.report import write_report
    entry, line = _blocks("A loop metric")
    col = eval(compile(entry.strip().rstrip(","), str(DOC), "eval"), {"Column": C.Column})
    assert isinstance(col, C.Column) and col.key == "spread"
    monkeypatch.setattr(C, "COLUMNS", C.COLUMNS + (col,))
    measure = R.Loop.measure

    def measured(self, arm, t, src, train_f, real_ff, train_im=None):
        rec = measure(self, arm, t, src, train_f, real_ff, train_im)
        exec(compile(line, str(DOC), "exec"), {"rec": rec, "tf": torch.from_numpy(train_f), "_finite": R._finite})
        return rec
    monkeypatch.setattr(R.Loop, "measure", measured)
    cfg = _tiny_loop(tmp_path, "none")
    run = tmp_path / "run"
    recs = run_loop(cfg, str(run), report=False)
    assert all(isinstance(r["spread"], float) and r["spread"] > 0 for r in recs)
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["spread"]) for r in rows] == pytest.approx([r["spread"] for r in recs])
    report = Path(write_report([str(run)], quiet=True))
    assert "spread: mean distance to the mean" in report.read_text()
    assert (report.parent / "spread.png").exists()
    capsys.readouterr()
    _summary(recs, cfg)
    head = capsys.readouterr().out.splitlines()[1]
    assert head.split()[-1] == "spread"
    assert col.key in tuple(c.key for c in C.COLUMNS if c.test)  # what the report's STAT_KEYS is built from


@pytest.fixture
def row_norms_schema():
    """The page's schema, defined from Python as csrc/ops.cpp defines it (m.def), for this test only."""
    pytest.importorskip("fastsel._C", reason="installed without the extension")
    lib = torch.library.Library("fastsel", "FRAGMENT")
    lib.define("row_norms(Tensor x) -> Tensor")
    yield lib
    lib._destroy()


def test_doc_new_op_python_side(row_norms_schema, monkeypatch):
    """The page's reference, fake kernel and wrapper: the reference stands in for the compiled CPU kernel
    (registered on the schema), the wrapper's backends agree, opcheck passes (schema, fake, dispatch)."""
    from fastsel import _backend, reference
    ref_block, fake_block, wrapper_block = _blocks("A new op")
    ns = {"torch": torch, "acc_dtype": reference.acc_dtype}
    exec(compile(ref_block, str(DOC), "exec"), ns)
    monkeypatch.setattr(reference, "row_norms", ns["row_norms"], raising=False)
    row_norms_schema.impl("row_norms", lambda x: ns["row_norms"](x.contiguous()), "CPU")  # the C++ kernel's stand-in
    exec(compile(fake_block, str(DOC), "exec"), {"torch": torch, "_acc": lambda x: reference.acc_dtype(x.dtype)})
    mod: dict = {}
    exec(compile(wrapper_block, str(DOC), "exec"), mod)
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(0))
    assert _backend.has_kernel("row_norms", "cpu")
    want = torch.linalg.vector_norm(x.double(), dim=1).float()
    for backend in ("auto", "cpp", "torch"):
        got = mod["row_norms"](x, backend=backend)
        assert got.dtype == torch.float32 and torch.allclose(got, want)
    assert mod["row_norms"](x.double()).dtype == torch.float64
    assert mod["row_norms"](np.arange(6).reshape(3, 2)).dtype == torch.float64  # as_tensor: integers exact
    torch.library.opcheck(torch.ops.fastsel.row_norms, (x,))
    with pytest.raises(fastsel.errors.FastselError):
        mod["row_norms"](x, backend="nope")
