"""Drop-in for torch_cluster's ``fps`` and ``knn``, backed by fastsel's exact kernels.

Switching is one changed import::

    from torch_cluster import fps, knn  ->  from fastsel.compat.torch_cluster import fps, knn

Both functions keep torch_cluster's signature (rusty1s/pytorch_cluster 1.6.x, ``fps`` with its
``ptr`` argument), defaults, return types and edge cases:

* ``fps`` picks ``ceil(deg * ratio)`` rows per set, computed as torch_cluster computes it: on the
  CPU the set sizes in float32 times the ratio tensor (a float ratio becomes a tensor of the
  input's dtype), on CUDA in the ratio's dtype. So 25 rows at ratio 0.6 give 16 picks on the CPU
  (0.6 is 0.6000000238 in float32) and float16 rows at 0.3 give 4 of 10 on the CPU, 3 on CUDA.
  A ratio above 1 asks for more picks than rows: once every distinct row is picked (the largest
  remaining distance is 0), torch_cluster's argmax takes the set's first row, again and again,
  and so does this module; the same rule covers duplicates.
* ``knn`` returns a (2, M) tensor ``[y_idx, x_idx]``, neighbours of each ``y`` row in ascending
  distance, fewer than k where a set of ``x`` holds fewer than k rows.

What differs (docs/compat.md has the table): random starts are drawn from torch's generator
(``torch.rand``, as torch_cluster's CUDA kernel does; its CPU kernel calls C's ``rand()``), so
a start follows ``torch.manual_seed`` but is not torch_cluster's CPU start; distances are exact
(re-checked in float64), not computed in the input's dtype, so near-ties and half-precision data
may order differently; ties go to the lowest row (torch_cluster's CPU k-d tree leaves their order
to the tree); ``cosine=True`` works on the CPU too (torch_cluster supports it on CUDA only);
NaN or infinite values raise :class:`fastsel.errors.FastselError`.

TorchScript: ``torch.jit.script(fps)`` and ``torch.jit.script(knn)`` compile, as torch_cluster's
do; the kernel call inside stays a Python call (``torch.jit.ignore``), so a scripted function
runs in a Python process but cannot be saved with ``torch.jit.save`` and loaded without Python.
"""

from typing import List, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import FastselError
from ..ops._inputs import as_tensor, check_int
from ..ops.nn import nn
from ..ops.sets import _run

__all__ = ["fps", "knn"]


def fps(src: Tensor, batch: Optional[Tensor] = None, ratio: Optional[Union[Tensor, float]] = None,
        random_start: bool = True, batch_size: Optional[int] = None,
        ptr: Optional[Union[Tensor, List[int]]] = None) -> Tensor:
    """Farthest-point sampling of every set of ``src``, as ``torch_cluster.fps``.

    Each set (rows with one ``batch`` id, or one ``ptr`` range) keeps ``ceil(deg * ratio)`` rows:
    the first is its first row (``random_start=False``) or a row drawn with ``torch.rand``; each
    next one is the row farthest from those already picked (exact distances, ties to the lowest
    row).

    Args:
        src: (N, F) point features (a 1-D tensor is N points of one feature).
        batch: (N,) sorted set id of each row; None: one set.
        ratio: share of each set to keep, a float or a tensor (0-dim, or one per set); None: 0.5.
        random_start: draw each set's first pick (else its first row).
        batch_size: number of sets B; None: ``batch.max() + 1``.
        ptr: set offsets (B + 1 ints, a list or a tensor) instead of ``batch``.

    Returns:
        Tensor: int64 global row numbers of the picks, set after set, on ``src``'s device.

    Raises:
        FastselError: ``batch`` of another length than ``src``, offsets outside ``src``, a ratio
            that gives a negative or non-finite count, NaN or infinite values in ``src``.
    """
    r: Optional[Tensor] = None
    if ratio is None:
        r = torch.tensor(0.5, dtype=src.dtype, device=src.device)
    elif isinstance(ratio, float):
        r = torch.tensor(ratio, dtype=src.dtype, device=src.device)
    else:
        r = ratio
    assert r is not None

    if ptr is not None:
        if isinstance(ptr, list):
            ptr_vec = torch.tensor(ptr, device=src.device)
        else:
            ptr_vec = ptr
    elif batch is not None:
        if src.size(0) != batch.numel():
            raise FastselError("batch must hold one set id per row of src")
        if batch_size is None:
            batch_size = int(batch.max()) + 1 if batch.numel() > 0 else 1
        deg = src.new_zeros(batch_size, dtype=torch.long)
        deg.scatter_add_(0, batch, torch.ones_like(batch))
        ptr_vec = deg.new_zeros(batch_size + 1)
        torch.cumsum(deg, 0, out=ptr_vec[1:])
    else:
        ptr_vec = torch.tensor([0, src.size(0)], device=src.device)
    return _fps(src, ptr_vec, r, random_start)


def knn(x: Tensor, y: Tensor, k: int, batch_x: Optional[Tensor] = None, batch_y: Optional[Tensor] = None,
        cosine: bool = False, num_workers: int = 1, batch_size: Optional[int] = None) -> Tensor:
    """The k nearest rows of ``x`` for each row of ``y``, as ``torch_cluster.knn``.

    Args:
        x: (N, F) rows searched (a 1-D tensor is N points of one feature).
        y: (M, F) query rows.
        k: neighbours per query row; a set of ``x`` with fewer rows gives fewer.
        batch_x: (N,) sorted set id of each ``x`` row; None: one set.
        batch_y: (M,) sorted set id of each ``y`` row; None: one set.
        cosine: rank by cosine distance (1 - cos) instead of Euclidean distance.
        num_workers: accepted for compatibility; fastsel's kernel uses torch's thread count.
        batch_size: number of sets B; None: one more than the largest id.

    Returns:
        Tensor: (2, total) int64 ``[y_idx, x_idx]``, each ``y`` row's neighbours in ascending
        distance (ties: lowest ``x`` row), query after query.

    Raises:
        FastselError: a batch vector of another length than its rows, several sets without both
            batch vectors, a negative k, a feature-count mismatch, NaN or infinite values, a zero
            row with ``cosine=True``.
    """
    if x.numel() == 0 or y.numel() == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)

    x = x.view(-1, 1) if x.dim() == 1 else x
    y = y.view(-1, 1) if y.dim() == 1 else y
    x, y = x.contiguous(), y.contiguous()

    if batch_size is None:
        batch_size = 1
        if batch_x is not None:
            if x.size(0) != batch_x.numel():
                raise FastselError("batch_x must hold one set id per row of x")
            batch_size = int(batch_x.max()) + 1
        if batch_y is not None:
            if y.size(0) != batch_y.numel():
                raise FastselError("batch_y must hold one set id per row of y")
            batch_size = max(batch_size, int(batch_y.max()) + 1)
    if batch_size <= 0:
        raise FastselError(f"batch_size must be positive, got {batch_size}")

    ptr_x: Optional[Tensor] = None
    ptr_y: Optional[Tensor] = None
    if batch_size > 1:
        if batch_x is None or batch_y is None:
            raise FastselError("several sets need both batch_x and batch_y")
        arange = torch.arange(batch_size + 1, device=x.device)
        ptr_x = torch.bucketize(arange, batch_x)
        ptr_y = torch.bucketize(arange, batch_y)
    return _knn(x, y, ptr_x, ptr_y, k, cosine)


def _offsets(ptr: Tensor, rows: int) -> List[int]:
    if ptr.dim() != 1 or ptr.numel() < 2:
        raise FastselError(f"ptr must be 1-D with B + 1 >= 2 offsets, got shape {tuple(ptr.shape)}")
    p = [int(v) for v in ptr.tolist()]
    if p[0] < 0 or p[-1] > rows or any(b < a for a, b in zip(p, p[1:])):
        raise FastselError(f"ptr must rise within [0, {rows}] (the rows of src), got {p}")
    return p


@torch.jit.ignore
def _fps(src: Tensor, ptr: Tensor, r: Tensor, random_start: bool) -> Tensor:
    dev = src.device
    if src.dim() == 0:
        raise FastselError("src must have at least one dimension (N, F)")
    p = _offsets(ptr, src.size(0))
    B = len(p) - 1
    deg = torch.tensor([b - a for a, b in zip(p, p[1:])], dtype=torch.long)
    # the pick counts exactly as torch_cluster computes them (csrc/cpu/fps_cpu.cpp, cuda/fps_cuda.cu)
    if dev.type == "cuda":
        r = r.to(dev)
        cnt = deg.to(dev).to(r.dtype) * r
    else:
        r = r.cpu()
        cnt = deg.to(torch.float32) * r
    if cnt.dim() > 1 or cnt.numel() != B:
        raise FastselError(f"ratio must be a number or hold one value per set ({B}), got shape "
                           f"{tuple(r.shape)}")
    if not bool(torch.isfinite(cnt).all()):
        raise FastselError(f"ratio must be finite, got {r.tolist()}")
    counts = cnt.ceil().to(torch.long).cpu()
    if bool((counts < 0).any()):
        raise FastselError(f"ratio must not be negative, got {r.tolist()}")
    if random_start and B:  # torch_cluster's CUDA draw: floor(rand * deg), in the input's dtype
        u = torch.rand(B, dtype=src.dtype if src.is_floating_point() else torch.float32, device=dev)
        starts = (u * deg.to(dev).to(r.dtype)).to(torch.long).cpu()
        starts = torch.minimum(starts, (deg - 1).clamp(min=0)).clamp(min=0)
    else:
        starts = torch.zeros(B, dtype=torch.long)
    n = torch.minimum(counts, deg)  # beyond a set's rows every pick is its first row (see module doc)
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=dev)
    # the output laid out with NumPy (torch.repeat_interleave with a tensor of repeats costs milliseconds
    # on a busy machine)
    cl, nl = counts.tolist(), n.tolist()
    first = np.asarray(p[:-1], dtype=np.int64)
    if int(sum(nl)):
        rows = as_tensor(src.reshape(src.size(0), -1), "src")
        idx, dist = _run(rows, p, nl, starts.tolist(), "auto", "auto")
        idx = idx.cpu().numpy()
        # a pick at distance 0: only copies of picked rows remain, and torch_cluster's argmax takes
        # the set's first row
        zero = (dist == 0).cpu().numpy()
        if zero.any():
            idx = np.where(zero, np.repeat(first, nl), idx)
        if cl == nl:
            return torch.from_numpy(idx).to(dev)
        out = np.repeat(first, cl)
        o = a = 0
        for c, k in zip(cl, nl):
            out[o:o + k] = idx[a:a + k]
            o, a = o + c, a + k
    else:
        out = np.repeat(first, cl)
    out = torch.from_numpy(out)
    return out.to(dev)


@torch.jit.ignore
def _knn(x: Tensor, y: Tensor, ptr_x: Optional[Tensor], ptr_y: Optional[Tensor], k: int,
         cosine: bool) -> Tensor:
    dev = x.device
    k = check_int(k, "k")
    if k < 0:
        raise FastselError(f"k must be >= 0, got {k}")
    if x.dim() != 2 or y.dim() != 2 or x.size(1) != y.size(1):
        raise FastselError(f"x and y must be 2-D with the same features, got shapes {tuple(x.shape)} "
                           f"and {tuple(y.shape)}")
    if ptr_x is None or ptr_y is None:
        px, py = [0, x.size(0)], [0, y.size(0)]
    else:
        px, py = _offsets(ptr_x, x.size(0)), _offsets(ptr_y, y.size(0))
    largest = max(b - a for a, b in zip(px, px[1:]))
    k = min(k, largest)
    if k == 0:
        return torch.empty(2, 0, dtype=torch.long, device=dev)
    # rows outside every set (offsets not starting at 0 or ending short) are searched by no one
    xs, ys = x[px[0]:px[-1]], y[py[0]:py[-1]]
    if xs.size(0) == 0 or ys.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long, device=dev)
    res = nn(ys, xs, k, ptr=[v - py[0] for v in py], ref_ptr=[v - px[0] for v in px], cosine=cosine)
    idx = res.indices.cpu()
    keep = idx >= 0
    rows = (torch.arange(ys.size(0))[:, None] + py[0]).expand(-1, k)[keep]
    cols = idx[keep] + px[0]
    return torch.stack([rows, cols]).to(dev)
