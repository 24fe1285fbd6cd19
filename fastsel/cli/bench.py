"""``fastsel bench [select|nn|threshold|sets|gpu|loop|embed|distributed|curate|compat|contention|prune|scaling|tau|frontier]``:
every benchmark, one entry point (the code: fastsel/benchmarks/, one module each; bench/README.md
shows what each prints). ``fastsel bench`` alone is ``fastsel bench select``."""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
from types import SimpleNamespace

import click
import torch

from .. import features
from ..errors import FastselError
from ..loop.config import UNET_CHOICES, LoopConfig
from ._common import DEVICE, CommaList, FiniteFloatRange, ImageSide, RegistryChoice, check_memory, handle_errors

_OUT = "bench/results"
COUNT = click.IntRange(min=1)  # sizes, dimensions, picks, repeats: at least one
POOLS = ("gauss", "clustered")


def _select(full, backends, out_dir, only=None):
    from ..benchmarks import select as B  # start-up: fastsel --help need not load the benchmarks

    def log(r):
        click.echo(f"{r.op:9s} {r.impl:30s} {r.dtype:8s} N={r.N:<7d} d={r.d:<4d} n={r.n:<5d} "
                   f"{r.seconds:9.3f}s  x_plain={r.vs_plain:7.2f}  x_floor={r.vs_floor:6.2f}", err=True)
    grid = B.FULL if full else B.QUICK
    if only is not None:
        grid = {k: (v if k == only else []) for k, v in grid.items()}
    res = B.run(grid, backends, out_dir, log)
    click.echo(B.markdown(res))


def _gpu(out, quick):
    if not torch.cuda.is_available():
        raise click.UsageError("the GPU benchmark needs a CUDA device; none is visible")
    from ..benchmarks import gpu  # start-up: fastsel --help need not load the benchmarks
    raise SystemExit(gpu.run(SimpleNamespace(out=out, quick=quick)))


_full = click.option("--full", is_flag=True, help="The larger grid (minutes); default: the quick grid.")
_backend = click.option("--backend", "backends", multiple=True, type=click.Choice(["cpp", "torch"]),
                        default=("cpp", "torch"), show_default=True)
_outdir = click.option("--out-dir", default=_OUT, show_default=True, type=click.Path(file_okay=False))


@click.group("bench", invoke_without_command=True)
@_full
@_backend
@_outdir
@click.option("--gpu", is_flag=True, help="Same as `fastsel bench gpu` (--full: the issue's sizes).")
@click.pass_context
@handle_errors
def bench(ctx, full, backends, out_dir, gpu):
    """Benchmarks, each beside its baselines and hardware floor in the same run. Without a
    subcommand: the selector benchmark (greedy, threshold, nn, sets; writes bench_select.json/.md)."""
    if ctx.invoked_subcommand is not None:
        return
    if gpu:
        _gpu(out_dir, not full)
    _select(full, backends, out_dir)


def _grid_command(name, only, doc):
    @bench.command(name, help=doc)
    @_full
    @_backend
    @_outdir
    @handle_errors
    def cmd(full, backends, out_dir):
        _select(full, backends, out_dir, only)
    return cmd


_grid_command("select", None, "The selector benchmark: greedy (anchors, clustered pool), threshold, nn, sets.")
_grid_command("nn", "nn", "Exact k-NN against plain PyTorch and faiss (the select grid's nn rows).")
_grid_command("threshold", "threshold", "Threshold filter modes against the authors' loop and greedy.")
_grid_command("sets", "sets", "Batched sets against torch-quickfps and torch-fps (quickfps's grid, point clouds).")


@bench.command("gpu")
@click.option("--out", default=_OUT, show_default=True, type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="Small sizes (a smoke run).")
@handle_errors
def gpu_cmd(out, quick):
    """The CUDA kernels against plain PyTorch, the authors' loop, one-block FPS and the copy floor."""
    _gpu(out, quick)


def _run(module, **kw):
    mod = importlib.import_module(f"fastsel.benchmarks.{module}")
    return mod.run(SimpleNamespace(**kw))


@bench.command("loop")
@click.option("--unet", type=click.Choice(UNET_CHOICES), default="tiny", show_default=True)
@click.option("--size", type=ImageSide(min=4), default=32, show_default=True,
              help="Side of the random images (>= 4, as `fastsel loop --image-size`).")
@click.option("--channels", type=COUNT, default=3, show_default=True)
@click.option("--batch-size", type=COUNT, default=32, show_default=True)
@click.option("--steps", type=COUNT, default=30, show_default=True, help="Training steps timed per loop.")
@click.option("--sample-count", type=COUNT, default=64, show_default=True)
@click.option("--sample-steps", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="DDPM steps for both samplers (at most the scheduler's 1,000 training steps).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default="no", show_default=True)
@click.option("--repeats", type=COUNT, default=3, show_default=True, help="Alternating repeats; the best of each.")
@click.option("--sweep", "sweep_steps", type=click.IntRange(min=1), default=None,
              help="Instead: time a 2-seed `fastsel loop mnist` sweep (cpu preset, this many training steps) with "
                   "--jobs 1 (sub-runs one after another, every thread) and --jobs 2 (side by side).")
@click.option("--out-dir", default=_OUT, show_default=True)
@handle_errors
def loop_cmd(**kw):
    """Loop training and sampling throughput against bare diffusers (or, with --sweep, a sweep's wall
    time with and without --jobs)."""
    image = kw["size"] ** 2 * kw["channels"]
    check_memory(max(256, kw["batch_size"]) * image * 8,
                 f"--batch-size {kw['batch_size']} float64 images (256 at least) of --size and --channels")
    check_memory(kw["sample_count"] * image * 4 * 2, f"--sample-count {kw['sample_count']} float32 images (and "
                 "their noise) of --size and --channels")
    _run("loop", **kw)


@bench.command("embed")
@click.option("--features", type=RegistryChoice(features.names), default="inception", show_default=True)
@click.option("--images", type=COUNT, default=256, show_default=True)
@click.option("--batch-size", type=COUNT, default=32, show_default=True)
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
@click.option("--size", type=ImageSide(min=1), default=28, show_default=True, help="Side of the random uint8 images.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              callback=lambda ctx, param, v: int(v), help="Gray or RGB images.")
@click.option("--out-dir", default=_OUT, show_default=True)
@handle_errors
def embed_cmd(**kw):
    """`fastsel embed` throughput against a bare model(x) loop."""
    side = kw["size"]
    check_memory(kw["images"] * side * side * kw["channels"],
                 f"--images {kw['images']} uint8 images of --size {side} x {side} x --channels {kw['channels']}")
    _run("embed", **kw)


@bench.command("distributed")
@handle_errors
def distributed_cmd():
    """Sharded selection scaling (gloo processes), bytes per pick, chunk skipping."""
    _run("distributed")


@bench.command("curate")
@click.option("--images", type=COUNT, default=200_000, show_default=True, help="Synthetic PNGs in WebDataset shards.")
@click.option("--side", type=ImageSide(min=4), default=16, show_default=True, help="Their side in pixels.")
@click.option("-n", "--n", "n", type=COUNT, default=5000, show_default=True, help="Subset size.")
@click.option("--ranks", type=CommaList(COUNT), default="1,2", show_default=True,
              help="World sizes to run (1: one process; more: torchrun on this machine).")
@click.option("--shard-rows", type=COUNT, default=4096, show_default=True)
@click.option("--work", default="bench/results/curate-scale", show_default=True, type=click.Path(file_okay=False),
              help="Where the collection (kept and reused) and the outputs go.")
@_outdir
@handle_errors
def curate_cmd(images, side, n, ranks, shard_rows, work, out_dir):
    """`fastsel curate` at scale: one process beside torchrun ranks (img/s, selection s, peak RSS per
    rank, identical outputs)."""
    if n > images:
        raise click.BadParameter(f"{n} is more than the {images} images", param_hint="--n")
    most = 4 * (os.cpu_count() or 1)
    if max(ranks) > most:
        raise click.BadParameter(f"{max(ranks)} processes on this machine's {os.cpu_count()} cores (at most {most})",
                                 param_hint="--ranks")
    probe = os.path.abspath(work)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    need = images * (side * side * 3 + 1536) * 3  # the PNG shards (at most raw size + headers), two outputs
    free = shutil.disk_usage(probe).free
    if need > free:
        raise click.BadParameter(f"{images} images of {side} x {side} need about {need / 2**30:.1f} GiB under {work}; "
                                 f"{free / 2**30:.1f} GiB are free", param_hint="--images")
    _run("curate_scale", images=images, side=side, n=n, ranks=list(ranks), shard_rows=shard_rows, work=work,
         out_dir=out_dir)


@bench.command("compat")
@click.option("--quick", is_flag=True, help="Smaller shapes (seconds); default: the peers' benchmark shapes.")
@click.option("--repeats", type=COUNT, default=3, show_default=True, help="Runs of each case; the best of them.")
@_outdir
@handle_errors
def compat_cmd(quick, repeats, out_dir):
    """fastsel.compat beside each peer it replaces (apricot, vendi-score; torch_cluster and pytorch3d
    against the native op, their packages not being installable here), outputs compared."""
    _run("compat", quick=quick, repeats=repeats, out_dir=out_dir)


@bench.command("contention")
@click.option("--repeats", type=COUNT, default=3, show_default=True, help="Runs of each setting; the best of them.")
@click.option("--out", default="bench/results/contention", show_default=True)
@click.option("--only", default=None, help="Only the workloads whose name contains this text.")
@handle_errors
def contention_cmd(**kw):
    """Every workload idle and beside one CPU-bound competitor process."""
    _run("contention", **kw)


@bench.command("prune")
@click.option("--reps", type=COUNT, default=6, show_default=True)
@click.option("--N", "N", type=COUNT, default=65536, show_default=True)
@click.option("--d", type=COUNT, default=384, show_default=True)
@click.option("--n", type=COUNT, default=2048, show_default=True)
@click.option("--sweep", is_flag=True, help="Cluster-count sweep (16 ... 4,096 clusters, nested, MNIST) vs torch-quickfps.")
@click.option("--out", default=None, help="With --sweep: write bench_prune_sweep.json here.")
@handle_errors
def prune_cmd(**kw):
    """Pruned vs unpruned multi-pick greedy, repeated in ABBA order (medians); --sweep: over cluster counts."""
    if kw["n"] > kw["N"]:
        raise click.BadParameter(f"--n {kw['n']} is larger than the pool (--N {kw['N']})", param_hint="--n")
    if kw["out"] is not None and not kw["sweep"]:
        raise click.UsageError("--out applies to --sweep")
    check_memory(kw["N"] * kw["d"] * 4, f"--N {kw['N']} x --d {kw['d']} float32 rows")
    _run("prune", **kw)


@bench.command("scaling")
@click.option("--sizes", type=CommaList(COUNT), default="16384,65536,262144,1048576", show_default=True,
              help="Pool sizes N (comma list).")
@click.option("--d", type=COUNT, default=384, show_default=True)
@click.option("--n", type=COUNT, default=4096, show_default=True)
@click.option("--pools", type=CommaList(click.Choice(POOLS)), default=",".join(POOLS), show_default=True,
              help="Pool kinds (comma list).")
@click.option("--out", default=_OUT, show_default=True)
@handle_errors
def scaling_cmd(**kw):
    """Greedy time per pick vs pool size, with the memory floor and the GEMM bound."""
    _check_sizes(kw["sizes"], kw["d"], kw["n"], 4)
    _run("scaling", **kw)


def _check_sizes(sizes, d, n, bytes_per_row_entry, kernel_bytes=0):
    """--n no larger than the smallest of --sizes; the largest pool (and an N x N kernel of
    ``kernel_bytes`` per entry) within this machine's memory."""
    if n > min(sizes):
        raise click.BadParameter(f"--n {n} is larger than the smallest pool (--sizes {min(sizes)})", param_hint="--n")
    N = max(sizes)
    check_memory(N * d * bytes_per_row_entry + N * N * kernel_bytes,
                 f"--sizes {N} x --d {d} rows" + (" and their N x N kernel" if kernel_bytes else ""))


@bench.command("tau")
@click.option("--out", default="bench/results/tau", show_default=True)
@handle_errors
def tau_cmd(**kw):
    """The threshold filter's default tau: decays, alpha, cost beside greedy."""
    _run("tau", **kw)


@bench.command("selectors")
@click.option("--sizes", type=CommaList(COUNT), default="2000,5000", show_default=True,
              help="Pool sizes N (comma list).")
@click.option("--d", type=COUNT, default=384, show_default=True)
@click.option("--n", type=COUNT, default=200, show_default=True)
@click.option("--scale", is_flag=True, help="Also the rows where no N x N kernel fits (200,000-row k-NN facility "
              "location, 1,000,000-row DPP, SemDeDup and Vendi), each in its own process (minutes).")
@click.option("--out", default="bench/results/selectors", show_default=True)
@handle_errors
def selectors_cmd(**kw):
    """Facility location, DPP, herding and the Vendi score beside apricot, a numpy fast-MAP and vendi-score."""
    _check_sizes(kw["sizes"], kw["d"], kw["n"], 4 + 8, kernel_bytes=8)  # float32 + float64 rows, a float64 kernel
    _run("selectors", **kw)


def _frontier_config(ctx, param, value):
    """CONFIG: a JSON object of ch (the UNet's channel counts), size (>= 4), n_real (>= 1), lpb (layers
    per block, optional) and LoopConfig settings, checked before MNIST is read or anything trains."""
    try:
        cfg = json.loads(value)
    except ValueError as e:
        raise click.BadParameter(f"not JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise click.BadParameter(f"must be a JSON object, got {type(cfg).__name__}")

    def count(v, lo):
        return isinstance(v, int) and not isinstance(v, bool) and v >= lo
    ch = cfg.get("ch")
    if not (isinstance(ch, list) and ch and all(count(c, 1) for c in ch)):
        raise click.BadParameter(f"'ch' must be a non-empty list of channel counts >= 1, got {ch!r}")
    for k, lo, needed in (("size", 4, True), ("n_real", 1, True), ("lpb", 1, False)):
        if (needed or k in cfg) and not count(cfg.get(k), lo):
            raise click.BadParameter(f"{k!r} must be an integer >= {lo}, got {cfg.get(k)!r}")
    rest = {k: v for k, v in cfg.items() if k not in ("ch", "size", "n_real", "lpb")}
    fixed = {"dataset": "mnist", "unet": "tiny", "ckpt_every": 10 ** 9, "sample_batch": 256}  # as run() sets them
    unknown = sorted(set(rest) - {f.name for f in dataclasses.fields(LoopConfig)} | (set(rest) & set(fixed)))
    if unknown:
        raise click.BadParameter(f"unknown or fixed setting(s): {', '.join(unknown)}")
    try:
        LoopConfig(**fixed, **rest).validate("CONFIG")
    except (FastselError, TypeError, ValueError) as e:
        raise click.BadParameter(str(e).split(": ", 1)[-1]) from None
    return value


@bench.command("frontier")
@click.argument("config", callback=_frontier_config)
@handle_errors
def frontier_cmd(config):
    """The CPU main job's training time vs LeNet class confidence; CONFIG: a JSON object of settings."""
    _run("frontier", config=config)


@bench.command("check")
@click.option("--quick", is_flag=True, help="The quick subset of the cases (<= 5 min on 2 cores); default: every case.")
@click.option("--dry-run", is_flag=True, help="Every case at tiny shapes, the baseline's format checked; no timing "
              "compared (CI).")
@click.option("--baseline", default=None, type=click.Path(dir_okay=False),
              help="The committed baseline the ratios are compared with (default: the bench/baseline*.json "
                   "measured on this CPU model, else bench/baseline.json; --update writes this machine's).")
@click.option("--tolerance", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=0.40,
              show_default=True, help="How far a ratio may fall (share of its baseline) before the check fails "
              "(0.40: two runs of one commit here differed by up to 42 %; bench/README.md).")
@click.option("--only", default=None, help="Only the cases whose name contains this text.")
@click.option("--update", is_flag=True, help="Write this run's ratios as the baseline (needs --why).")
@click.option("--why", default=None, help="With --update: why the baseline moves (kept in the file).")
@handle_errors
def check_cmd(quick, dry_run, baseline, tolerance, only, update, why):
    """No benchmark goes backwards: every case timed against its anchor in this run, each ratio
    compared with this machine's committed baseline (bench/baseline*.json); exits 1 when a ratio fell past
    the tolerance."""
    from ..benchmarks import check  # start-up: fastsel --help need not load the benchmarks
    raise SystemExit(check.run(quick=quick, dry_run=dry_run, baseline=baseline, tolerance=tolerance, update=update,
                               why=why, only=only, log=click.echo))
