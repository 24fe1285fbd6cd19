"""report.md's text: the settings line, the table of figures, correlations, arm tests, metrics, the
pool's sources and the threshold filter's passes."""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ...io import save_text
from ..columns import CORRELATIONS, shown
from .figures import CI_NOTE
from .stats import arm_tests


def _settings(runs, conds, pooled_as: str = "mean ± sd") -> str:
    """One line of the runs' settings; ``pooled_as`` says what the numbers over seeds are (the figures: the
    mean with a 95 % t-interval of the mean)."""
    c = {k: ",".join(sorted({r["config"][k] for r in runs})) for k in ("dataset", "paradigm", "unet")}
    ns = sorted({r["config"]["n"] for r in runs})
    alphas = sorted({r["config"]["alpha"] for r in runs})
    seeds = sorted({r["config"]["seed"] for r in runs})
    pooled = any(len(c_["seeds"]) > 1 for c_ in conds.values())  # replicates averaged somewhere
    return (f"{c['dataset']}, {c['paradigm']}, n={','.join(map(str, ns))}, UNet {c['unet']}, "
            + (f"seeds {','.join(map(str, seeds))}" + (f" ({pooled_as})" if pooled else " (not pooled: one run each)")
               if len(seeds) > 1 else f"seed {seeds[0]}")
            + (f", alpha={','.join(f'{a:g}' for a in alphas)}" if any("threshold" in r["config"]["selectors"]
                                                                       for r in runs) else ""))


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4g}"


def _head_lines(runs, settings, fs, ffs, figs, notes=(), dropped=()) -> list:
    """The title, what the features are, the runs (and which were not pooled), and the table of figures."""
    cfg = runs[0]["config"]
    seeds = sorted({r["config"]["seed"] for r in runs})
    lines = [f"# fastsel loop report: {settings}", "",
             f"GS, entropy and MNND are computed on **{fs}** features; FID on **{ffs}** features"
             + ("" if (cfg["features"], cfg["fid_features"]) == ("dinov2-s", "inception")
                else " (the paper: DINOv2 for GS/entropy, Inception for FID -- numbers here are not comparable "
                     "with the paper's)") + ". The copy fraction is the share of samples whose nearest training "
                     "image (pixels) is closer than a third of the second nearest; GS/held-out divides GS by the "
                     "mean 1-NN distance from held-out real images to the same training set.", "",
             f"Runs: {', '.join(r['label'] or os.path.basename(os.path.normpath(r['dir'])) for r in runs)}; "
             f"{cfg['iterations']} iterations, seeds {', '.join(map(str, seeds))}"
             + (f", threshold: decay {cfg.get('decay', 'empty-pass')}, order {cfg.get('order', 'index')}"
                if any("threshold" in r["config"]["selectors"] for r in runs) else "") + ".", ""]
    lines += [x for note in notes for x in (f"**Not pooled:** {note}.", "")]
    lines += ["## Figures", "", f"Figures over seeds: {CI_NOTE}.", "",
              "| file | paper figure | what it shows |", "|---|---|---|"]
    lines += [f"| [{fn}]({fn}) | Fig. {paper} | {what} |" for fn, paper, what in figs]
    return lines + (["", "Left out of the figures: " + "; ".join(dropped) + "."] if dropped else [])


# the correlation table's rows: (x, y) as named there, one per panel of CORRELATIONS
CORR_PAIRS = [(p.x_name, p.y_name) for _, _, _, panels in CORRELATIONS.values() for p in panels]


def _correlation_lines(corr, which) -> list:
    lines = ["", "## Correlations (Fig. 2b, 2c)", "",
             f"Pearson r over {which}, one point per run, arm and iteration (iteration 0 once per run); "
             "two-sided p (scipy). These points are not independent (a run's iterations follow one another).",
             "", "| x | y | r | p | points |", "|---|---|---|---|---|"]
    for (xl, yl), (r_, p_, k_, _) in zip(CORR_PAIRS, corr):
        lines.append(f"| {xl} | {yl} | {_fmt(r_)} | {_fmt(p_)} | {k_} |")
    lines += ["", "One point per run and arm -- the mean of x and of log y over its iterations (the shared "
              "iteration 0 counted in each arm) -- with a 95 % percentile bootstrap interval over runs "
              "(10,000 resamples of whole runs, seed 0):", "",
              "| x | y | r of run means | 95 % bootstrap CI | points | runs |", "|---|---|---|---|---|---|"]
    for (xl, yl), (_, _, _, rc) in zip(CORR_PAIRS, corr):
        ci = f"[{rc['ci95'][0]:.3g}, {rc['ci95'][1]:.3g}]" if rc["ci95"] else ""
        lines.append(f"| {xl} | {yl} | {_fmt(rc['r'])} | {ci} | {rc['points']} | {rc['runs']} |")
    return lines


def _arm_test_lines(conds, out) -> list:
    """The arms against none at the last iteration (also written to arm_tests.json)."""
    tests = arm_tests(conds)
    if not tests:
        return []
    lines = ["", "## Arms against none (last iteration)", "",
             "Mean ± sd over seeds; difference = arm − none with its 95 % Welch interval and Welch's "
             "two-sided p-value (scipy; blank with fewer than two seeds).", "",
             "| condition | it | metric | arm | none | arm − none | 95 % CI | p |",
             "|---|---|---|---|---|---|---|---|"]

    def ms(m, sd):
        return _fmt(m) + (f" ± {sd:.2g}" if sd is not None else "")
    for t_ in tests:
        ci = f"[{t_['ci95'][0]:.3g}, {t_['ci95'][1]:.3g}]" if t_["ci95"] else ""
        lines.append(f"| {t_['condition']} | {t_['iteration']} | {t_['metric']} | "
                     f"{ms(t_['mean_arm'], t_['sd_arm'])} | {ms(t_['mean_none'], t_['sd_none'])} | "
                     f"{t_['diff']:+.3g} | {ci} | {_fmt(t_['p'])} |")
    save_text(os.path.join(out, "arm_tests.json"), json.dumps(tests, indent=1))
    return lines


def _metric_lines(conds, records, fs, ffs) -> list:
    """Every report column, mean over seeds, per condition and iteration."""
    cols = shown(records, "report")
    lines = ["", "## Metrics (mean over seeds)", "",
             "| run / arm | iteration | seeds | " + " | ".join(c.report.format(fs=fs, ffs=ffs) for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for name, c in conds.items():
        its = sorted({r["iteration"] for _, rs in c["seeds"].values() for r in rs})
        for t_ in its:
            recs = [r for _, rs in c["seeds"].values() for r in rs if r["iteration"] == t_]
            vals = []
            for col in cols:
                v = [col.value(r) for r in recs]
                v = [x for x in v if x is not None and math.isfinite(x)]
                vals.append(_fmt(float(np.mean(v))) if v else "")
            lines.append(f"| {name} | {t_} | {len(recs)} | " + " | ".join(vals) + " |")
    return lines


def _pool_lines(conds) -> list:
    """Per source of the candidate pool: spread, distance to the rest, kept share (mean over seeds)."""
    pools = [(name, x) for name, c in conds.items() for _, rs in c["seeds"].values() for x in rs
             if x.get("pool_sources")]
    if not pools:
        return []
    lines = ["", "## The candidate pool's sources (selection features)", "",
             "Per source of the pool a selector chose from: its spread (mean 1-NN distance within the source) "
             "and its distance to the other sources (mean 1-NN distance to the rest of the pool), and the "
             "share of it the selector kept. Mean over seeds.", "",
             "| run / arm | iteration | source | rows | within-source 1-NN | to other sources 1-NN | kept share |",
             "|---|---|---|---|---|---|---|"]
    agg = {}
    for name, x in pools:
        for s_ in x["pool_sources"]:
            agg.setdefault((name, x["iteration"], s_["source"]), []).append(s_)
    for (name, t_, src), ss in agg.items():
        def mean(k):
            v = [s[k] for s in ss if s.get(k) is not None]
            return _fmt(float(np.mean(v))) if v else ""
        lines.append(f"| {name} | {t_} | {'real' if src == 0 else f'generation {src}'} | {mean('rows')} | "
                     f"{mean('within_nn')} | {mean('to_others_nn')} | {mean('kept_share')} |")
    return lines


def _threshold_lines(series) -> list:
    th = [(name, x) for name, (_, rs) in series.items() for x in rs if x.get("selection")]
    if not th:
        return []
    lines = ["", "Threshold filter per iteration (tau0 -> tau_end, decays, passes, filled, order):", "",
             "| run / arm | iteration | tau0 | tau_end | decays | passes | filled | order |",
             "|---|---|---|---|---|---|---|---|"]
    for name, x in th:
        s_ = x["selection"]
        lines.append(f"| {name} | {x['iteration']} | {_fmt(s_.get('tau0'))} | {_fmt(s_.get('tau_end'))} | "
                     f"{s_.get('decays')} | {s_.get('passes')} | {s_.get('n_filled')} | {s_.get('order')} |")
    return lines
