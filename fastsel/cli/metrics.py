"""``fastsel metrics``: entropy, MNND, covariance trace and generalization score of a feature set."""
from __future__ import annotations

import click
import numpy as np

from .. import metrics as M
from ..io import load_features
from ..ops._inputs import BACKENDS, as_tensor
from ._common import clean_warnings, emit_json, fmt, handle_errors
from ..errors import FastselError


@click.command("metrics")
@click.option("--in", "inp", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Feature file (.npy/.npz) of the set to measure (e.g. a training set D_n).")
@click.option("--ref", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Reference features: adds gs = mean 1-NN distance from --in rows to --ref rows.")
@click.option("--holdout", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Held-out real features (same distribution as --ref, not in it): adds gs_norm = gs / "
                   "(mean 1-NN distance from --holdout rows to --ref rows); 1 = as novel as fresh real data.")
@click.option("--entropy-m", type=click.IntRange(min=2), default=None,
              help="Adds entropy_fixed: the KL estimate averaged over random subsets of this many rows "
                   "(comparable across set sizes; the loop uses 16).")
@click.option("--key", default=None, help="Array name inside .npz files.")
@click.option("--k", "k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Neighbour order of the KL entropy estimator.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: entropy, mnnd, cov_trace, vendi[, gs, copy_fraction, gs_norm]; a metric "
                   "the data does not allow is null, with the reason in notes.")
@handle_errors
def metrics(inp, ref, holdout, entropy_m, key, k, backend, as_json):
    """KL entropy, MNND and covariance trace of a feature set (and GS against --ref).

    With --ref, also copy_fraction: the share of --in rows whose nearest --ref row is closer than a
    third of the distance to the second nearest (the ratio test of Yoon et al. 2023 / Gu et al. 2023).

    \b
    Example:
      fastsel metrics --in generated.npy --ref train.npy --json
    """
    x = as_tensor(np.asarray(load_features(inp, key)), inp)
    r = None
    if ref is not None:
        r = as_tensor(np.asarray(load_features(ref, key)), ref)
        if r.shape[1] != x.shape[1]:
            raise FastselError(f"dimension mismatch: --in has d={x.shape[1]}, --ref has d={r.shape[1]}")
    h = None
    if holdout is not None:
        if r is None:
            raise FastselError("--holdout needs --ref (gs_norm compares both to the same training set)")
        h = as_tensor(np.asarray(load_features(holdout, key)), holdout)
        if h.shape[1] != x.shape[1]:
            raise FastselError(f"dimension mismatch: --in has d={x.shape[1]}, --holdout has d={h.shape[1]}")
    if entropy_m is not None and not k < entropy_m <= x.shape[0]:
        raise FastselError(f"--entropy-m must be in ({k}, {x.shape[0]}] (k, rows of --in), got {entropy_m}")
    if x.shape[0] < k + 1:
        raise FastselError(f"--in needs more than k={k} rows, has {x.shape[0]}")
    with clean_warnings():
        out = M.summary(x, r, k=k, holdout=h, backend=backend)
        if entropy_m is not None:
            out["entropy_fixed"] = M.kl_entropy_fixed(x, m=entropy_m, k=k, backend=backend)
    if as_json:
        emit_json(out)
        return
    notes = out.pop("notes", [])
    for name, v in out.items():
        click.echo(f"{name:10s} {fmt(v, 6)}")
    for line in notes:  # a metric the data does not allow: "-" above, and why
        click.echo(f"note: {line}", err=True)
