"""``fastsel select``: choose a training subset from a feature file."""
from __future__ import annotations

import hashlib
import io
import json
import os
import time

import click
import numpy as np
import torch

from .. import __version__, _dist
from .. import distributed as D
from .. import metrics as M
from ..io import DataError, check_outputs, load_features, read_json_object, save_bytes, save_json
from ..ops._dispatch import resolve_backend
from ..ops._inputs import BACKENDS, DEFAULT_SEED, as_tensor
from ..selectors import check_start_applies, get_selector, selector_names, select as run_select
from ._common import (DEVICE, SEED, SEED_HELP, RegistryChoice, clean_warnings, emit_json, fmt, handle_errors,
                      one_line, progress_bar)
from ._options import SelectorOptionsCommand, given_options, refuse_undeclared
from ..errors import FastselError

POOL_METRIC_ROWS = 16384


def default_out(path: str, method: str, n: int) -> str:
    stem = path[:-4] if path.endswith((".npy", ".npz")) else path
    return f"{stem}.{method}-{n}.npy"


WRITER = "fastsel select"  # the provenance record OUT.json names its writer


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record(path: str):
    """The provenance record an earlier ``fastsel select`` wrote at ``path`` (OUT.json), else None."""
    d = read_json_object(path)
    return d if d is not None and d.get("written_by") == WRITER and isinstance(d.get("sha256"), str) else None


def check_ours(out: str) -> None:
    """Before any work: OUT and OUT.json are replaced only as the pair an earlier ``fastsel select`` wrote
    (OUT.json, written last, names it and holds the SHA-256 of the OUT it wrote). Anything else there --
    the user's own array (a 1-D int64 .npy included), notes, or a selection changed since -- is refused
    in one line and nothing is written."""
    sidecar = out + ".json"
    there = [p for p in (out, sidecar) if os.path.lexists(p)]
    if not there:
        return
    rec = _record(sidecar)
    if rec is None:
        why = (f"no provenance record of {WRITER} in {one_line(sidecar)}; a selection written before select "
               "wrote OUT.json has none: move it away once")
    elif os.path.lexists(out) and _sha256(out) not in (rec["sha256"], rec.get("replaces")):
        why, there = f"{one_line(out)} changed since {one_line(sidecar)} recorded it", [out]
    else:
        return
    raise DataError(f"{', '.join(map(one_line, there))}: already there and not a selection {WRITER} wrote "
                    f"({why}): nothing was written -- move {'it' if len(there) == 1 else 'them'} away or choose "
                    "another --out")


def _save(out: str, idx: torch.Tensor, record: dict) -> None:
    """OUT.json first -- the provenance record (what made the selection, the SHA-256 of the new OUT and
    of the OUT it replaces) -- then OUT (the picks, int64, in pick order), each atomically. A run stopped
    between the two leaves a pair :func:`check_ours` still calls ours (OUT is the old or the new file
    the record names), so a rerun replaces both; nothing else is ever replaced."""
    buf = io.BytesIO()
    np.save(buf, idx.numpy().astype(np.int64), allow_pickle=False)
    data = buf.getvalue()
    old = _sha256(out) if os.path.isfile(out) else None
    save_json(out + ".json", {"written_by": WRITER, "version": __version__, **record,
                              "sha256": hashlib.sha256(data).hexdigest(), "replaces": old})
    save_bytes(out, data)


def pool_rows(N: int, seed: int) -> torch.Tensor | None:
    """Rows the pool metrics use: all when N <= 16384, else a seeded uniform sample."""
    if N <= POOL_METRIC_ROWS:
        return None
    g = torch.Generator().manual_seed(int(seed) + 1)
    return torch.randperm(N, generator=g)[:POOL_METRIC_ROWS].sort().values


def set_metrics(x: torch.Tensor, backend: str) -> dict:
    if x.shape[0] < 2:
        return {"entropy": None, "mnnd": None}
    return {"entropy": M.kl_entropy(x, backend=backend), "mnnd": M.mnnd(x, backend=backend)}


@click.command("select", cls=SelectorOptionsCommand, after="seed")
@click.option("--in", "inp", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Feature file: .npy (memory-mapped) or .npz (see --key), shape (N, d).")
@click.option("--key", default=None, help="Array name inside a .npz file.")
@click.option("-n", "--n", "n", required=True, type=click.IntRange(min=1),
              help="Number of rows to select (-n under torchrun, whose own parser claims --n).")
@click.option("--method", type=RegistryChoice(selector_names), default="greedy", show_default=True)
@click.option("--start", type=click.IntRange(min=0), default=None,
              help="First pick (default: drawn from --seed).")
@click.option("--seed", type=SEED, default=DEFAULT_SEED, show_default=True, help=SEED_HELP)
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="Where the pool is selected: cpu, cuda or cuda:K (the CUDA kernels).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output .npy of int64 indices in pick order (default: beside the input); OUT.json beside it "
                   "records how it was made. Existing files there are replaced only as an earlier selection "
                   "(OUT.json its provenance); any other file is refused, never overwritten.")
@click.option("--no-metrics", is_flag=True, help="Skip the entropy/MNND summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def select(inp, key, n, method, start, seed, backend, device, out, no_metrics, as_json, quiet, **options):
    """Select N rows of a feature pool (greedy FPS, threshold-decay filter or random).

    \b
    Example:
      fastsel select --in feats.npy --n 32768
    """
    sel = get_selector(method)
    options = given_options(options)  # the selector's own options (its declarations' flags)
    sharded = _dist.launched() and sel.sharded is not None
    refuse_undeclared(method, options, sharded=sharded)
    dev = torch.device(device)
    out = out or default_out(inp, method, n)
    check_outputs([out, out + ".json"], [inp])
    check_ours(out)
    arr = load_features(inp, key)
    N, d = arr.shape
    if n > N:
        raise FastselError(f"--n {n} is larger than the pool ({N} rows in {inp})")
    if start is not None and start >= N:
        raise FastselError(f"--start {start} is out of range for a pool of {N} rows")
    check_start_applies(method, start)
    if sharded:
        return _select_sharded(sel, arr, inp, key, n, start, seed, backend, out, no_metrics, as_json, options)
    x = as_tensor(np.asarray(arr), inp).to(dev)
    used_backend = "torch" if sel.op is None else resolve_backend(sel.op, dev.type, backend)
    t0 = time.perf_counter()
    with progress_bar(n, f"{method}", quiet) as bar:
        idx, info = run_select(x, n, method, start=start, seed=seed, backend=backend, progress=bar.update,
                               return_info=True, **options)
    seconds = time.perf_counter() - t0
    idx = idx.cpu()
    summary = {"N": N, "d": d, "n": n, "method": method, "backend": used_backend, "device": str(dev),
               "seconds": seconds, "out": out, **info}
    _save(out, idx, _provenance(summary, inp, key, seed, start, options))
    _report(summary, x, idx, N, seed, backend, no_metrics, as_json)


def _provenance(summary: dict, inp: str, key, seed: int, start, options: dict) -> dict:
    """What OUT.json records: the input, the method with its seed, start and options, and the run's facts."""
    rec = {"in": os.path.abspath(inp), "key": key, "seed": seed, "start": start, "options": dict(options)}
    rec.update({k: v for k, v in summary.items() if k != "out"})
    return json.loads(json.dumps(rec, default=str))  # plain JSON values (tensors' facts as numbers or strings)


def _report(summary, x, idx, N, seed, backend, no_metrics, as_json):
    n, method, d = summary["n"], summary["method"], summary["d"]
    if not no_metrics:
        rows = pool_rows(N, seed)
        with clean_warnings():
            summary["selection"] = set_metrics(x[idx], backend)
            summary["pool"] = dict(set_metrics(x if rows is None else x[rows], backend),
                                   rows=N if rows is None else int(rows.numel()))
    if as_json:
        emit_json(summary)
        return
    used_backend, seconds, out = summary["backend"], summary["seconds"], summary["out"]
    click.echo(f"selected {n} of {N} rows (d={d}) with {method} [{used_backend}] in {seconds:.3f} s -> {one_line(out)}")
    if "tau0" in summary:
        click.echo(f"  tau {fmt(summary['tau0'])} -> {fmt(summary['tau_end'])}: {summary['decays']} decays, "
                   f"{summary['passes']} passes, {summary['n_filled']} filled, {summary['order']} order")
    if not no_metrics:
        s, p = summary["selection"], summary["pool"]
        click.echo(f"  {'':10s} {'entropy':>12s} {'mnnd':>10s}")
        click.echo(f"  {'selection':10s} {fmt(s['entropy'], 2):>12s} {fmt(s['mnnd']):>10s}")
        label = "pool" if p["rows"] == N else f"pool~{p['rows']}"
        click.echo(f"  {label:10s} {fmt(p['entropy'], 2):>12s} {fmt(p['mnnd']):>10s}")


def _select_sharded(sel, arr, inp, key, n, start, seed, backend, out, no_metrics, as_json, options):
    """Under torchrun: fastsel.distributed.select_sharded picks on every rank; rank 0 writes the one output."""
    r = D.select_sharded(sel, arr, inp, n, start=start, seed=seed, backend=backend, options=options)
    if r.rank != 0:
        return
    N, d = arr.shape
    summary = {"N": N, "d": d, "n": n, "method": sel.name,
               "backend": resolve_backend(sel.sharded_op or sel.op, "cpu", backend),
               "seconds": r.seconds, "out": out, "world_size": r.world, **r.info}
    _save(out, r.indices, _provenance(summary, inp, key, seed, start, options))
    x = as_tensor(np.asarray(arr)) if not no_metrics else None
    _report(summary, x, r.indices, N, seed, backend, no_metrics, as_json)
