"""The selectors, in one registry (this module, ``fastsel.selectors``; the function ``fastsel.select``
is its :func:`select`): ``fastsel select --method``, ``fastsel curate --method``, the loop's selection
step (``fastsel.loop.pool.select_from``) and every list of selector names read it.

Built in: ``greedy`` (Algorithm 1), ``threshold`` (Algorithm 2) and ``random`` (a seeded uniform
subsample). Adding one is one call; an option of its own is one :class:`Option`::

    @fastsel.register_selector("my-method", help="what it keeps",
                               options=[fastsel.selectors.Option("radius", float, 1.0, "how far", min=0)])
    def my_method(x, n, *, seed, radius=1.0, **common):  # x: (N, d) tensor; common: start, backend, progress
        return indices                                   # int64 tensor of n rows (or (indices, info dict))

after which ``fastsel.select(x, n, "my-method", radius=2.0)``, ``fastsel select --method my-method
--radius 2``, ``fastsel curate ... --method my-method --radius 2`` and ``fastsel loop --selector
none,my-method --radius 2`` run it. A selector gets the common keywords (start, seed, backend, progress)
and only the options it declares; an option given to a method that does not declare it is refused in
one line, naming the methods that take it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from . import distributed as D
from .errors import FastselError
from .ops._inputs import DEFAULT_ALPHA, DEFAULT_SEED, ORDERS, _check_n, as_tensor, check_int, check_seed
from .ops.greedy import greedy
from .ops.threshold import threshold_decay

# the keywords every selector gets (and ``select``'s own): no option may take these names
COMMON = ("start", "seed", "backend", "progress")
RESERVED = COMMON + ("x", "n", "method", "return_info")


@dataclass(frozen=True)
class Option:
    """One keyword a selector takes beyond the common ones (start, seed, backend, progress).

    The commands build their flags from it (``--name``, dashes for underscores, in ``fastsel
    select``, ``fastsel curate`` and ``fastsel loop``) and refuse it, in one line, with a method that
    does not declare it; the loop checks a saved value with :meth:`problem`.

    Attributes:
        name: the Python keyword.
        type: float, int or str.
        default: the value the selector uses when the option is not given (its function's default).
        help: one line for the flag's help.
        choices: the allowed values of a str option.
        min, max, min_open, max_open: the range of a number (open: the bound itself is refused).
        sharded: the selector's row-sharded form (torchrun) takes it too.
        config_key: the loop's config.json key that has held it since before per-arm options (written
            there, not under ``selector_options``, so that saved runs keep their settings and hashes).
        sweep: ``fastsel loop``'s flag is a comma list; the loop sweeps the threshold's alpha (one sub-run
            per value); any other sweep option takes one value per run (more is refused in one line).
    """
    name: str
    type: type = float
    default: Any = None
    help: str = ""
    choices: Optional[tuple] = None
    min: Optional[float] = None
    max: Optional[float] = None
    min_open: bool = False
    max_open: bool = False
    sharded: bool = True
    config_key: Optional[str] = None
    sweep: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """What a valid value is, for messages: 'in (0, 1)', 'a finite number > 0 or null' ..."""
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        kind = "a finite number" if self.type is float else "an integer"
        if self.min is not None and self.max is not None:
            what = (f"in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}{')' if self.max_open else ']'}")
        elif self.min is not None:
            what = f"{kind} {'>' if self.min_open else '>='} {self.min:g}"
        elif self.max is not None:
            what = f"{kind} {'<' if self.max_open else '<='} {self.max:g}"
        else:
            what = kind
        return what + (" or null" if self.default is None else "")

    def problem(self, value) -> Optional[str]:
        """Why ``value`` is not a valid value of this option (None: it is)."""
        if value is None and self.default is None:
            return None
        if self.choices is not None:
            return None if isinstance(value, str) and value in self.choices else f"is not {self.describe()}"
        if self.type is str:
            return None if isinstance(value, str) else "must be a string"
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (self.type is not int or isinstance(value, int))
              and (self.min is None or (value > self.min if self.min_open else value >= self.min))
              and (self.max is None or (value < self.max if self.max_open else value <= self.max)))
        return None if ok else f"must be {self.describe()}"


@dataclass(frozen=True)
class Selector:
    name: str
    run: Callable           # run(x, n, *, start, seed, backend, progress, **its options) -> idx | (idx, info)
    help: str = ""
    op: Optional[str] = None           # the kernel op whose backend it uses (None: plain PyTorch)
    sharded: Optional[Callable] = None  # the same on a row shard under torchrun (fastsel.distributed), or None
    sharded_op: Optional[str] = None
    takes_start: bool = True  # whether it has a first pick that ``start`` sets (the CLI refuses --start if not)
    options: tuple = ()       # its Option declarations (the keywords it takes beyond the common ones)

    def option(self, name: str) -> Optional[Option]:
        return next((o for o in self.options if o.name == name), None)


SELECTORS: dict = {}


def register_selector(name: str, run: Optional[Callable] = None, *, help: str = "", op: Optional[str] = None,
                      sharded: Optional[Callable] = None, sharded_op: Optional[str] = None, replace: bool = False,
                      takes_start: bool = True, options=()):
    """Register ``run`` as selector ``name`` (usable as a decorator). ``run(x, n, **keywords)`` gets
    the pool as an (N, d) tensor, the common keywords start, seed, backend, progress (take what it
    needs, ``**_`` the rest) and the options it declares that were given; it returns the picked rows
    (int64) or (rows, info dict).

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
        options: its :class:`Option` declarations: each becomes a keyword of :func:`select` and a flag
            of ``fastsel select``, ``fastsel curate`` and ``fastsel loop`` (refused with the methods that
            do not declare it). An option another selector declares too must have the same type and
            choices (the commands have one flag for it).

    Returns:
        The function registered (so it works as a decorator).

    Raises:
        FastselError: an invalid or already registered name, an invalid option declaration.
    """
    if not isinstance(name, str) or not name or "," in name or name in ("none", "all"):
        raise FastselError(f"a selector name must be a non-empty string without commas, other than "
                           f"'none' and 'all' (the loop's own), got {name!r}")
    options = tuple(options)
    for o in options:
        if not isinstance(o, Option):
            raise FastselError(f"selector {name!r}: options must be fastsel.selectors.Option declarations, got {o!r}")
        if not o.name.isidentifier() or o.name in RESERVED:
            raise FastselError(f"selector {name!r}: option name {o.name!r} must be a Python identifier other "
                               f"than {', '.join(RESERVED)}")
        if o.type not in (float, int, str):
            raise FastselError(f"selector {name!r}: option {o.name!r} has type {o.type!r}: float, int or str")
        other = declared(o.name)
        if other is not None and other[1].name != name and (other[0].type, other[0].choices) != (o.type, o.choices):
            raise FastselError(f"selector {name!r}: option {o.name!r} is declared by {other[1].name!r} with "
                               "another type or choices (one flag serves both)")
    if len({o.name for o in options}) != len(options):
        raise FastselError(f"selector {name!r}: an option name is declared twice")

    def add(fn):
        if name in SELECTORS and not replace:
            raise FastselError(f"selector {name!r} is already registered (replace=True to override)")
        SELECTORS[name] = Selector(name, fn, help, op, sharded, sharded_op, takes_start, options)
        return fn
    return add if run is None else add(run)


def selector_names() -> tuple:
    return tuple(SELECTORS)


def declared(name: str):
    """(the first Option named ``name``, its Selector), or None when no selector declares it."""
    return next(((o, s) for s in SELECTORS.values() for o in s.options if o.name == name), None)


def all_options() -> dict:
    """Every declared option name -> (its Option, the names of the selectors that declare it), in
    registration order: what the commands make flags of."""
    out: dict = {}
    for s in SELECTORS.values():
        for o in s.options:
            out.setdefault(o.name, (o, []))[1].append(s.name)
    return {k: (o, tuple(names)) for k, (o, names) in out.items()}


def takers(option: str) -> tuple:
    """The selectors that declare ``option``."""
    return tuple(s.name for s in SELECTORS.values() if s.option(option) is not None)


def check_options(method: str, options, flags: bool = False, sharded: bool = False) -> None:
    """One line for an option ``method`` does not declare (naming the methods that take it), or one
    its sharded form (torchrun) does not take. ``flags``: name them as the commands' flags."""
    sel = get_selector(method)
    for k in options:
        o = sel.option(k)
        if o is None:
            by = takers(k)
            if flags:
                raise FastselError(f"{declared(k)[0].flag} applies to --method {' or '.join(by)}, not {method}")
            raise FastselError(f"{k} applies to the {', '.join(by)} selector{'s' if len(by) > 1 else ''}, "
                               f"not {method!r}")
        if sharded and not o.sharded:
            raise FastselError(f"{o.flag if flags else k}: the sharded form of {method} (torchrun) does not take it")


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


DECAYS = ("empty-pass", "every-pass")  # when the threshold decays (threshold_decay's decay)

THRESHOLD_OPTIONS = (
    Option("tau", float, None, "initial threshold (default: the largest distance from the first pick, see "
           "fastsel.default_tau)", min=0, min_open=True, config_key="tau"),
    Option("alpha", float, DEFAULT_ALPHA, "threshold decay factor, in (0, 1)", min=0, max=1, min_open=True,
           max_open=True, config_key="alpha", sweep=True),
    Option("decay", str, "empty-pass", "when tau decays: after a pass that accepts nothing (the paper) or after "
           "every pass (the authors' code). The same selection either way (a pass at a fixed tau leaves nothing "
           "for a second pass at that tau); only the pass count in the facts differs", choices=DECAYS,
           config_key="decay"),
    Option("order", str, "random", "threshold scan order: a permutation drawn from the seed, or the pool's row "
           "order", choices=tuple(ORDERS), config_key="order"),
)

register_selector("greedy", _greedy, help="farthest-point sampling (Algorithm 1)", op="greedy",
                  sharded=_greedy_sharded, sharded_op="update_min_d2")
register_selector("threshold", _threshold, help="threshold-decay filter (Algorithm 2)", op="threshold_decay",
                  sharded=_threshold_sharded, sharded_op="threshold_decay", options=THRESHOLD_OPTIONS)
register_selector("random", _random, help="seeded uniform subsample", takes_start=False)



def select(x, n: int, method: str = "greedy", *, start: Optional[int] = None, seed: int = DEFAULT_SEED,
           backend: str = "auto", progress: Optional[Callable[[int], None]] = None, return_info: bool = False,
           **options):
    """Indices (int64, in pick order) of an ``n``-row subset chosen by the registered selector
    ``method`` (``fastsel.selectors.SELECTORS``).

    ``random`` is the vanilla paradigm's uniform subsample (seeded permutation).
    ``return_info=True`` returns ``(indices, info)``; for the threshold filter ``info`` holds
    ``tau0``, ``tau_end``, ``passes``, ``decays``, ``n_filled`` and ``order`` (else it is empty).
    Every other keyword is an option the method declares (:class:`Option`; ``fastsel.selectors.
    all_options()`` lists them): the threshold filter's ``tau``, ``alpha``, ``decay``, ``order``;
    facility location's ``knn`` (the exact k-NN graph, O(N k) memory) and ``bandwidth`` (the RBF
    kernel's h instead of 2 tr Cov of the pool); a registered selector's own.

    Args:
        x: the pool, (N, d) tensor or array.
        n: rows to pick, 1 <= n <= N.
        method: a registered selector name (``fastsel.selectors.selector_names()``).
        start: the first pick (greedy, threshold, dpp); None draws it from ``seed``.
        seed: the seed of every draw (start, scan order, random subsample, k-means).
        backend: "auto", "cpp" or "torch".
        progress: called with the number of picks made.
        return_info: also return the selector's info dict.
        options: the options ``method`` declares, e.g. ``tau=``, ``alpha=``, ``decay=``, ``order=``
            (threshold), ``knn=``, ``bandwidth=`` (facility).

    Returns:
        torch.Tensor: (n,) int64 indices in pick order; with ``return_info``, (indices, info).

    Raises:
        FastselError: an unknown method, an option ``method`` does not declare (naming the methods
            that do), n out of range.
        TypeError: a keyword no selector declares; a fractional, bool or string ``n``.
    """
    unknown = [k for k in options if declared(k) is None]
    # None where the option's default is None is "not given" (select(..., knn=None) with any method)
    options = {k: v for k, v in options.items() if not (v is None and declared(k)[0].default is None)}
    if unknown:
        raise TypeError(f"select() got an unexpected keyword argument {unknown[0]!r}")
    sel = get_selector(method)
    check_options(method, options)
    n = check_int(n, "n", 1)  # before any selector (a user's too) sees it: 2.5, True, "3" refused
    seed = check_seed(seed)
    if start is not None:
        start = check_int(start, "start", 0)
    out = sel.run(x, n, start=start, seed=seed, backend=backend, progress=progress, **options)
    idx, info = out if isinstance(out, tuple) else (out, {})
    idx = torch.as_tensor(idx).to(torch.int64)
    if idx.dim() != 1 or idx.numel() != n:
        raise FastselError(f"selector {method!r} returned {tuple(idx.shape)} indices, not {n}")
    return (idx, dict(info)) if return_info else idx
