"""``fastsel metrics``: entropy, MNND, covariance trace and generalization score of a feature set."""
from __future__ import annotations

import click
import numpy as np

from .. import metrics as M
from .. import ops
from ..io import load_features
from ._common import clean_warnings, emit_json, fmt, handle_errors
from ..errors import FastselError


@click.command("metrics")
@click.option("--in", "inp", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Feature file (.npy/.npz) of the set to measure (e.g. a training set D_n).")
@click.option("--ref", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Reference features: adds gs = mean 1-NN distance from --in rows to --ref rows.")
@click.option("--key", default=None, help="Array name inside .npz files.")
@click.option("--k", "k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Neighbour order of the KL entropy estimator.")
@click.option("--backend", type=click.Choice(ops.BACKENDS), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: entropy, mnnd, cov_trace[, gs].")
@handle_errors
def metrics(inp, ref, key, k, backend, as_json):
    """KL entropy, MNND and covariance trace of a feature set (and GS against --ref).

    \b
    Example:
      fastsel metrics --in generated.npy --ref train.npy --json
    """
    x = ops.as_tensor(np.asarray(load_features(inp, key)), inp)
    r = None
    if ref is not None:
        r = ops.as_tensor(np.asarray(load_features(ref, key)), ref)
        if r.shape[1] != x.shape[1]:
            raise FastselError(f"dimension mismatch: --in has d={x.shape[1]}, --ref has d={r.shape[1]}")
    if x.shape[0] < k + 1:
        raise FastselError(f"--in needs more than k={k} rows, has {x.shape[0]}")
    with clean_warnings():
        out = M.summary(x, r, k=k, backend=backend)
    if as_json:
        emit_json(out)
        return
    for name, v in out.items():
        click.echo(f"{name:10s} {fmt(v, 6)}")
