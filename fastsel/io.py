"""Reading feature files safely and writing outputs atomically.

Inputs are never unpickled (``allow_pickle=False``); ``.npy`` files are
memory-mapped. Outputs go to a temporary file in the target folder and are
renamed into place, so a crash never leaves a half-written file; they get the
permissions the umask gives a new file.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import DataError, FastselError, UsageProblem

__all__ = ["DataError", "FastselError", "UsageProblem", "load_features", "check_features", "atomic_path", "save_npy",
           "save_json", "save_text", "check_distinct", "file_kind"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def file_kind(path: str) -> str:
    """"npy" or "npz" by the file's first bytes (not its name); "" when neither."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    return ""


def load_features(path: str, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Load a 2-D feature array from ``.npy`` (memory-mapped) or ``.npz`` (``key``, or its only array),
    recognised by content, whatever the file is named.

    Checks shape and dtype here; NaN/Inf are caught by :func:`fastsel.ops.as_tensor` when the
    rows are used (one streaming pass, and a sharded run reads only its own rows).
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        kind = file_kind(path)
        if kind == "npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None:
                    if len(names) != 1:
                        raise DataError(f"{path}: holds arrays {names}; choose one with --key")
                    key = names[0]
                if key not in names:
                    raise DataError(f"{path}: no array named {key!r} (has {names})")
                arr = z[key]
        elif kind == "npy":
            if key is not None:
                raise UsageProblem(f"--key names an array inside a .npz file; {path} is a .npy file")
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        else:
            raise DataError(f"{path}: not a readable .npy/.npz feature file (its first bytes are neither)")
    except (DataError, UsageProblem):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in msg.lower() or "python objects" in msg.lower():
            msg = "holds Python objects (pickled data is never loaded)"
        raise DataError(f"{path}: not a readable .npy/.npz feature file ({msg})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: not a single array")
    check_features(arr, path)
    if not arr.dtype.isnative:  # big-endian data is valid: read it in the machine's byte order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_features(arr: np.ndarray, name: str = "features") -> None:
    """Dtype and shape checks with one clear message each."""
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{name}: features must be numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise DataError(f"{name}: dtype {arr.dtype} (float{8 * arr.dtype.itemsize}) is not supported; "
                        "convert it to float64")
    if arr.ndim != 2:
        raise DataError(f"{name}: features must be a 2-D array (N, d), got {arr.ndim}-D with shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name}: features are empty (shape {arr.shape})")


def check_distinct(outputs, inputs) -> None:
    """Refuse (usage error) an output path that names the same file as an input: same inode,
    through symlinks and relative paths, or the same resolved path for a file not yet written."""
    ins = [p for p in inputs if p]
    for o in outputs:
        if not o:
            continue
        ro = os.path.realpath(o)
        for i in ins:
            same = ro == os.path.realpath(i)
            if not same and os.path.exists(o) and os.path.exists(i):
                same = os.path.samefile(o, i)
            if same:
                raise UsageProblem(f"output {o} is the input {i}: choose another output path")


def check_output_path(path: str) -> None:
    """One clear line for an output path that cannot be a file (trailing slash, a folder)."""
    if path.endswith(os.sep) or os.path.isdir(path):
        raise UsageProblem(f"output {path} names a folder; give a file path")


def check_outputs(outputs, inputs=()) -> None:
    """Before any work: every output path can be written (a file path, in a folder that exists and
    is writable) and none of them is an input."""
    for o in outputs:
        if not o:
            continue
        check_output_path(o)
        d = os.path.dirname(os.path.abspath(o))
        if not os.path.isdir(d):
            raise DataError(f"cannot write {o}: folder {d} does not exist")
        if not os.access(d, os.W_OK):
            raise DataError(f"cannot write {o}: folder {d} is not writable")
    check_distinct(outputs, inputs)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it into place only on success, with the
    permissions a new file gets under the umask (mkstemp's 0600 would not follow it)."""
    check_output_path(path)
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    except OSError as e:
        raise DataError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:  # disk full, file-size limit, read-only file system: the old file stays
        raise DataError(f"cannot write {path}: {e.strerror or e}") from None
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
