"""The selectors, in one registry (this module, ``fastsel.selectors``; the function ``fastsel.select``
is its :func:`select`): ``fastsel select --method``, the loop's selection step
(``fastsel.loop.pool.select_from``) and every list of selector names read it.

Built in: ``greedy`` (Algorithm 1), ``threshold`` (Algorithm 2) and ``random`` (a seeded uniform
subsample). Adding one is one call::

    @fastsel.register_selector("my-method", help="what it keeps")
    def my_method(x, n, *, seed, **options):   # x: (N, d) tensor; options: start, backend, tau, ...
        return indices                          # int64 tensor of n rows (or (indices, info dict))

after which ``fastsel.select(x, n, "my-method")``, ``fastsel select --method my-method`` and
``fastsel loop --selector none,my-method`` run it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from . import distributed as D
from .errors import FastselError
from .ops._inputs import DEFAULT_ALPHA, DEFAULT_SEED, _check_n, as_tensor, check_int, check_seed
from .ops.greedy import greedy
from .ops.threshold import threshold_decay


@dataclass(frozen=True)
class Selector:
    name: str
    run: Callable           # run(x, n, *, start, seed, backend, progress, tau, alpha, decay, order) -> idx | (idx, info)
    help: str = ""
    op: Optional[str] = None           # the kernel op whose backend it uses (None: plain PyTorch)
    sharded: Optional[Callable] = None  # the same on a row shard under torchrun (fastsel.distributed), or None
    sharded_op: Optional[str] = None
    takes_start: bool = True  # whether it has a first pick that ``start`` sets (the CLI refuses --start if not)


SELECTORS: dict = {}


def register_selector(name: str, run: Optional[Callable] = None, *, help: str = "", op: Optional[str] = None,
                      sharded: Optional[Callable] = None, sharded_op: Optional[str] = None, replace: bool = False,
                      takes_start: bool = True):
    """Register ``run`` as selector ``name`` (usable as a decorator). ``run(x, n, **options)`` gets
    the pool as an (N, d) tensor and the keywords start, seed, backend, progress, tau, alpha,
    decay, order (take what it needs, ``**_`` the rest) and returns the picked rows (int64) or
    (rows, info dict).

    Args:
        name: the method name (``fastsel select --method``, ``fastsel loop --selector``); not
            "none" or "all", no commas.
        run: the selector function; None returns a decorator.
        help: one line for help texts and ``fastsel demo``.
        op: the name of a fastsel op it runs (for the extension's dispatch), if any.
        sharded: the same selector on a row-sharded pool (torchrun), if it has one.
        sharded_op: the op name of the sharded version.
        replace: allow overriding an existing registration.
        takes_start: False for a selector with no first pick (``start`` is passed and ignored): the
            CLI commands then refuse ``--start`` instead of ignoring it silently.

    Returns:
        The function registered (so it works as a decorator).

    Raises:
        FastselError: an invalid or already registered name.
    """
    if not isinstance(name, str) or not name or "," in name or name in ("none", "all"):
        raise FastselError(f"a selector name must be a non-empty string without commas, other than "
                           f"'none' and 'all' (the loop's own), got {name!r}")

    def add(fn):
        if name in SELECTORS and not replace:
            raise FastselError(f"selector {name!r} is already registered (replace=True to override)")
        SELECTORS[name] = Selector(name, fn, help, op, sharded, sharded_op, takes_start)
        return fn
    return add if run is None else add(run)


def selector_names() -> tuple:
    return tuple(SELECTORS)


def check_start_applies(method: str, start) -> None:
    """A one-line error for ``--start`` with a selector that has no first pick (it would be ignored)."""
    if start is not None and not get_selector(method).takes_start:
        raise FastselError(f"--start: the {method} method has no first pick to set (--start applies to "
                           f"{', '.join(m for m in SELECTORS if SELECTORS[m].takes_start)})")


def get_selector(name: str) -> Selector:
    if name not in SELECTORS:
        raise FastselError(f"method must be one of {', '.join(SELECTORS)}, got {name!r}")
    return SELECTORS[name]


def _greedy(x, n, *, start=None, seed=DEFAULT_SEED, backend="auto", progress=None, **_):
    return greedy(x, n, start, seed=seed, backend=backend, progress=progress).indices


def _greedy_sharded(x, n, *, start=None, seed=DEFAULT_SEED, backend="auto", **_):
    return D.greedy(x, n, start, seed=seed, backend=backend).indices


def _threshold(x, n, *, start=None, seed=DEFAULT_SEED, backend="auto", progress=None, tau=None,
               alpha=DEFAULT_ALPHA, decay="empty-pass", order="random", **_):
    r = threshold_decay(x, n, start, tau, alpha, decay=decay, order=order, seed=seed, backend=backend,
                        progress=progress)
    return r.indices, r.info()


def _threshold_sharded(x, n, *, start=None, seed=DEFAULT_SEED, backend="auto", tau=None,
                       alpha=DEFAULT_ALPHA, decay="empty-pass", order="random", **_):
    r = D.threshold_decay(x, n, start, tau, alpha, decay=decay, order=order, seed=seed, backend=backend)
    return r.indices, r.info()


def _random(x, n, *, seed=DEFAULT_SEED, progress=None, **_):
    x = as_tensor(x)
    n = _check_n(n, x.shape[0])
    g = torch.Generator().manual_seed(check_seed(seed))
    idx = torch.randperm(x.shape[0], generator=g)[:n]
    if progress is not None:
        progress(n)
    return idx


register_selector("greedy", _greedy, help="farthest-point sampling (Algorithm 1)", op="greedy",
                  sharded=_greedy_sharded, sharded_op="update_min_d2")
register_selector("threshold", _threshold, help="threshold-decay filter (Algorithm 2)", op="threshold_decay",
                  sharded=_threshold_sharded, sharded_op="threshold_decay")
register_selector("random", _random, help="seeded uniform subsample", takes_start=False)


def select(x, n: int, method: str = "greedy", *, start: Optional[int] = None, seed: int = DEFAULT_SEED,
           tau: Optional[float] = None, alpha: float = DEFAULT_ALPHA, decay: str = "empty-pass",
           order: str = "random", backend: str = "auto", progress: Optional[Callable[[int], None]] = None,
           return_info: bool = False, knn: Optional[int] = None, bandwidth: Optional[float] = None):
    """Indices (int64, in pick order) of an ``n``-row subset chosen by the registered selector
    ``method`` (``fastsel.selectors.SELECTORS``).

    ``random`` is the vanilla paradigm's uniform subsample (seeded permutation).
    ``return_info=True`` returns ``(indices, info)``; for the threshold filter ``info`` holds
    ``tau0``, ``tau_end``, ``passes``, ``decays``, ``n_filled`` and ``order`` (else it is empty).
    ``knn=k`` (``facility`` only): facility location on the exact k-NN graph (O(N k) memory).
    ``bandwidth=h`` (``facility`` only): the RBF kernel's h instead of 2 tr Cov of the pool.

    Args:
        x: the pool, (N, d) tensor or array.
        n: rows to pick, 1 <= n <= N.
        method: a registered selector name (``fastsel.selectors.selector_names()``).
        start: the first pick (greedy, threshold, dpp); None draws it from ``seed``.
        seed: the seed of every draw (start, scan order, random subsample, k-means).
        tau: the threshold filter's initial threshold (None: data-derived).
        alpha: the threshold filter's decay factor.
        decay: the threshold filter's decay rule ("empty-pass" or "every-pass").
        order: the threshold filter's scan order ("random" or "index").
        backend: "auto", "cpp" or "torch".
        progress: called with the number of picks made.
        return_info: also return the selector's info dict.
        knn: facility location on the exact k-NN graph with this k.
        bandwidth: facility location's RBF bandwidth h (None: 2 tr Cov of the pool).

    Returns:
        torch.Tensor: (n,) int64 indices in pick order; with ``return_info``, (indices, info).

    Raises:
        FastselError: an unknown method, ``knn`` or ``bandwidth`` with another method, n out of range.
        TypeError: unknown keyword arguments; a fractional, bool or string ``n``.
    """
    sel = get_selector(method)
    if knn is not None and method != "facility":
        raise FastselError(f"knn applies to the facility selector, not {method!r}")
    if bandwidth is not None and method != "facility":
        raise FastselError(f"bandwidth applies to the facility selector, not {method!r}")
    n = check_int(n, "n", 1)  # before any selector (a user's too) sees it: 2.5, True, "3" refused
    seed = check_seed(seed)
    if start is not None:
        start = check_int(start, "start", 0)
    out = sel.run(x, n, start=start, seed=seed, backend=backend, progress=progress, tau=tau,
                                   alpha=alpha, decay=decay, order=order, **({} if knn is None else {"knn": knn}),
                                   **({} if bandwidth is None else {"bandwidth": bandwidth}))
    idx, info = out if isinstance(out, tuple) else (out, {})
    idx = torch.as_tensor(idx).to(torch.int64)
    if idx.dim() != 1 or idx.numel() != n:
        raise FastselError(f"selector {method!r} returned {tuple(idx.shape)} indices, not {n}")
    return (idx, dict(info)) if return_info else idx
