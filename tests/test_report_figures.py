"""Issue 39 (6), the report's figures: arms told apart by colour in the entropy-vs-GS scatter, nothing
drawn under something else (sizes side by side, real points over generated ones), the 95 % t-interval
of the mean over seeds instead of +-sd, constant panels left out and said, and the entropy-GS
correlation with one point per run and a bootstrap interval over runs. Runs are the committed records
(metrics.json only) and a tiny run folder written here."""
import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from fastsel.loop import report as R  # noqa: E402
from fastsel.loop.report import figures as F, stats as S  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPRO = os.path.join(ROOT, "docs", "reproduction", "records")


def _runs(exp, subs):
    return R.load_runs([os.path.join(REPRO, exp, s) for s in subs])


@pytest.fixture
def figs(monkeypatch):
    out = []
    monkeypatch.setattr(F, "_save", lambda fig, path: out.append(fig))
    return out


def test_entropy_scatter_colours_the_arms_apart(figs, tmp_path):
    """The accumulate runs have one size (n = 16): colouring by size drew every arm alike."""
    pts = R.distinct_points(_runs("repro-accumulate", ["seed0", "seed1", "seed2"]))
    F._scatter(pts, [("entropy_fixed", "entropy", "gs", "log GS")], str(tmp_path / "e.png"), "t")
    by_arm = {}
    for coll in figs[0].axes[0].collections:
        offsets = coll.get_offsets()
        for (x, y), rgba in zip(offsets, np.broadcast_to(coll.get_facecolors(), (len(offsets), 4))):
            rec = next(r for r in pts if r["entropy_fixed"] == x and math.isclose(math.log(r["gs"]), y))
            key = "shared" if rec["iteration"] == 0 else rec["arm"]
            by_arm.setdefault(key, set()).add(tuple(np.round(rgba[:3], 3)))
    assert set(by_arm) == {"shared", "accumulate-none", "accumulate-greedy", "accumulate-threshold"}
    assert all(len(c) == 1 for c in by_arm.values())  # one colour per arm ...
    assert len({next(iter(c)) for c in by_arm.values()}) == 4  # ... and no two alike
    labels = [t.get_text() for t in figs[0].legends[0].get_texts()]
    assert {"none", "greedy", "threshold"} <= set(labels)


def test_run_correlation_is_one_point_per_run_with_a_bootstrap_interval():
    subs = [f"n{n}-seed{s}" for s in range(3) for n in (8, 32, 128, 512)]
    pts = R.distinct_points(_runs("repro-replace", subs))
    rc = R.run_correlation(pts, "entropy_fixed", "gs")
    assert rc["points"] == rc["runs"] == 9  # n = 8 has no entropy at m = 16
    means = {}
    for r in pts:
        if r.get("entropy_fixed") is not None:
            means.setdefault(r["_run"], []).append((r["entropy_fixed"], math.log(r["gs"])))
    a = np.array([np.mean(v, axis=0) for v in means.values()])
    assert rc["r"] == pytest.approx(np.corrcoef(a[:, 0], a[:, 1])[0, 1])
    lo, hi = rc["ci95"]
    assert -1 <= lo < rc["r"] < hi <= 1 and rc["boot"] > 9000
    assert R.run_correlation(pts, "entropy_fixed", "gs") == rc  # a fixed seed: the same interval each time
    last = R.run_correlation(pts, "entropy_fixed", "gs", how="last")
    assert last["points"] == 9 and last["r"] != rc["r"]


def _cond(arm, n, values, paradigm="accumulate"):
    seeds = {s: (None, [{"iteration": t, "arm": arm, **{k: v[s][t] for k, v in values.items()}}
                        for t in range(len(next(iter(values.values()))[s]))]) for s in range(2)}
    return {"arm": arm, "n": n, "paradigm": paradigm, "alpha": None, "seeds": seeds}


def test_band_is_the_t_interval_of_the_mean_not_the_sd():
    rs = {s: (None, [{"iteration": 0, "gs": v}]) for s, v in enumerate([1.0, 2.0, 3.0])}
    its, mean, half, k = S._band(rs, "gs")
    from scipy import stats
    assert its == [0] and k == 3 and mean[0] == 2.0
    assert half[0] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))  # sd is 1.0


def test_constant_panels_are_dropped_and_said(figs, tmp_path):
    conds = {f"accumulate-{a}": _cond(f"accumulate-{a}", 16, {"copy_fraction": [[0.0, 0.0], [0.0, 0.0]],
                                                              "gs": [[1.0, 2.0 + i], [1.5, 2.5]]})
             for i, a in enumerate(("none", "greedy"))}
    dropped = []
    assert F._curves(conds, [("copy_fraction", "copies"), ("gs", "GS")], str(tmp_path / "m.png"), "t", "s", dropped)
    assert len(figs[0].axes) == 1 and figs[0].axes[0].get_ylabel() == "GS"
    assert dropped == ["m.png: copies: 0 in every run, arm and iteration (panel dropped)"]
    assert "panel dropped" in figs[0].get_suptitle()
    # every panel constant: no figure, and it is said
    dropped.clear()
    assert not F._curves(conds, [("copy_fraction", "copies")], str(tmp_path / "c.png"), "t", "s", dropped)
    assert len(dropped) == 1


def test_sizes_with_equal_curves_are_drawn_side_by_side(figs, tmp_path):
    """n = 128 and 512 both copy nothing: their lines lay one on the other."""
    zero = {"copy_fraction": [[0.0, 0.0], [0.0, 0.0]]}
    conds = {f"n{n} replace-none": _cond("replace-none", n, zero, "replace") for n in (128, 512)}
    conds["n8 replace-none"] = _cond("replace-none", 8, {"copy_fraction": [[0.7, 0.4], [0.6, 0.3]]}, "replace")
    assert F._curves(conds, [("copy_fraction", "copies")], str(tmp_path / "m.png"), "t", "s")
    xs = {tuple(ln.get_xdata()) for ln in figs[0].axes[0].get_lines() if ln.get_xdata().size}
    assert len(xs) == 3


def test_one_source_share_panels_are_dropped(figs, tmp_path):
    """Replace trains on the newest generation only: its share bars are one colour, full height."""
    rep = {"shares": [[[1.0], [0.0, 1.0]], [[1.0], [0.0, 1.0]]]}
    acc = {"shares": [[[1.0], [0.5, 0.5]], [[1.0], [0.6, 0.4]]]}
    dropped = []
    assert not F._shares({"replace-none": _cond("replace-none", 8, rep, "replace")}, str(tmp_path / "s.png"), "s",
                         dropped)
    assert len(dropped) == 1 and "replace-none" in dropped[0]
    dropped.clear()
    assert F._shares({"replace-none": _cond("replace-none", 8, rep, "replace"),
                      "accumulate-none": _cond("accumulate-none", 8, acc)}, str(tmp_path / "s.png"), "s", dropped)
    assert len(figs[-1].axes[0].patches) > 0 and "accumulate-none" in figs[-1].axes[0].get_title()


def test_svd_draws_the_real_points_over_the_generated(figs, tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "run"
    (d / "real").mkdir(parents=True)
    np.save(d / "real" / "feats.npy", rng.normal(size=(16, 5)).astype(np.float32))
    for t in range(2):
        p = d / ("shared/iter_000" if t == 0 else "accumulate-none/iter_001")
        p.mkdir(parents=True)
        np.save(p / "feats.npy", rng.normal(size=(200, 5)).astype(np.float32))
    run = {"dir": str(d), "label": "", "config": {}}
    rs = [{"arm": "accumulate-none", "iteration": t} for t in range(2)]
    assert F._svd(run, rs, str(tmp_path / "svd.png"), "pixels")
    for ax in figs[0].axes:
        real, gen = (next(c for c in ax.collections if c.get_label().startswith(w)) for w in ("real", "generated"))
        assert real.get_zorder() > gen.get_zorder() and len(real.get_offsets()) == 16


def test_report_says_what_the_figures_draw_over_seeds(tmp_path):
    subs = [f"n{n}-seed{s}" for s in range(3) for n in (8, 32, 128, 512)]
    out = tmp_path / "o"
    R.write_report([os.path.join(REPRO, "repro-replace", s) for s in subs], str(out), quiet=True)
    md = (out / "report.md").read_text()
    assert "95 % t-interval of the mean" in md and not (out / "shares.png").exists()
    assert "shares.png: n8 replace-none" in md  # the dropped panels are named
    row = next(ln for ln in md.splitlines() if ln.startswith("| KL entropy at m | log GS | 0.96"))
    assert row.rstrip(" |").endswith("| 9 | 9")
