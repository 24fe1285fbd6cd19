"""``fastsel bench``: the selector throughput benchmark (also bench/bench_select.py)."""
from __future__ import annotations

import click

from .. import ops
from ._common import handle_errors


@click.command("bench")
@click.option("--full", is_flag=True, help="The larger grid (minutes); default: the quick grid.")
@click.option("--backend", "backends", multiple=True, type=click.Choice(["cpp", "torch"]),
              default=("cpp", "torch"), show_default=True)
@click.option("--out-dir", default="bench/results", show_default=True, type=click.Path(file_okay=False))
@click.option("--gpu", is_flag=True, help="The GPU benchmark of the CUDA kernels instead (needs a CUDA device; "
              "--full: the issue's sizes, else a smoke run). Writes gpu_bench.json / gpu_bench.md.")
@handle_errors
def bench(full, backends, out_dir, gpu):
    """Time greedy, threshold and nn for every backend beside the plain PyTorch loop, the authors'
    procedure, fpsample/faiss (when installed) and the memory floor.

    Writes bench_select.json and bench_select.md to --out-dir.
    """
    if gpu:
        import torch

        if not torch.cuda.is_available():
            raise click.UsageError("--gpu needs a CUDA device; none is visible")
        from .. import bench_gpu
        raise SystemExit(bench_gpu.main(["--out", out_dir] + ([] if full else ["--quick"])))
    from .. import bench as B

    def log(r):
        click.echo(f"{r.op:9s} {r.impl:30s} {r.dtype:8s} N={r.N:<7d} d={r.d:<4d} n={r.n:<5d} "
                   f"{r.seconds:9.3f}s  x_plain={r.vs_plain:7.2f}  x_floor={r.vs_floor:6.2f}", err=True)
    res = B.run(B.FULL if full else B.QUICK, backends, out_dir, log)
    click.echo(B.markdown(res))
