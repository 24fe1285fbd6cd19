"""Drop-in for pytorch3d's ``sample_farthest_points`` and ``knn_points``, backed by fastsel's
exact kernels.

Switching is one changed import::

    from pytorch3d.ops import sample_farthest_points, knn_points
        ->  from fastsel.compat.pytorch3d import sample_farthest_points, knn_points

Both keep pytorch3d's signature (``pytorch3d.ops``, 0.7.x), defaults, return types and padding:

* ``sample_farthest_points`` returns ``(sampled_points, indices)`` of shape (N, max K, D) and
  (N, max K): a cloud with fewer than K points (or a smaller K of its own) pads its indices with
  -1 and its points with 0.0. As pytorch3d's kernel does, the first slot of every cloud holds its
  start (row 0 unless ``random_start_point``) even where that cloud is empty or its K is 0, and
  once only copies of picked points remain (the largest remaining distance is 0) every further
  pick is row 0. Points are converted to float32, as pytorch3d does; the sampled points keep the
  autograd graph (a gather).
* ``knn_points`` returns ``_KNN(dists, idx, knn)``: squared Euclidean distances (``norm=2``) or
  L1 distances (``norm=1``), ascending; idx and dists are 0 past a cloud's ``lengths2`` and for
  rows past its ``lengths1``; ``knn`` (with ``return_nn``) is 0.0 past ``lengths2``. The distances
  are recomputed from the gathered points, so they carry gradients to both clouds.

What differs (docs/compat.md has the table): neighbours and picks come from exact distances
(re-checked in float64) where pytorch3d ranks float32 sums, so near-ties may order differently
(exact ties go to the lowest index, as in pytorch3d); ``version`` is accepted and ignored (only
pytorch3d's CUDA kernels have versions); float64 and float16 clouds work in ``knn_points``
(pytorch3d's CPU kernel takes float32 only); NaN or infinite values raise
:class:`fastsel.errors.FastselError`.
"""
from __future__ import annotations

from collections import namedtuple
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import FastselError
from ..ops._inputs import as_tensor, check_int
from ..ops.nn import nn
from ..ops.sets import _run

__all__ = ["sample_farthest_points", "knn_points", "knn_gather", "masked_gather"]

_KNN = namedtuple("KNN", "dists idx knn")


def masked_gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``points`` at ``idx`` (N, K) or (N, P', K), with 0.0 where an index is -1.

    Args:
        points: (N, P, D) points.
        idx: (N, K) or (N, P', K) int64 indices into each cloud, -1 for padding.

    Returns:
        torch.Tensor: (N, K, D) or (N, P', K, D) gathered points, 0.0 at padding.

    Raises:
        FastselError: a batch-size mismatch or an index tensor that is not 2-D or 3-D.
    """
    if len(idx) != len(points):
        raise FastselError("points and idx must have the same batch dimension")
    N, P, D = points.shape
    if idx.dim() == 3:
        K = idx.shape[2]
        idx_e = idx[..., None].expand(-1, -1, -1, D)
        src = points[:, :, None, :].expand(-1, -1, K, -1)
    elif idx.dim() == 2:
        idx_e = idx[..., None].expand(-1, -1, D)
        src = points
    else:
        raise FastselError(f"idx format is not supported {tuple(idx.shape)}")
    pad = idx_e.eq(-1)
    out = src.gather(1, idx_e.masked_fill(pad, 0))
    return out.masked_fill(pad, 0.0)


def sample_farthest_points(points: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                           K: Union[int, List, torch.Tensor] = 50,
                           random_start_point: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Farthest-point sampling of K points from each cloud, as pytorch3d's.

    Args:
        points: (N, P, D) batch of clouds.
        lengths: (N,) number of valid points of each cloud; None: every cloud has P.
        K: samples per cloud: an int, or a list / tensor of N ints.
        random_start_point: start each cloud at a random point (torch's generator, drawn as
            pytorch3d draws it) instead of its point 0.

    Returns:
        tuple: ``sampled_points`` (N, max K, D) float32, 0.0 past a cloud's picks, and
        ``indices`` (N, max K) int64, -1 past a cloud's picks (at most its length).

    Raises:
        FastselError: ``lengths`` or ``K`` of another batch size than ``points``, a length
            above P, NaN or infinite values among the valid points.
    """
    if points.dim() != 3:
        raise FastselError(f"points must be (N, P, D), got shape {tuple(points.shape)}")
    N, P, D = points.shape
    device = points.device
    constant_length = lengths is None
    if lengths is None:
        lengths = torch.full((N,), P, dtype=torch.int64, device=device)
    else:
        if lengths.shape != (N,):
            raise FastselError("points and lengths must have same batch dimension.")
        if N and lengths.max() > P:
            raise FastselError("A value in lengths was too large.")
    if isinstance(K, (int, np.integer)) and not isinstance(K, bool):
        K = torch.full((N,), int(K), dtype=torch.int64, device=device)
    elif isinstance(K, (list, tuple)):
        K = torch.tensor(K, dtype=torch.int64, device=device)
    if not isinstance(K, torch.Tensor) or K.dim() != 1 or K.shape[0] != N:
        raise FastselError("K and points must have the same batch dimension")
    if N == 0:
        raise FastselError("points holds no clouds (N = 0)")
    if points.dtype != torch.float32:
        points = points.to(torch.float32)
    lengths = lengths.to(torch.int64)
    K = K.to(torch.int64)

    if random_start_point:  # the same draws as pytorch3d, so torch.manual_seed repeats them
        if constant_length:
            start_idxs = torch.randint(high=P, size=(N,), device=device)
        else:
            start_idxs = (lengths * torch.rand(lengths.size(), device=device)).to(torch.int64)
    else:
        start_idxs = torch.zeros_like(lengths)

    with torch.no_grad():
        idx = _farthest(points.detach(), lengths.cpu(), K.cpu(), start_idxs.cpu()).to(device)
    return masked_gather(points, idx), idx


def _farthest(points: torch.Tensor, lengths: torch.Tensor, K: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    # the clouds' valid rows are prefixes: packed set after set, they go to greedy_sets' kernel (``_run``)
    # directly, with the index glue in Python / NumPy (small torch ops cost milliseconds on a busy machine)
    N, P, D = points.shape
    Kl = K.tolist()
    max_k = max(Kl)
    if max_k < 0:
        raise FastselError(f"K must not be negative, got {Kl}")
    out = np.full((N, max_k), -1, dtype=np.int64)
    if max_k == 0:
        return torch.from_numpy(out)
    lens = [max(0, v) for v in lengths.tolist()]
    st = [max(0, min(s, max(0, ln - 1))) for s, ln in zip(starts.tolist(), lens)]
    out[:, 0] = st  # pytorch3d writes every cloud's start, even an empty one's
    n = [max(0, min(ln, k)) for ln, k in zip(lens, Kl)]
    sel = [b for b in range(N) if n[b] > 0]  # clouds with picks (an empty cloud has no valid start)
    if not sel:
        return torch.from_numpy(out)
    x = points if len(sel) == N else points[torch.tensor(sel, device=points.device)]
    flat = as_tensor(x.reshape(len(sel) * P, D), "x")  # every row of the clouds checked, as greedy_sets
    if all(lens[b] == P for b in sel):
        rows = flat
    else:
        keep = torch.arange(P)[None, :] < torch.tensor([lens[b] for b in sel])[:, None]
        rows = flat[keep.reshape(-1).to(flat.device)]
    ptr = [0]
    for b in sel:
        ptr.append(ptr[-1] + lens[b])
    ns = [n[b] for b in sel]
    idx, dist = _run(rows, ptr, ns, [st[b] for b in sel], "auto", "auto")
    idx = idx.cpu().numpy() - np.repeat(np.asarray(ptr[:-1], dtype=np.int64), ns)
    # a pick at distance 0: only copies of picked points remain, and pytorch3d's max_element takes point 0
    idx[(dist == 0).cpu().numpy()] = 0
    o = 0
    for b, k in zip(sel, ns):
        out[b, :k] = idx[o:o + k]
        o += k
    out[:, 0] = st  # again for clouds with no picks of their own (n = 0)
    return torch.from_numpy(out)


def knn_points(p1: torch.Tensor, p2: torch.Tensor, lengths1: Optional[torch.Tensor] = None,
               lengths2: Optional[torch.Tensor] = None, norm: int = 2, K: int = 1, version: int = -1,
               return_nn: bool = False, return_sorted: bool = True) -> _KNN:
    """The K nearest points of ``p2[n]`` for every point of ``p1[n]``, as pytorch3d's.

    Args:
        p1: (N, P1, D) query clouds.
        p2: (N, P2, D) searched clouds.
        lengths1: (N,) valid points of each ``p1`` cloud; None: P1.
        lengths2: (N,) valid points of each ``p2`` cloud; None: P2.
        norm: 2 (squared Euclidean distances) or 1 (L1 distances).
        K: neighbours per point.
        version: accepted for compatibility and ignored.
        return_nn: also return the neighbours' coordinates.
        return_sorted: accepted; the neighbours always come in ascending distance.

    Returns:
        _KNN: ``dists`` (N, P1, K), ``idx`` (N, P1, K) int64 into ``p2[n]`` (both 0 past
        ``lengths2[n]`` and for rows past ``lengths1[n]``) and ``knn`` (N, P1, K, D) or None.

    Raises:
        FastselError: mismatched batch or point dimensions, a norm other than 1 or 2, lengths
            above the cloud size, a negative K, NaN or infinite values among the valid points.
    """
    if p1.dim() != 3 or p2.dim() != 3:
        raise FastselError(f"p1 and p2 must be (N, P, D), got shapes {tuple(p1.shape)} and {tuple(p2.shape)}")
    if p1.shape[0] != p2.shape[0]:
        raise FastselError("pts1 and pts2 must have the same batch dimension.")
    if p1.shape[2] != p2.shape[2]:
        raise FastselError("pts1 and pts2 must have the same point dimension.")
    if not (norm == 1 or norm == 2):
        raise FastselError("Support for 1 or 2 norm.")
    K = check_int(K, "K")
    if K < 0:
        raise FastselError(f"K must not be negative, got {K}")
    p1, p2 = p1.contiguous(), p2.contiguous()
    N, P1, D = p1.shape
    P2 = p2.shape[1]
    dev = p1.device
    if lengths1 is None:
        lengths1 = torch.full((N,), P1, dtype=torch.int64, device=dev)
    if lengths2 is None:
        lengths2 = torch.full((N,), P2, dtype=torch.int64, device=dev)
    l1 = lengths1.to(torch.int64).cpu().clamp(min=0)
    l2 = lengths2.to(torch.int64).cpu().clamp(min=0)
    if N and (int(l1.max()) > P1 or int(l2.max()) > P2):
        raise FastselError(f"lengths1 / lengths2 must not exceed P1 = {P1} / P2 = {P2}")
    with torch.no_grad():
        idx = _knn_idx(p1.detach(), p2.detach(), l1, l2, norm, K).to(dev)
    valid = ((torch.arange(K)[None, :] < l2[:, None])[:, None, :]
             & (torch.arange(P1)[None, :] < l1[:, None])[:, :, None]).to(dev)
    nbrs = p2.gather(1, idx.reshape(N, P1 * K, 1).expand(-1, -1, D)).reshape(N, P1, K, D)
    diff = p1[:, :, None, :] - nbrs
    dists = (diff * diff).sum(-1) if norm == 2 else diff.abs().sum(-1)
    dists = torch.where(valid, dists, torch.zeros((), dtype=dists.dtype, device=dev))
    knn = None
    if return_nn:  # as pytorch3d's knn_gather: 0.0 past lengths2 only
        pad = (torch.arange(K)[None, :] >= l2[:, None]).to(dev)[:, None, :, None]
        knn = nbrs.masked_fill(pad, 0.0)
    return _KNN(dists=dists, idx=idx, knn=knn)


def knn_gather(x: torch.Tensor, idx: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x[n, idx[n, l, k]]`` for every n, l, k, with 0.0 where k >= ``lengths[n]``, as pytorch3d's.

    Args:
        x: (N, M, U) features to gather.
        idx: (N, L, K) int64 indices, e.g. ``knn_points(...).idx``.
        lengths: (N,) valid rows of each ``x[n]``; None: M.

    Returns:
        torch.Tensor: (N, L, K, U) gathered features.

    Raises:
        FastselError: ``x`` and ``idx`` of different batch sizes.
    """
    N, M, U = x.shape
    _N, L, K = idx.shape
    if N != _N:
        raise FastselError("x and idx must have same batch dimension.")
    if lengths is None:
        lengths = torch.full((N,), M, dtype=torch.int64, device=x.device)
    out = x.gather(1, idx.reshape(N, L * K, 1).expand(-1, -1, U)).reshape(N, L, K, U)
    pad = (lengths[:, None] <= torch.arange(K, device=x.device)[None])[:, None, :, None]
    return out.masked_fill(pad, 0.0)


def _knn_idx(p1, p2, l1, l2, norm, K):
    N, P1, _ = p1.shape
    idx = torch.zeros((N, P1, K), dtype=torch.int64)
    k_eff = min(K, int(l2.max()) if N else 0)
    if k_eff == 0 or int(l1.sum()) == 0:
        return idx
    if norm == 1:  # L1: brute force in float64, a stable sort keeps ties at the lowest index
        for n in range(N):
            a, b = int(l1[n]), int(l2[n])
            if a and b:
                q, r = as_tensor(p1[n, :a], "p1"), as_tensor(p2[n, :b], "p2")
                d = torch.cdist(q.double(), r.double(), p=1)
                kb = min(K, b)
                idx[n, :a, :kb] = torch.sort(d, dim=1, stable=True).indices[:, :kb].cpu()
        return idx
    q = torch.cat([p1[n, :int(l1[n])] for n in range(N)])
    r = torch.cat([p2[n, :int(l2[n])] for n in range(N)])
    if r.shape[0] == 0:
        return idx
    qp = [0] + torch.cumsum(l1, 0).tolist()
    rp = [0] + torch.cumsum(l2, 0).tolist()
    res = nn(q, r, k_eff, ptr=qp, ref_ptr=rp)
    got = res.indices.cpu()
    local = got - torch.repeat_interleave(torch.tensor(rp[:-1]), l1)[:, None]
    local = torch.where(got >= 0, local, torch.zeros_like(local))
    rows = torch.cat([torch.arange(int(l1[n])) + n * P1 for n in range(N)])
    idx.view(N * P1, K)[rows, :k_eff] = local
    return idx
