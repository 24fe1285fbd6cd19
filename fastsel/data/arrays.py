"""uint8 image arrays in .npy / .npz files (``images`` [+ ``labels``] in a .npz)."""
from __future__ import annotations

import numpy as np

from ..io import DataError, read_arrays
from ._files import Dataset


def load_array(path: str) -> Dataset:
    """Images (and labels) of a .npy / .npz, recognised by content whatever the file is named;
    truncated, pickled or object arrays, no images and zero-size images are one DataError line."""
    return from_arrays(read_arrays(path, ("images", "labels")), path)


def from_arrays(arrs: dict, path: str) -> Dataset:
    """:func:`load_array` on arrays already read (``read_arrays``): uint8 (N, H, W, C), labels."""
    if "" in arrs:  # a .npy
        x = arrs[""]
        y = np.zeros(len(x), np.int64)
    else:
        if "images" not in arrs:
            raise DataError(f"{path}: needs an array named 'images' (and optionally 'labels')")
        x = arrs["images"]
        y = arrs["labels"] if "labels" in arrs else np.zeros(len(x), np.int64)
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise DataError(f"{path}: images must be uint8 (N, H, W[, C]), got {x.dtype} {x.shape}")
    if np.ndim(y) != 1 or len(y) != len(x) or np.asarray(y).dtype.kind not in "iu":
        raise DataError(f"{path}: 'labels' must be {len(x)} integers, one per image, got {np.asarray(y).dtype} "
                        f"{np.shape(y)}")
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] not in (1, 3) and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    return Dataset(np.ascontiguousarray(x), np.asarray(y, dtype=np.int64), path)
