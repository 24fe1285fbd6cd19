"""Reading feature files safely and writing outputs atomically.

Inputs are never unpickled (``allow_pickle=False``); ``.npy`` files are
memory-mapped. Outputs go to a temporary file in the target folder and are
renamed into place, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np


class DataError(ValueError):
    """A problem with the contents of an input file (exit status 1 in the CLI)."""


def load_features(path: str, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Load a 2-D feature array from ``.npy`` (memory-mapped) or ``.npz`` (``key``, or its only array).

    Checks shape and dtype here; NaN/Inf are caught by :func:`fastsel.ops.as_tensor` when the
    rows are used (one streaming pass, and a sharded run reads only its own rows).
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None:
                    if len(names) != 1:
                        raise DataError(f"{path}: holds arrays {names}; choose one with --key")
                    key = names[0]
                if key not in names:
                    raise DataError(f"{path}: no array named {key!r} (has {names})")
                arr = z[key]
        else:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in msg.lower() or "python objects" in msg.lower():
            msg = "holds Python objects (pickled data is never loaded)"
        raise DataError(f"{path}: not a readable .npy/.npz feature file ({msg})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: not a single array")
    check_features(arr, path)
    return arr


def check_features(arr: np.ndarray, name: str = "features") -> None:
    """Dtype and shape checks with one clear message each."""
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{name}: features must be numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{name}: features must be a 2-D array (N, d), got {arr.ndim}-D with shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name}: features are empty (shape {arr.shape})")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npy(path: str, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def save_json(path: str, obj) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.write("\n")


def save_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
