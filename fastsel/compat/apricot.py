"""Drop-in for apricot's ``FacilityLocationSelection`` (apricot-select 0.6.1)::

    from apricot import FacilityLocationSelection  ->  from fastsel.compat.apricot import FacilityLocationSelection

The same constructor (argument order and defaults), ``fit`` / ``transform`` / ``fit_transform``
and attributes ``ranking``, ``gains`` and ``subset`` (plus ``subset_y``, the labels of the picks when
``fit`` got ``y``). Everything is float64 NumPy, no numba and no scikit-learn needed.

apricot's conventions, reproduced:

- similarities from the rows of X: ``metric="euclidean"``: squared Euclidean distances D and
  S = max(D) - D; ``"cosine"`` and ``"correlation"`` (``"corr"``): S = cos^2 of the (centred, for
  correlation) rows, the diagonal 1 for cosine; ``"precomputed"``: X is S (square, rows read as
  "how well row j covers each row"); any other scikit-learn metric name: S = max(D) - D of its
  distances (needs scikit-learn). Negative and positive values together are refused.
- ``n_neighbors=k``: S kept on each row's k + 1 nearest rows (itself included), from plain
  (unsquared) Euclidean -- or the metric's -- distances, S = max - D over the kept values
  (1 - (1 - cos^2) for cosine / correlation), zero elsewhere.
- ``initial_subset``: indices (or a boolean mask) of rows already chosen: they cover from the
  start, are never picked and are not in ``ranking``; ``n_samples`` new rows are picked.
- gains: ``sum(max(S[j], cover)) - sum(cover)`` each, divided by ``sample_cost[j]`` for the
  comparison (a knapsack budget of ``n_samples`` when costs are given), the undivided gain recorded.
- the optimizers ``"lazy"`` (default), ``"naive"`` and ``"two-stage"`` (``naive`` for the first
  ``n_first_selections`` = 10, then ``lazy``), each with apricot's tie rule: naive takes the lowest
  index of the largest gain; lazy replays apricot's priority queue (ties by insertion order, a
  re-evaluated gain entering behind the older bounds, and a second exactly-0 gain taken at once).

The other optimizers (stochastic, sample, greedi, bidirectional, approximate-lazy, modular, random,
sieve) and ``partial_fit`` (streaming) are refused with a one-line error: their picks depend on
apricot's random streams or are approximations. See docs/compat.md for the differences.
"""
from __future__ import annotations

import heapq
import itertools
import math
import numbers

import numpy as np

from ..errors import FastselError

__all__ = ["FacilityLocationSelection"]

_OPTIMIZERS = ("lazy", "naive", "two-stage")
_BLOCK_BYTES = 2 ** 26
_TILE_BYTES = 2 ** 20


def _as_matrix(X, name="X") -> np.ndarray:
    if hasattr(X, "toarray") and hasattr(X, "tocsr"):  # a scipy sparse matrix: its zeros cover nothing
        X = X.toarray()
    if isinstance(X, list):
        X = np.asarray(X)
    if not isinstance(X, np.ndarray):
        try:  # a torch tensor
            X = X.detach().cpu().numpy()
        except AttributeError:
            raise FastselError(f"{name} must be a list of lists, a 2-D numpy array or a scipy sparse "
                               "matrix") from None
    if X.ndim != 2:
        raise FastselError(f"{name} must have exactly two dimensions, got shape {X.shape}")
    if X.dtype.kind not in "iufb":
        raise FastselError(f"{name} must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise FastselError(f"{name} holds NaN or infinite values")
    return X


def _pairwise_tiles(X: np.ndarray, reduce) -> np.ndarray:
    """A symmetric (N, N) matrix of ``reduce(X[i] - X[j])`` over the last axis, in square tiles of
    about 1 MB of differences (cache-resident; the per-entry arithmetic, hence every value, is that of
    one (rows, N, d) block). Each off-diagonal tile is computed once and mirrored: X[i] - X[j] is
    exactly -(X[j] - X[i]), so both reductions (of squares or absolute values) are bitwise equal."""
    N, d = X.shape
    D = np.empty((N, N))
    t = max(1, int(math.sqrt(_TILE_BYTES / (8 * max(1, d)))))
    for a in range(0, N, t):
        xa = X[a:a + t, None, :]
        for b in range(a, N, t):
            reduce(xa - X[None, b:b + t, :], D[a:a + t, b:b + t])
            if b != a:
                D[b:b + t, a:a + t] = D[a:a + t, b:b + t].T
    return D


def _sq_euclidean(X: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances in float64 as one GEMM, |a|^2 + |b|^2 - 2 a.b (scikit-learn's
    formula, the one apricot uses), on rows centred first so that an offset shared by all rows costs
    no digits; clamped at 0, the diagonal exactly 0, symmetric. On integer data whose squared norms
    stay below 2^52 the rows are not centred and every value is exact (integer sums)."""
    N, d = X.shape
    exact = bool(np.all(X == np.round(X))) and float(np.abs(X).max(initial=0.0)) ** 2 * max(d, 1) < 2.0 ** 52
    Y = X if exact else X - X.mean(0)
    sq = np.einsum("ij,ij->i", Y, Y)
    D = Y @ Y.T
    D *= -2.0
    D += np.add.outer(sq, sq)  # sq_i + sq_j: the same sum both ways round, so D stays symmetric
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D  # symmetric: numpy computes Y @ Y.T as one symmetric product (syrk; the tests check it)


def _cos(X: np.ndarray, centre: bool) -> np.ndarray:
    if centre:
        X = X - X.mean(1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    norms[norms == 0] = 1.0  # a zero row stays zero (scikit-learn's normalize)
    Xn = X / norms[:, None]
    return Xn @ Xn.T


def _distances(X: np.ndarray, metric: str) -> np.ndarray:
    """The pairwise distance matrix apricot asks scikit-learn for (squared for euclidean)."""
    if metric == "euclidean":
        return _sq_euclidean(X)
    if metric in ("cosine", "correlation"):
        D = np.clip(1.0 - _cos(X, metric == "correlation"), 0.0, 2.0)
        if metric == "cosine":
            np.fill_diagonal(D, 0.0)
        return D
    if metric in ("manhattan", "cityblock", "l1"):
        return _pairwise_tiles(X, lambda diff, out: np.abs(diff, out=diff).sum(-1, out=out))
    try:
        from sklearn.metrics import pairwise_distances  # optional: scikit-learn (the bench and compat extras)
    except ImportError:
        raise FastselError(f"metric {metric!r} needs scikit-learn (built in: euclidean, cosine, correlation, "
                           "manhattan, precomputed)") from None
    try:
        return np.asarray(pairwise_distances(X, metric=metric), dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise FastselError(f"metric {metric!r}: {e}".splitlines()[0]) from None


def _similarity(X: np.ndarray, metric: str, n_neighbors) -> np.ndarray:
    if metric == "precomputed":
        if X.shape[0] != X.shape[1]:
            raise FastselError("Precomputed similarity matrices must be square and symmetric, got shape "
                               f"{X.shape}")
        return X
    cos_like = metric in ("cosine", "correlation")
    if n_neighbors is None:
        D = _distances(X, metric)
        if cos_like:
            return 1.0 - (1.0 - (1.0 - D) ** 2)
        return np.subtract(D.max(), D, out=D)  # in place: D is ours
    k = n_neighbors
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise FastselError(f"n_neighbors must be a positive integer or None, got {n_neighbors!r}")
    N = X.shape[0]
    if k + 1 > N:
        raise FastselError(f"n_neighbors + 1 = {k + 1} neighbours (itself included) for {N} rows")
    if cos_like:
        D = 1.0 - (1.0 - _distances(X, metric)) ** 2
    elif metric == "euclidean":
        D = np.sqrt(_sq_euclidean(X))
    else:
        D = _distances(X, metric)
    nbr = np.argsort(D, axis=1, kind="stable")[:, :k + 1]  # ties to the lower index
    vals = np.take_along_axis(D, nbr, 1)
    vals = 1.0 - vals if cos_like else vals.max() - vals
    S = np.zeros((N, N))
    np.put_along_axis(S, nbr, vals, 1)
    return S


class _Queue:
    """apricot's priority queue: entries [weight, counter, item], the lowest weight first and, at equal
    weights, the earliest added; re-adding an item deletes its old entry."""

    def __init__(self, items, weights):
        self.counter = itertools.count()
        self.lookup = {}
        self.pq = []
        for item, weight in zip(items, weights):
            entry = [weight, next(self.counter), item]
            self.pq.append(entry)
            self.lookup[item] = entry
        heapq.heapify(self.pq)

    def add(self, item, weight):
        if item in self.lookup:
            self.lookup.pop(item)[-1] = None
        entry = [weight, next(self.counter), item]
        self.lookup[item] = entry
        heapq.heappush(self.pq, entry)

    def pop(self):
        while self.pq:
            weight, _, item = heapq.heappop(self.pq)
            if item is not None:
                del self.lookup[item]
                return weight, item
        return None


class _State:
    """The cover of the current subset and the picks (apricot's current_values / ranking / gains)."""

    def __init__(self, S: np.ndarray, init: np.ndarray):
        self.S = S
        self.cover = np.zeros(S.shape[1])
        for i in init:
            self.cover = np.maximum(S[i], self.cover)
        self.cover_sum = self.cover.sum()
        self.mask = np.zeros(S.shape[0], dtype=bool)
        self.mask[init] = True
        self.ranking, self.gains = [], []

    def idxs(self) -> np.ndarray:
        return np.nonzero(~self.mask)[0]

    def gain(self, j: int) -> float:
        return float(np.maximum(self.S[j], self.cover).sum() - self.cover_sum)

    def gains_of(self, idxs: np.ndarray) -> np.ndarray:
        out = np.empty(len(idxs))
        step = max(1, _BLOCK_BYTES // (8 * max(1, self.S.shape[1])))
        for a in range(0, len(idxs), step):
            out[a:a + step] = np.maximum(self.S[idxs[a:a + step]], self.cover).sum(1)
        return out - self.cover_sum

    def take(self, j: int, gain: float):
        self.cover = np.maximum(self.S[j], self.cover)
        self.cover_sum = self.cover.sum()
        self.ranking.append(int(j))
        self.gains.append(float(gain))
        self.mask[j] = True


def _naive(st: _State, k: float, cost: np.ndarray):
    spent = 0.0
    while spent < k:
        idxs = st.idxs()
        if len(idxs) == 0:
            return
        g = st.gains_of(idxs) / cost[idxs]
        for o in np.lexsort((np.arange(len(g)), -g)):
            best = idxs[o]
            if spent + cost[best] <= k:
                break
        else:
            return
        spent += cost[best]
        st.take(best, g[o] * cost[best])


def _lazy(st: _State, k: float, cost: np.ndarray):
    spent = 0.0
    idxs = st.idxs()
    pq = _Queue(idxs.tolist(), (-(st.gains_of(idxs) / cost[idxs])).tolist())
    while spent < k:
        best_gain, best = -math.inf, None
        while True:
            top = pq.pop()
            if top is None:
                return
            j = top[1]
            if spent + cost[j] > k:
                continue
            if best == j:
                break
            g = st.gain(j) / cost[j]
            pq.add(j, -g)
            if g > best_gain:
                best_gain, best = g, j
            elif g == best_gain and best_gain == 0.0:
                best_gain, best = g, j
                break
        spent += cost[best]
        st.take(best, best_gain * cost[best])


class FacilityLocationSelection:
    """Facility location selection with apricot's interface and numbers (see the module).

    Args:
        n_samples: rows to select (the budget when ``sample_cost`` is given).
        metric: "euclidean", "cosine", "correlation" / "corr", "precomputed", "manhattan", or another
            scikit-learn metric name (then scikit-learn computes the distances).
        initial_subset: indices or a boolean mask of rows already chosen, or None.
        optimizer: "lazy", "naive" or "two-stage".
        optimizer_kwds: for "two-stage": n_first_selections, optimizer1, optimizer2 ("naive" / "lazy").
        n_neighbors: keep each row's n_neighbors + 1 nearest similarities only (None: dense).
        reservoir: streaming (``partial_fit``) only: refused unless None.
        max_reservoir_size: streaming only: accepted and unused.
        n_jobs: accepted and unused (as in apricot).
        random_state: accepted and unused (no random optimizer is offered).
        verbose: accepted; no progress bar is drawn.

    Attributes:
        ranking: (n,) int64 picks in order (the initial subset left out).
        gains: (n,) float64 gain of each pick when it was added.
        subset: the picked rows of X (float64); (0, N) for a precomputed matrix, as apricot.
        subset_y: the labels of the picks when ``fit`` got y, else None.
    """

    def __init__(self, n_samples, metric="euclidean", initial_subset=None, optimizer="lazy",
                 optimizer_kwds={}, n_neighbors=None, reservoir=None, max_reservoir_size=1000,  # noqa: B006
                 n_jobs=1, random_state=None, verbose=False):
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Real) or n_samples <= 0:
            raise FastselError(f"n_samples must be a positive value, got {n_samples!r}")
        if initial_subset is not None and not isinstance(initial_subset, (list, tuple, np.ndarray)):
            raise FastselError("initial_subset must be a list, numpy array, or None")
        if not isinstance(metric, str):
            raise FastselError(f"metric must be a string (a scikit-learn metric name or 'precomputed'), got "
                               f"{type(metric).__name__}")
        if optimizer not in _OPTIMIZERS:
            raise FastselError(f"optimizer must be one of {', '.join(_OPTIMIZERS)} (apricot's exact greedy "
                               f"optimizers), got {optimizer!r}")
        if reservoir is not None:
            raise FastselError("reservoir: streaming selection (partial_fit) is not offered")
        if verbose not in (True, False):
            raise FastselError("verbosity must be True or False")
        self.n_samples = n_samples
        self.metric = metric.replace("corr", "correlation") if "correlation" not in metric else metric
        self.initial_subset = None if initial_subset is None else np.array(initial_subset)
        self.optimizer = optimizer
        self.optimizer_kwds = dict(optimizer_kwds or {})
        self.n_neighbors = n_neighbors
        self.reservoir = reservoir
        self.max_reservoir_size = max_reservoir_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.ranking = self.gains = self.subset = self.subset_y = None

    def _init_rows(self, N: int) -> np.ndarray:
        init = self.initial_subset
        if init is None:
            return np.zeros(0, dtype=np.int64)
        if init.ndim != 1:
            raise FastselError("When using facility location, the initial subset must be a one dimensional "
                               "array of indices (or a boolean mask)")
        if init.dtype == bool:
            if len(init) != N:
                raise FastselError(f"an initial_subset mask needs {N} values, got {len(init)}")
            init = np.nonzero(init)[0]
        if init.size and init.dtype.kind not in "iu":
            raise FastselError("initial_subset must hold integer row indices")
        init = init.astype(np.int64)
        if init.size and (init.min() < 0 or init.max() >= N):
            raise FastselError(f"initial_subset holds an index outside [0, {N})")
        if len(init) + self.n_samples > N:
            raise FastselError(f"n_samples + len(initial_subset) = {self.n_samples + len(init)} is more than "
                               f"the {N} rows")
        return init

    def fit(self, X, y=None, sample_weight=None, sample_cost=None):
        """Select ``n_samples`` rows of X by the greedy optimizer.

        Args:
            X: (N, d) rows, or the (N, N) similarity matrix with ``metric="precomputed"``.
            y: labels (kept for ``subset_y``; not used in the selection).
            sample_weight: ignored (as in apricot; kept for scikit-learn pipelines).
            sample_cost: (N,) positive costs: select under the knapsack budget ``n_samples``.

        Returns:
            FacilityLocationSelection: self.

        Raises:
            FastselError: bad X, metric, costs or initial subset; more rows asked than X has.
        """
        X = _as_matrix(X)
        S = _similarity(X, self.metric, self.n_neighbors)
        if S.min() < 0.0 and S.max() > 0.0:
            raise FastselError("the similarities cannot mix negative and positive values")
        N = S.shape[0]
        if self.n_samples > N:
            raise FastselError(f"Cannot select more examples ({self.n_samples}) than the {N} in the data set")
        init = self._init_rows(N)
        if sample_cost is None:
            cost = np.ones(N)
        else:
            cost = np.asarray(sample_cost, dtype=np.float64).reshape(-1)
            if cost.shape != (N,) or not np.isfinite(cost).all() or (cost <= 0).any():
                raise FastselError(f"sample_cost must hold {N} finite positive costs")
        st = _State(S, init)
        k = self.n_samples
        if self.optimizer == "naive":
            _naive(st, k, cost)
        elif self.optimizer == "lazy":
            _lazy(st, k, cost)
        else:
            kw = dict(self.optimizer_kwds)
            first = kw.pop("n_first_selections", 10)
            o1, o2 = kw.pop("optimizer1", "naive"), kw.pop("optimizer2", "lazy")
            run = {"naive": _naive, "lazy": _lazy}
            if kw or o1 not in run or o2 not in run:
                raise FastselError("two-stage takes n_first_selections and optimizer1 / optimizer2 in "
                                   "('naive', 'lazy') only")
            run[o1](st, min(first, k), cost)
            if k > first:
                run[o2](st, k - first, cost)
        self.ranking = np.array(st.ranking, dtype=np.int64)
        self.gains = np.array(st.gains, dtype=np.float64)
        self.subset = (np.zeros((0, X.shape[1])) if self.metric == "precomputed" else X[self.ranking])
        self.subset_y = None if y is None else np.asarray(y)[self.ranking]
        return self

    def transform(self, X, y=None, sample_weight=None):
        """The selected rows of X (and of y and sample_weight when given), in pick order.

        Args:
            X: the data the selection was fitted on (or rows aligned with it).
            y: labels, or None.
            sample_weight: weights, or None.

        Returns:
            X[ranking]; (X[ranking], y[ranking]) with y; (X[ranking], y[ranking] or None,
            sample_weight[ranking]) with sample_weight.
        """
        if self.ranking is None:
            raise FastselError("transform before fit: call fit first")
        r = self.ranking
        if sample_weight is not None:
            return X[r], (None if y is None else y[r]), sample_weight[r]
        return X[r] if y is None else (X[r], y[r])

    def fit_transform(self, X, y=None, sample_weight=None, sample_cost=None):
        """``fit`` then ``transform`` on the same data.

        Args:
            X: as for ``fit``.
            y: as for ``fit``.
            sample_weight: as for ``transform``.
            sample_cost: as for ``fit``.

        Returns:
            what ``transform`` returns.
        """
        return self.fit(X, y=y, sample_weight=sample_weight, sample_cost=sample_cost).transform(
            X, y=y, sample_weight=sample_weight)

    def partial_fit(self, X, y=None, sample_weight=None, sample_cost=None):
        """Streaming selection: not offered (apricot's sieve optimizer is approximate and random)."""
        raise FastselError("partial_fit (streaming selection) is not offered: use fit on the whole pool")
