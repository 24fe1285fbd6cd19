"""``fastsel demo``: the main job on data the package makes itself."""
from __future__ import annotations

import os
import time

import click
import torch

from .. import metrics as M
from ..demo import make_pool
from ..io import save_npy
from ..ops._inputs import BACKENDS
from ..selectors import select, selector_names
from ._common import SEED, SEED_HELP, CommaList, RegistryChoice, check_memory, emit_json, fmt, handle_errors, one_line


@click.command("demo")
@click.option("--out", default="fastsel-demo.npy", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the demo feature pool (float32 .npy).")
@click.option("--pool", "pool_n", type=click.IntRange(min=16), default=8192, show_default=True)
@click.option("--d", "dim", type=click.IntRange(min=1), default=384, show_default=True)
@click.option("--n", "n", type=click.IntRange(min=2), default=1024, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help=SEED_HELP)
@click.option("--method", "methods", type=CommaList(RegistryChoice(lambda: ("all",) + selector_names())),
              default="greedy,threshold,random", show_default=True,
              help="Comma list of registered selectors to compare, or 'all' (every registered one; the kernel "
                   "selectors take seconds to minutes on the default pool).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def demo(out, pool_n, dim, n, seed, methods, backend, as_json):
    """Write a demo pool (tight clusters of 'generated' rows plus spread 'real' rows, like DINOv2
    features after a few self-consuming iterations) and compare the selectors on it.

    The file it writes works with every other command, e.g.
    `fastsel select --in fastsel-demo.npy --n 1024`.
    """
    if n > pool_n:
        raise click.BadParameter(f"--n {n} is larger than --pool {pool_n}", param_hint="--n")
    if "all" in methods:  # the live registry: selectors registered by a user's code appear too
        if len(methods) > 1:
            raise click.BadParameter(f"'all' stands alone, got {','.join(methods)}", param_hint="--method")
        methods = selector_names()
    check_memory(pool_n * dim * 4, f"--pool {pool_n} x --d {dim} float32 rows")
    x_np, src = make_pool(pool_n, dim, seed=seed)
    save_npy(out, x_np)
    x = torch.from_numpy(x_np)
    rows = []
    for method in methods:
        t0 = time.perf_counter()
        idx = select(x, n, method, seed=seed, backend=backend)
        secs = time.perf_counter() - t0
        sub = x[idx]
        rows.append({"method": method, "seconds": secs, "entropy": M.kl_entropy(sub, backend=backend),
                     "mnnd": M.mnnd(sub, backend=backend), "cov_trace": M.cov_trace(sub),
                     "real_share": float((src[idx.numpy()] == 0).mean())})
    result = {"pool": os.path.abspath(out), "N": pool_n, "d": dim, "n": n,
              "pool_real_share": float((src == 0).mean()), "selectors": rows}
    if as_json:
        emit_json(result)
        return
    click.echo(f"demo pool: {pool_n} x {dim} float32 -> {one_line(out)} "
               f"({result['pool_real_share']:.0%} spread 'real' rows, the rest in 64 tight clusters)")
    click.echo(f"selecting n={n}:")
    w = max(10, *(len(m) for m in methods))
    click.echo(f"  {'method':{w}s} {'seconds':>8s} {'entropy':>10s} {'mnnd':>8s} {'cov_trace':>10s} {'real kept':>9s}")
    for r in rows:
        click.echo(f"  {r['method']:{w}s} {r['seconds']:8.3f} {fmt(r['entropy'], 1):>10s} {fmt(r['mnnd'], 3):>8s}"
                   f" {fmt(r['cov_trace'], 1):>10s} {r['real_share']:9.0%}")
    click.echo(f"next: fastsel select --in {out} --n {n}")
