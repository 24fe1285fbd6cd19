"""``fastsel loop``: the self-consuming DDPM loop; ``fastsel report``: its plots and report.md."""
from __future__ import annotations

import json
import os

import click

from .. import _dist, data, features
from .._runtime import keep_freed_memory
from ..errors import DataError
from ..loop import sweep
from ..loop import train as TR
from ..loop import columns
from ..loop.columns import shown
from ..loop.config import (BETA_SCHEDULES, LR_SCHEDULES, MIXED_PRECISIONS, OPTIMIZERS, PARADIGMS, PRESETS, SAMPLERS,
                           UNET_CHOICES, VANILLAS, LoopConfig, check_device, check_selectors,
                           device_problem, load_config, preset)
from ..loop.logger import LOGGERS
from ..loop.report import space, write_analysis, write_report
from ..loop.run import run_loop
from ..loop.seed_noise import seed_sd
from ..ops._inputs import SEED_MAX
from ..selectors import declared, selector_names, takers
from ._common import ImageSide, RegistryChoice, emit_json, handle_errors
from ._options import SelectorOptionsCommand, given_options


def _selectors(s):
    try:
        return check_selectors((x.strip() for x in s.split(",") if x.strip()), "--selector")
    except DataError as e:
        raise click.BadParameter(str(e)) from None


def _device_option(ctx, param, value):
    if value is not None:
        try:
            check_device(value, "--device")
        except DataError as e:
            raise click.BadParameter(str(e).split(": ", 1)[1]) from None
    return value


# options that --resume may take besides the run directory (the rest is the run's saved configuration)
RESUME_OPTIONS = {"dataset", "resume", "run_dir", "download", "dry_run", "as_json", "device", "logger", "jobs"}


@click.command("loop", cls=SelectorOptionsCommand, after="entropy_m", sweep=True,
               refused_by="A run with no arm that takes it")
@click.argument("dataset", required=False)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="cpu", show_default=True,
              help="cpu: the CPU main job (16 digits at 16x16 in the memorization regime, LeNet features, 2 "
                   "iterations, < 10 min); cpu-n512: the previous main job (512 digits, no memorization); smoke: "
                   "a tiny pixel-space check; paper: Appendix D (GPU).")
@click.option("--paradigm", type=click.Choice(PARADIGMS), default=None,
              help="replace: train on the last generation; accumulate: subsample real + all generations "
                   "(default accumulate).")
@click.option("--selector", "selectors", default=None,
              help="Comma list of arms: none (vanilla), all (replace: train on every generated image, the paper's "
                   "Fig. 13 ablation) or registered selectors: " + ", ".join(selector_names()) + ".")
@click.option("--vanilla", type=click.Choice(VANILLAS), default=None,
              help="The none arm under accumulate: uniform subsample, or an equal share of every source.")
@click.option("-n", "--n", "n", default=None,
              help="Training-set size; a comma list (500,1000,2000) runs one sub-run per size.")
@click.option("--pool-factor", type=click.IntRange(min=1), default=None,
              help="replace + a selector: generate this many times n and keep n.")
@click.option("--iterations", type=click.IntRange(min=1), default=None)
@click.option("--features", type=RegistryChoice(features.names), default=None,
              help="Selection/GS/entropy features (paper: dinov2-s; MNIST on a CPU: lenet).")
@click.option("--fid-features", type=RegistryChoice(features.names), default=None,
              help="Features of the FID (paper: inception).")
@click.option("--image-size", type=ImageSide(min=4), default=None, help="Resize the real images to this side.")
@click.option("--eval-samples", type=click.IntRange(min=0), default=None,
              help="Generate at least this many samples per model: measured (copies, GS), never trained on.")
@click.option("--holdout", type=click.IntRange(min=0), default=None,
              help="Held-out real images (never trained on), the reference of the normalised GS (default 256).")
@click.option("--entropy-m", type=click.IntRange(min=2), default=None,
              help="Subset size of the size-comparable KL entropy (entropy_fixed; default 16).")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None,
              help="Seed of the run (real subset, training, sampling, selection), in [0, 2**32-1].")
@click.option("--seeds", default=None,
              help="A comma list of seeds in [0, 2**32-1] (0,1,2): one sub-run per seed (replicates; the report draws mean ± sd "
                   "and tests each arm against none).")
@click.option("--unet", type=click.Choice(UNET_CHOICES), default=None,
              help="paper: Appendix D; cNN: the released script's (c, c, 2c, 2c, 4c, 4c) with attention.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training length in epochs over each training set (replaces a preset's step count).")
@click.option("--train-steps", type=click.IntRange(min=1), default=None, help="Fixed step count (overrides --epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None)
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None)
@click.option("--warmup-steps", type=click.IntRange(min=0), default=None)
@click.option("--ema/--no-ema", default=None)
@click.option("--mixed-precision", type=click.Choice(MIXED_PRECISIONS), default=None)
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None)
@click.option("--beta-schedule", type=click.Choice(BETA_SCHEDULES), default=None,
              help="Noise schedule of training and sampling (default linear, the DDPM paper's).")
@click.option("--sample-steps", type=click.IntRange(1, 1000), default=None)
@click.option("--sample-batch", type=click.IntRange(min=1), default=None)
@click.option("--cfg-scale", type=click.FloatRange(min=0), default=None,
              help="> 0: class-conditional UNet with label dropout, sampled with this guidance scale.")
@click.option("--ckpt-every", type=click.IntRange(min=1), default=None, help="Training checkpoint interval (steps).")
@click.option("--device", default=None, callback=_device_option,
              help="cpu, cuda, cuda:K (default: the preset's; cpu for smoke). With --resume: run the saved "
                   "configuration on this device.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Default runs/<dataset>-<preset>-<paradigm>-seed<seed>.")
@click.option("--resume", "resume", type=click.Path(exists=True, file_okay=False), default=None,
              help="Continue the run in this directory with its saved configuration.")
@click.option("--download", is_flag=True, help="Fetch a missing dataset from its official source (checksummed).")
@click.option("--logger", type=click.Choice(LOGGERS), default="none", show_default=True,
              help="Also log losses, metrics and sample grids to TensorBoard (RUN_DIR/tensorboard) or W&B.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sweeps (--seeds, several -n or --alpha): run up to this many sub-runs at once, each in its own "
                   "process with cores // jobs threads and its progress in SUB-RUN/progress.log. A sub-run's numbers "
                   "equal those of running it alone with that thread count. Also with --resume.")
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration; touch no data, train nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: one JSON object.")
@handle_errors
def loop(dataset, resume, run_dir, download, logger, dry_run, as_json, jobs, **opts):
    """Train a DDPM on DATASET, sample, select the next training set, repeat (Shi et al. 2025).

    \b
    Examples:
      fastsel loop mnist                                 # the cpu preset: CPU minutes, offline
      fastsel loop cifar10 --preset paper --selector none,greedy,threshold
      fastsel loop mnist --resume runs/mnist-cpu-accumulate-seed0
      fastsel loop cifar10 --preset paper --dry-run --json
    """
    keep_freed_memory()
    if resume:
        ctx = click.get_current_context()
        given = [p.opts[0] for p in ctx.command.params if p.name not in RESUME_OPTIONS
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--resume continues with the run's saved configuration; {', '.join(given)} "
                                   f"would be ignored (drop {'them' if len(given) > 1 else 'it'})")
        if sweep.is_sweep(resume):
            return _resume_sweep(resume, download, opts.get("device"), dry_run, logger, jobs)
        cfg = load_config(resume)
        run_dir = resume
        if opts.get("device"):
            cfg.device = opts["device"]
        elif not dry_run and device_problem(cfg.device):
            raise DataError(f"{os.path.join(resume, 'config.json')}: {device_problem(cfg.device)}; resume with "
                            "--device cpu")
    else:
        if not dataset:
            raise click.UsageError(f"give a DATASET ({', '.join(data.names())}, a folder, a .npy/.npz) or --resume")
        base = preset(opts.pop("preset"), dataset)
        ns = _num_list(opts.pop("n"), int, "-n", lambda v: v >= 2, ">= 2")
        # the selectors' options (their declarations' flags); a sweep option's flag is a comma list
        given = given_options({p.name: opts.pop(p.name) for p in click.get_current_context().command.option_params()})
        sweeps = {}
        for k, v in list(given.items()):
            o = declared(k)[0]
            if o.sweep:
                sweeps[k] = _num_list(given.pop(k), o.type, o.flag, lambda x, o=o: o.problem(x) is None,
                                      o.describe())
        for k in [k for k in sweeps if k != "alpha"]:  # the loop's sweeps: n, the threshold's alpha, seeds
            if len(sweeps[k]) > 1:
                raise click.UsageError(f"{declared(k)[0].flag}: the loop sweeps -n, --alpha and --seeds; give one "
                                       "value of this option per run")
            given[k] = sweeps.pop(k)[0]  # one value: an option like any other, never ignored
        alphas = sweeps.get("alpha")
        seeds = _num_list(opts.pop("seeds"), int, "--seeds", lambda v: 0 <= v <= SEED_MAX, "in [0, 2**32-1]")
        if seeds and opts.get("seed") is not None:
            raise click.UsageError("give --seed or --seeds, not both")
        if seeds:
            opts["seed"] = seeds[0]
        sel = opts.pop("selectors")
        if sel is not None:
            base["selectors"] = _selectors(sel)
        if opts.get("epochs") is not None and opts.get("train_steps") is None:
            base["train_steps"] = None  # --epochs given: it sets the training length, not the preset's step count
        for k, v in opts.items():
            if v is not None:
                base[k] = v
        if not dry_run and device_problem(base.get("device", "cpu")):
            raise click.UsageError(device_problem(base.get("device", "cpu")) + " (use --device cpu)")
        cfg = LoopConfig(dataset=dataset, **base)
        for k in [*given, *sweeps]:  # an option no arm of this run takes: one line, not ignored
            if not set(takers(k)) & set(cfg.selectors):
                raise click.UsageError(f"{declared(k)[0].flag} applies to an arm of {' or '.join(takers(k))}; this "
                                       f"run's arms are {', '.join(cfg.selectors)}")
        for k, v in given.items():
            cfg.set_option(k, v, arms=cfg.selectors)
        cfg.validate("the command line")
        seed_tag = f"seeds{'_'.join(map(str, seeds))}" if len(seeds or []) > 1 else f"seed{cfg.seed}"
        run_dir = run_dir or os.path.join("runs", f"{os.path.basename(dataset.rstrip('/'))}-{cfg.preset}-"
                                                  f"{cfg.paradigm}-{seed_tag}")
        if len(ns or []) > 1 or len(alphas or []) > 1 or len(seeds or []) > 1:
            return _sweep(cfg, run_dir, ns or [cfg.n], alphas or [cfg.option("alpha")], download, dry_run, as_json,
                          seeds or [cfg.seed], logger=logger, jobs=jobs)
        if ns:
            cfg.n = ns[0]
        if alphas:
            cfg.set_option("alpha", alphas[0])
    if dry_run:
        desc = TR.describe(cfg)
        desc["run_dir"] = run_dir
        if as_json:
            emit_json(desc)
        else:
            for k, v in desc.items():
                click.echo(f"{k:22s} {v}")
        return
    _maybe_init_distributed(cfg)
    records = run_loop(cfg, run_dir, download=download, logger=logger)
    if _dist.is_main():
        path = write_report([run_dir], quiet=True)
        click.echo(f"report: {path}")
        _summary(records, cfg)


def _summary(records, cfg, label=""):
    fs, ffs = space(cfg.features), space(cfg.fid_features)
    cols = shown(records, "cli")
    click.echo(f"{label}GS, entropy, MNND on {fs} features; FID on {ffs} features"
               + "".join(f"; {c.cli_note}" for c in cols if c.cli_note))
    click.echo(f"{'arm':24s} {'it':>3s} " + " ".join(f"{c.cli:>{c.width}s}" for c in cols))

    def f(v, w, p=4):
        return f"{v:{w}.{p}g}" if v is not None else " " * (w - 1) + "-"
    for r in sorted(records, key=lambda r: (r["arm"], r["iteration"])):
        click.echo(f"{r['arm']:24s} {r['iteration']:3d} " + " ".join(f(c.value(r), c.width, c.digits) for c in cols))
    last = max((r["iteration"] for r in records), default=0)
    base = next((r for r in records if r["iteration"] == last and r["arm"].endswith("-none")), None)
    if base is not None and last > 0:
        keys = [(c.key, c.cli_vs) for c in columns.COLUMNS if c.cli_vs]  # read live: a registered column
        for r in sorted(records, key=lambda r: r["arm"]):
            if r["iteration"] != last or r is base:
                continue
            sel = r["arm"].split("-", 1)[-1]
            parts = [f"{lab} {r[k]:.3g} vs {base[k]:.3g}" + _noise(cfg, sel, last, k, r[k] - base[k]) for k, lab in keys
                     if r.get(k) is not None and base.get(k) is not None]
            if parts:
                click.echo(f"{label}iteration {last}, {r['arm']} vs {base['arm']}: " + "; ".join(parts))
        click.echo(f"{label}one seed: a difference within about 2 seed sd of 0 is noise (sd of arm - none over 6 "
                   "seeds of this recipe); docs/analysis.md has the pre-registered multi-seed test")


def _noise(cfg, selector, iteration, key, diff):
    """' (+0.21; seed sd 0.08)': the difference beside how much it varies from seed to seed."""
    sd = seed_sd(cfg, selector, iteration, key)
    return f" ({diff:+.3g}" + (f"; seed sd {sd:.2g})" if sd is not None else "; seed sd not recorded for this recipe)")


def _num_list(text, kind, opt, ok, what):
    """A comma list of numbers from an option (None when the option was not given)."""
    if text is None:
        return None
    try:
        vals = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma list of numbers", param_hint=opt) from None
    if not vals or not all(ok(v) for v in vals) or len(set(vals)) != len(vals):
        raise click.BadParameter(f"{text!r}: each value must be {what}, none repeated", param_hint=opt)
    return vals


def _sweep(cfg, run_dir, ns, alphas, download, dry_run, as_json, seeds=None, logger="none", jobs=1):
    """One sub-run per (n, alpha, seed) under run_dir (fastsel.loop.sweep); --dry-run prints them."""
    subs = sweep.plan(cfg, ns, alphas, seeds)
    if dry_run:
        out = {name: dict(TR.describe(c), run_dir=os.path.join(run_dir, name)) for name, c in subs}
        if as_json:
            emit_json({"sweep": out})
        else:
            for name, d in out.items():
                click.echo(f"{name}: n={d['n']} alpha={d['alpha']} seed={d['seed']} steps/iteration={d['steps_per_iteration']} "
                           f"-> {d['run_dir']}")
        return
    sweep.start(run_dir, subs)
    _run_subs(run_dir, subs, download, logger, jobs)


def _resume_sweep(run_dir, download, device=None, dry_run=False, logger="none", jobs=1):
    path = os.path.join(run_dir, sweep.SWEEP_FILE)
    subs = sweep.load(run_dir)
    for name, c in subs:
        if device:
            c.device = device
        elif not dry_run and device_problem(c.device):
            raise DataError(f"{path} ({name}): {device_problem(c.device)}; resume with --device cpu")
    if dry_run:
        for name, c in subs:
            click.echo(f"{name}: {json.dumps(dict(TR.describe(c), run_dir=os.path.join(run_dir, name)))}")
        return
    _run_subs(run_dir, subs, download, logger, jobs)


def _run_subs(run_dir, subs, download, logger="none", jobs=1):
    sweep.run(run_dir, subs, download=download, logger=logger, jobs=jobs,
              done=lambda name, c, recs: _summary(recs, c, label=f"{name}: "),
              note=lambda line: click.echo(line, err=True))
    click.echo(f"report: {write_report([run_dir], quiet=True)}")


def _maybe_init_distributed(cfg):
    """Under torchrun / accelerate launch (WORLD_SIZE > 1): one process group; training runs DDP."""
    cfg.device = _dist.init(cfg.device)[1]


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder of the figures and report.md (default: the first run's report/): new, empty, or one an "
                   "earlier report wrote.")
@click.option("--iteration", type=click.IntRange(min=0), default=None,
              help="Iteration of the nearest-neighbour grid (default: the newest); one the runs have.")
@click.option("--analysis", is_flag=True,
              help="Print the declared analysis of docs/analysis.md instead (primary test first, Holm-adjusted; "
                   "secondaries exploratory; 'interim' until every declared seed is in); with --out, also "
                   "analysis.md and analysis.json there.")
@handle_errors
def report(run_dirs, out, iteration, analysis):
    """Draw the paper's figures from one or more loop runs (sweeps included) into PNGs + report.md.

    
    Example:
      fastsel report runs/mnist-cpu-replace-seed0 runs/mnist-cpu-accumulate-seed0 --out figs/
      fastsel report --analysis docs/analysis/records/accumulate/seed*
    """
    if analysis:
        click.echo(write_analysis(list(run_dirs), out=out, iteration=iteration), nl=False)
        return
    click.echo(write_report(list(run_dirs), out=out, iteration=iteration, quiet=True))  # makes --out once checked
