"""``fastsel report RUN [RUN ...]``: the paper's figures from one or more loop runs (and the
sub-runs of a sweep), each titled with its figure number, feature space and settings, plus
report.md listing them.

Figures, as the data allows: GS / FID / entropy / class confidence per iteration, one line per arm,
training-set size and alpha (Figs. 1-right, 2a, 8-10, 13, 14); MNND and covariance trace
(Fig. 7); entropy vs GS with Pearson r and its p-value (Fig. 2b); variance vs GS (Fig. 2c);
SVD projection of real vs generated features (Fig. 6); source shares with the 1/(t+1) line
(Fig. 11); sample grids per iteration (Figs. 15-20); generated images beside their nearest
training images for a chosen iteration (Figs. 1-left, 12).

The package, one job a module: ``load`` (runs read and checked, grouped into conditions), ``stats``
(intervals, correlations, arm tests), ``figures`` (every figure), ``markdown`` (report.md's text);
:func:`write_report` here checks the output folder and writes them.
"""
from __future__ import annotations

import os
import sys
import warnings

from ...io import DataError, UsageProblem, check_distinct, save_json, save_text
from .. import analysis as A
from ..columns import CORRELATIONS
from .figures import CI_NOTE, _draw, analysis_figure, space
from .load import _apart, _conditions, _series, load_runs
from .markdown import (_arm_test_lines, _correlation_lines, _head_lines, _metric_lines, _pool_lines, _settings,
                       _threshold_lines)

# the names this module had before it became a package (docs/summarize.py, tests, the CLI import them here)
from .figures import ARM_COLOURS, FEATURE_NAMES, MARKERS  # noqa: E402,F401
from .load import check_unedited, load_sweep  # noqa: E402,F401
from .markdown import CORR_PAIRS  # noqa: E402,F401
from .stats import STAT_KEYS, arm_tests, correlation, distinct_points, run_correlation  # noqa: E402,F401


def _check_no_input_in(out: str, runs) -> None:
    """Refuse an ``out`` holding a link (or hard link) to a file the report reads: writing the report
    would replace the run's data. Inputs are the files under each run folder, ``out``'s own excepted."""
    real_out = os.path.realpath(out)
    existing = [os.path.join(out, f) for f in os.listdir(out)]
    if not existing:
        return
    inputs = []
    for run in runs:
        for dirpath, dirs, names in os.walk(run["dir"]):
            if os.path.realpath(dirpath) == real_out:
                dirs[:] = []
                continue
            inputs += [os.path.join(dirpath, n) for n in names]
    check_distinct(existing, inputs)


REPORT_MARK = ".fastsel-report"  # in an output folder: the report made it (or took it over while empty)


def _check_out_ours(out: str, run_dirs, runs) -> None:
    """Before anything is written: ``out`` is new, empty, one an earlier report wrote (REPORT_MARK) or
    the report/ folder of a run being reported; a folder of other files -- the user's own -- is refused."""
    if not os.path.isdir(out) or os.path.exists(os.path.join(out, REPORT_MARK)):
        return
    mine = {os.path.realpath(os.path.join(d, "report")) for d in list(run_dirs) + [r["dir"] for r in runs]}
    names = sorted(os.listdir(out))
    if names and os.path.realpath(out) not in mine and not _earlier_report(names):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise DataError(f"{out} holds files the report did not write ({shown}): nothing was written -- choose a "
                        "new or empty folder for the report")


def _earlier_report(names) -> bool:
    """A report's folder written before REPORT_MARK: report.md with the figures every report draws, and
    only files a report writes."""
    return {"report.md", *(f"{stem}.png" for stem in CORRELATIONS)} <= set(names) and all(
        n in ("report.md", "arm_tests.json") or n.endswith(".png") for n in names)


def _check_iteration(runs, iteration) -> None:
    its = sorted({r["iteration"] for run in runs for r in run["records"]})
    if iteration is not None and iteration not in its:
        raise UsageProblem(f"iteration {iteration}: no run has it (the runs have iterations "
                           f"{', '.join(map(str, its))}); choose one of those")


def _print_warnings(caught) -> None:
    """Each distinct warning as one "warning: ..." line on stderr (no file:line, no source line)."""
    seen = []
    for w in caught:
        msg = " ".join(str(w.message).split())
        if msg not in seen:
            seen.append(msg)
            print(f"warning: {msg}", file=sys.stderr, flush=True)


def write_report(run_dirs, out: str | None = None, iteration: int | None = None, quiet: bool = False) -> str:
    """Draw every figure the runs' data allows and write report.md beside them.

    report.md lists the figures with their paper figure numbers, the arms' differences from `none`
    with 95 % intervals and p-values (seeds as replicates: runs whose configurations differ in more
    than the seed are separate conditions, said in report.md and on stderr), and the correlations
    of Fig. 2. Warnings (scipy's on identical values, ...) are printed as one "warning: ..." line each.

    Args:
        run_dirs: one run folder (str) or several (the seeds and arms of a sweep, compared).
        out: where the figures and report.md go; default: the first run's ``report/``. A folder holding
            other files is refused (unless it is a run's report/ or an earlier report's folder).
        iteration: the iteration whose samples the nearest-neighbour figure shows (one the runs have);
            default: the newest.
        quiet: do not print the report's path.

    Returns:
        The path of report.md.

    Raises:
        fastsel.io.DataError: a folder holds no finished iteration (not a loop run, or none finished yet),
            a damaged metrics.json, or ``out`` holds files the report did not write.
        fastsel.errors.UsageProblem: ``iteration`` is in none of the runs.
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            path = _write_report(run_dirs, out, iteration)
        finally:
            _print_warnings(caught)
    if not quiet:
        print(path)
    return path


def write_analysis(run_dirs, out: str | None = None, iteration: int | None = None) -> str:
    """The declared analysis (docs/analysis.md, :mod:`fastsel.loop.analysis`) over the runs: its markdown,
    also written with ``analysis.json`` into ``out`` when given (the report's folder rules: new, empty or
    a report's own folder, never one holding a run's input). A run folder with no finished iteration is
    listed as excluded, never left out silently.

    Raises:
        fastsel.errors.UsageProblem: ``out`` is a file.
        fastsel.io.DataError: as :func:`write_report`.
    """
    dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    runs = load_runs(dirs)
    res = A.analyse(runs, iteration=A.ITERATION if iteration is None else iteration)
    loaded = {os.path.realpath(r["dir"]) for r in runs}
    res["excluded"] += [{"run": d, "why": "no finished iteration"} for d in dirs
                        if os.path.realpath(d) not in loaded and not os.path.exists(os.path.join(d, "sweep.json"))]
    md = A.markdown(res)
    if out is not None:
        if os.path.exists(out) and not os.path.isdir(out):
            raise UsageProblem(f"--out {out} is a file: give a folder")
        if os.path.isdir(out):
            _check_no_input_in(out, runs)
            _check_out_ours(out, dirs, runs)
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, REPORT_MARK), "a").close()
        save_json(os.path.join(out, "analysis.json"), res)  # the numbers first: a figure that fails loses nothing
        png = os.path.join(out, "analysis.png")
        try:
            drawn = analysis_figure(res, png)
        except Exception as e:  # matplotlib missing (the loop extra), or a drawing error: said, the numbers kept
            warnings.warn(f"analysis.png not drawn ({type(e).__name__}: {e})", stacklevel=2)
            drawn = False
        if drawn:
            md += ("\n![The declared analysis: the primary measure by arm and iteration, each arm minus none, the "
                   "per-seed differences](analysis.png)\n")
        elif os.path.lexists(png):
            os.remove(png)  # an earlier run's figure in this report folder (ours) would not match these numbers
        save_text(os.path.join(out, "analysis.md"), md)
    return md


def _write_report(run_dirs, out, iteration) -> str:
    dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    runs = load_runs(dirs)
    _check_iteration(runs, iteration)
    out = out or os.path.join(dirs[0], "report")
    _check_out_ours(out, dirs, runs)
    os.makedirs(out, exist_ok=True)
    _check_no_input_in(out, runs)
    open(os.path.join(out, REPORT_MARK), "a").close()  # ours from now on
    fs, ffs = ("/".join(sorted({space(r["config"][k]) for r in runs})) for k in ("features", "fid_features"))
    notes = _apart(runs)[1]
    for note in notes:
        warnings.warn(note, stacklevel=2)
    conds = _conditions(runs)
    settings = _settings(runs, conds)
    series = _series(conds)
    records = [r for run in runs for r in run["records"]]
    fig_settings = _settings(runs, conds, pooled_as=CI_NOTE)
    figs, corr, which, dropped = _draw(runs, out, conds, series, fig_settings, fs, ffs, iteration)
    lines = (_head_lines(runs, settings, fs, ffs, figs, notes, dropped) + _correlation_lines(corr, which)
             + _arm_test_lines(conds, out) + _metric_lines(conds, records, fs, ffs) + _pool_lines(conds)
             + _threshold_lines(series))
    lines += [""] + [f"![Fig. {paper}]({fn})" for fn, paper, _ in figs] + [""]
    path = os.path.join(out, "report.md")
    save_text(path, "\n".join(lines))
    return path
