"""Reading runs (a sweep's sub-runs included; metrics.json checked against the settings it ran with) and
grouping their records into conditions: the runs that differ only in the seed are its replicates."""
from __future__ import annotations

import json
import os
import re

from ...io import DataError
from ..rundir import check_metrics, damaged, read_json
from ..config import FREE_SETTINGS, saved_settings, settings_hash


def load_sweep(run_dir: str) -> list:
    path = os.path.join(run_dir, "sweep.json")
    runs = read_json(run_dir, path).get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, str) and r and os.sep not in r for r in runs):
        raise DataError(f"{path} is damaged (runs {runs!r}): not a list of sub-run names")
    return runs


def load_runs(paths) -> list:
    """[{label, dir, config, records}] for each run, a sweep's sub-runs included."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    runs = []
    for p in paths:
        base = os.path.basename(os.path.normpath(p))
        if os.path.exists(os.path.join(p, "sweep.json")):
            subs = [(name, os.path.join(p, name)) for name in load_sweep(p)]
        else:
            subs = [("", p)]
        for name, d in subs:
            mpath = os.path.join(d, "metrics.json")
            if not os.path.exists(mpath):
                if name:  # a sweep's sub-run that has not finished an iteration yet
                    continue
                raise DataError(f"{d}: no metrics.json (not a fastsel loop run, or no iteration finished yet)")
            m = check_metrics(d, mpath, read_json(d, mpath))
            check_unedited(d, mpath, m)
            label = name if len(paths) == 1 else (f"{base}/{name}" if name else base)
            runs.append({"label": label, "dir": d, "config": m["config"], "records": m["iterations"]})
    runs = [r for r in runs if r["records"]]  # a run whose iteration list is empty adds nothing
    if not runs:
        raise DataError(f"{', '.join(paths)}: no finished iteration to report")
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):  # two folders of the same name (a/seed0, b/seed0): name them by path
        top = os.path.commonpath([os.path.realpath(r["dir"]) for r in runs])
        for r in runs:
            rel = os.path.relpath(os.path.realpath(r["dir"]), top)
            if labels.count(r["label"]) > 1 and rel != ".":
                r["label"] = rel
    return runs


def check_unedited(run_dir: str, mpath: str, m: dict) -> None:
    """The run's settings are the ones its results were computed with: metrics.json's config hashes to the
    config_sha256 written with it, and the run's config.json (where there is one) holds the same settings
    (FREE_SETTINGS aside; settings added since take their defaults) -- a file edited after the run (to pool
    it with other runs, or by mistake) is refused in one line naming what differs. Runs recorded before
    config_sha256 existed are read as they are."""
    h = m.get("config_sha256")
    if h is None:
        return
    if not isinstance(h, str):
        raise damaged(run_dir, mpath, f"config_sha256 {h!r}")
    try:
        now = settings_hash(m["config"])
    except (TypeError, ValueError):
        raise damaged(run_dir, mpath, "its config is not plain JSON") from None
    if now != h:
        raise DataError(f"{mpath}: its config was edited after the run (config_sha256 {h[:12]}... recorded, "
                        f"{now[:12]}... for the config it holds now): put it back -- the report pools runs by the "
                        "settings they ran with")
    cpath = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cpath):
        return
    restore = ("restore it from metrics.json's \"config\", the settings the run used (only "
               f"{', '.join(FREE_SETTINGS)} may differ)")
    try:
        with open(cpath, encoding="utf-8") as f:
            c = json.load(f)
        if not isinstance(c, dict):
            raise ValueError(f"a JSON {type(c).__name__}")
        c, ran = saved_settings(c), saved_settings(m["config"])
    except (OSError, TypeError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise DataError(f"{cpath}: not readable JSON settings ({str(e).splitlines()[0][:80]}): {restore}") from None
    diff = sorted(k for k in set(c) | set(ran) if c.get(k) != ran.get(k))
    if diff:
        shown = ", ".join(f"{k} {ran.get(k)!r} -> {c.get(k)!r}" for k in diff[:4])
        raise DataError(f"{cpath}: edited after the run: {', '.join(diff)} differ{'s' if len(diff) == 1 else ''} from the settings its results were "
                        f"computed with (metrics.json, config_sha256 {h[:12]}...: {shown}); {restore}")


def _selector(arm: str) -> str:
    return arm.split("-", 1)[1] if "-" in arm else arm


def _prefix(run) -> str:
    """The run's label without its seed part: sub-runs that differ only in the seed are replicates."""
    return re.sub(r"(^|[-/])seed-?\d+$", "", run["label"]).rstrip("-/")


FIRST = ("dataset", "paradigm", "n", "alpha", "features", "fid_features", "unet", "preset", "iterations")


def _setup(run) -> str:
    """The run's configuration but its seed: runs are seeds of one condition only when these agree."""
    return json.dumps({k: v for k, v in run["config"].items() if k != "seed"}, sort_keys=True)


def _show(v) -> str:
    return v if isinstance(v, str) else ",".join(map(_show, v)) if isinstance(v, list) else json.dumps(v)


def _differing(cfgs) -> list:
    """The settings but the seed whose values differ between the configurations, FIRST first."""
    keys = sorted(set().union(*cfgs), key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))
    return [k for k in keys if k != "seed" and len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]


def _apart(runs) -> tuple:
    """({run dir: its condition's name before the arm}, [notes]): the label without its seed part; where
    runs of one such name differ in more than the seed, each setup is named by the fewest settings that
    tell them apart ("[n=32]"), with a note -- they are never pooled as seeds of one condition."""
    groups = {}
    for run in runs:
        groups.setdefault(_prefix(run), {}).setdefault(_setup(run), []).append(run)
    names, notes = {}, []
    for prefix, setups in groups.items():
        cfgs = [g[0]["config"] for g in setups.values()]
        diff = _differing(cfgs) if len(cfgs) > 1 else []
        keys = next((diff[:i] for i in range(1, len(diff))
                     if len({tuple(_show(c.get(k)) for k in diff[:i]) for c in cfgs}) == len(cfgs)), diff)
        tags = ["[" + ", ".join(f"{k}={_show(c.get(k))}" for k in keys) + "]" for c in cfgs]
        for g, tag in zip(setups.values(), tags):
            names.update({run["dir"]: f"{prefix} {tag}".strip() if keys else prefix for run in g})
        if diff:
            labels = [r["label"] or r["dir"] for g in setups.values() for r in g]
            said = "; ".join(f"{k} " + " vs ".join(_show(c.get(k)) for c in cfgs) for k in diff[:3])
            more = f"; {len(diff) - 3} more settings" if len(diff) > 3 else ""
            notes.append(f"runs {', '.join(labels)} differ in more than the seed ({said}{more}): not pooled as "
                         f"seeds, reported as separate conditions {', '.join(tags)}")
    return names, notes


def _conditions(runs) -> dict:
    """name -> {"n", "alpha", "arm", "seeds": {seed: (run, records sorted by iteration)}}: one entry per
    (run without its seed, arm); the runs that differ only in the seed are the replicates (runs whose
    configurations differ otherwise are separate conditions: _apart)."""
    out = {}
    names = _apart(runs)[0]
    for run in runs:
        arms = {}
        for r in sorted(run["records"], key=lambda r: (r["arm"], r["iteration"])):
            arms.setdefault(r["arm"], []).append(r)
        for arm, rs in arms.items():
            name = f"{names[run['dir']]} {arm}".strip()
            c = out.setdefault(name, {"n": run["config"]["n"], "alpha": run["config"].get("alpha"), "arm": arm,
                                      "paradigm": run["config"]["paradigm"], "seeds": {}})
            seed = run["config"]["seed"]
            if seed in c["seeds"] and c["seeds"][seed][0]["dir"] != run["dir"]:  # never drop a run silently
                raise DataError(f"{c['seeds'][seed][0]['dir']} and {run['dir']} are the same condition ({name}) "
                                f"with the same seed {seed}: report them separately, or give them distinct names")
            c["seeds"][seed] = (run, rs)
    return out


def _series(conds) -> dict:
    """name -> (run, records) for one replicate per condition (the lowest seed): grids and projections."""
    return {name: c["seeds"][min(c["seeds"])] for name, c in conds.items()}
