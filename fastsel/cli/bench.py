"""``fastsel bench [select|nn|threshold|sets|gpu|loop|embed|distributed|contention|prune|scaling|tau|frontier]``:
every benchmark, one entry point (the code: fastsel/benchmarks/, one module each; bench/README.md
shows what each prints). ``fastsel bench`` alone is ``fastsel bench select``."""
from __future__ import annotations

from types import SimpleNamespace

import click

from ._common import handle_errors

_OUT = "bench/results"


def _select(full, backends, out_dir, only=None):
    from ..benchmarks import select as B

    def log(r):
        click.echo(f"{r.op:9s} {r.impl:30s} {r.dtype:8s} N={r.N:<7d} d={r.d:<4d} n={r.n:<5d} "
                   f"{r.seconds:9.3f}s  x_plain={r.vs_plain:7.2f}  x_floor={r.vs_floor:6.2f}", err=True)
    grid = B.FULL if full else B.QUICK
    if only is not None:
        grid = {k: (v if k == only else []) for k, v in grid.items()}
    res = B.run(grid, backends, out_dir, log)
    click.echo(B.markdown(res))


def _gpu(out, quick):
    import torch
    if not torch.cuda.is_available():
        raise click.UsageError("the GPU benchmark needs a CUDA device; none is visible")
    from ..benchmarks import gpu
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
    import importlib
    mod = importlib.import_module(f"fastsel.benchmarks.{module}")
    return mod.run(SimpleNamespace(**kw))


@bench.command("loop")
@click.option("--unet", default="tiny", show_default=True)
@click.option("--size", type=int, default=32, show_default=True)
@click.option("--channels", type=int, default=3, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True,
              help="Training steps timed per loop.")
@click.option("--sample-count", type=int, default=64, show_default=True)
@click.option("--sample-steps", type=int, default=10, show_default=True, help="DDPM steps for both samplers.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default="no", show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True, help="Alternating repeats; the best of each.")
@click.option("--sweep", "sweep_steps", type=click.IntRange(min=1), default=None,
              help="Instead: time a 2-seed `fastsel loop mnist` sweep (cpu preset, this many training steps) with "
                   "--jobs 1 (sub-runs one after another, every thread) and --jobs 2 (side by side).")
@click.option("--out-dir", default=_OUT, show_default=True)
@handle_errors
def loop_cmd(**kw):
    """Loop training and sampling throughput against bare diffusers (or, with --sweep, a sweep's wall
    time with and without --jobs)."""
    _run("loop", **kw)


@bench.command("embed")
@click.option("--features", default="inception", show_default=True)
@click.option("--images", type=int, default=256, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--size", type=int, default=28, show_default=True, help="Side of the random uint8 images.")
@click.option("--channels", type=int, default=1, show_default=True)
@click.option("--out-dir", default=_OUT, show_default=True)
@handle_errors
def embed_cmd(**kw):
    """`fastsel embed` throughput against a bare model(x) loop."""
    _run("embed", **kw)


@bench.command("distributed")
@handle_errors
def distributed_cmd():
    """Sharded selection scaling (gloo processes), bytes per pick, chunk skipping."""
    _run("distributed")


@bench.command("contention")
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--out", default="bench/results/contention", show_default=True)
@click.option("--only", default=None, help="Only the workloads whose name contains this text.")
@handle_errors
def contention_cmd(**kw):
    """Every workload idle and beside one CPU-bound competitor process."""
    _run("contention", **kw)


@bench.command("prune")
@click.option("--reps", type=int, default=6, show_default=True)
@click.option("--N", "N", type=int, default=65536, show_default=True)
@click.option("--d", type=int, default=384, show_default=True)
@click.option("--n", type=int, default=2048, show_default=True)
@click.option("--sweep", is_flag=True, help="Cluster-count sweep (16 ... 4,096 clusters, nested, MNIST) vs torch-quickfps.")
@click.option("--out", default=None, help="With --sweep: write bench_prune_sweep.json here.")
@handle_errors
def prune_cmd(**kw):
    """Pruned vs unpruned multi-pick greedy, repeated in ABBA order (medians); --sweep: over cluster counts."""
    _run("prune", **kw)


@bench.command("scaling")
@click.option("--sizes", default="16384,65536,262144,1048576", show_default=True)
@click.option("--d", type=int, default=384, show_default=True)
@click.option("--n", type=int, default=4096, show_default=True)
@click.option("--pools", default="gauss,clustered", show_default=True)
@click.option("--out", default=_OUT, show_default=True)
@handle_errors
def scaling_cmd(**kw):
    """Greedy time per pick vs pool size, with the memory floor and the GEMM bound."""
    _run("scaling", **kw)


@bench.command("tau")
@click.option("--out", default="bench/results/tau", show_default=True)
@handle_errors
def tau_cmd(**kw):
    """The threshold filter's default tau: decays, alpha, cost beside greedy."""
    _run("tau", **kw)


@bench.command("selectors")
@click.option("--sizes", default="2000,5000", show_default=True, help="Pool sizes N (comma list).")
@click.option("--d", type=int, default=384, show_default=True)
@click.option("--n", type=int, default=200, show_default=True)
@click.option("--scale", is_flag=True, help="Also the rows where no N x N kernel fits (200,000-row k-NN facility "
              "location, 1,000,000-row DPP, SemDeDup and Vendi), each in its own process (minutes).")
@click.option("--out", default="bench/results/selectors", show_default=True)
@handle_errors
def selectors_cmd(**kw):
    """Facility location, DPP, herding and the Vendi score beside apricot, a numpy fast-MAP and vendi-score."""
    _run("selectors", **kw)


@bench.command("frontier")
@click.argument("config")
@handle_errors
def frontier_cmd(config):
    """The CPU main job's training time vs LeNet class confidence; CONFIG: a JSON object of settings."""
    _run("frontier", config=config)


@bench.command("check")
@click.option("--quick", is_flag=True, help="The quick subset of the cases (<= 5 min on 2 cores); default: every case.")
@click.option("--dry-run", is_flag=True, help="Every case at tiny shapes, the baseline's format checked; no timing "
              "compared (CI).")
@click.option("--baseline", default="bench/baseline.json", show_default=True,
              type=click.Path(dir_okay=False), help="The committed baseline the ratios are compared with.")
@click.option("--tolerance", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.25,
              show_default=True, help="How far a ratio may fall (share of its baseline) before the check fails.")
@click.option("--only", default=None, help="Only the cases whose name contains this text.")
@click.option("--update", is_flag=True, help="Write this run's ratios as the baseline (needs --why).")
@click.option("--why", default=None, help="With --update: why the baseline moves (kept in the file).")
@handle_errors
def check_cmd(quick, dry_run, baseline, tolerance, only, update, why):
    """No benchmark goes backwards: every case timed against its anchor in this run, each ratio
    compared with bench/baseline.json; exits 1 when a ratio fell past the tolerance."""
    from ..benchmarks import check
    raise SystemExit(check.run(quick=quick, dry_run=dry_run, baseline=baseline, tolerance=tolerance, update=update,
                               why=why, only=only, log=click.echo))
