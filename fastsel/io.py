"""Reading feature files safely and writing outputs atomically.

Inputs are never unpickled (``allow_pickle=False``); ``.npy`` files are
memory-mapped. Outputs go to a temporary file in the target folder and are
renamed into place, so a crash never leaves a half-written file; they get the
permissions the umask gives a new file.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
import zipfile

try:
    import resource
except ImportError:  # not on Windows
    resource = None

import numpy as np

from .errors import DataError, FastselError, UsageProblem

__all__ = ["DataError", "FastselError", "UsageProblem", "load_features", "check_features", "atomic_path", "save_npy",
           "save_json", "save_text", "check_distinct", "same_file", "file_kind", "check_input_file", "read_arrays",
           "npz_names", "reading", "kind_checked", "folder_lock", "npy_header"]

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


_CONVERT_PT = ("fastsel reads .npy/.npz only (a pickle is never loaded); convert it once, e.g. "
               "np.save('x.npy', torch.load('x.pt', weights_only=True).numpy())")


def check_input_file(path: str) -> None:
    """One clear line for an input that is missing, not a regular file (a pipe such as
    /dev/stdin, a device such as /dev/null: inputs are memory-mapped or read twice) or empty."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not a .npy/.npz file")
    what = _not_regular(path)
    if what:
        raise DataError(f"{path}: is {what}, not a regular file: fastsel reads its inputs from files "
                        "(save the data to a .npy file first)")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: is empty (0 bytes)")


def _torch_file(path: str) -> bool:
    """A torch.save file: a zip holding ``<name>/data.pkl``."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


@contextlib.contextmanager
def reading(path: str):
    """Turn numpy's and zipfile's complaints about an unreadable .npy/.npz into one DataError line
    (never a traceback; pickled data is refused, never loaded)."""
    try:
        yield
    except FastselError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, TypeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in msg.lower() or "python objects" in msg.lower() or "object arrays" in msg.lower():
            raise DataError(f"{path}: holds Python objects (pickled data is never loaded)") from None
        raise DataError(f"{path}: not a readable .npy/.npz file ({msg})") from None


def kind_checked(path: str) -> str:
    """file_kind, refusing a torch.save or pickle file with the way to convert it."""
    check_input_file(path)
    with reading(path):
        kind = file_kind(path)
        with open(path, "rb") as f:
            head = f.read(2)
    if kind == "npz" and _torch_file(path):
        raise DataError(f"{path}: a PyTorch file (torch.save): {_CONVERT_PT}")
    if kind == "" and head[:1] == b"\x80":
        raise DataError(f"{path}: a Python pickle (e.g. torch.save's legacy format): {_CONVERT_PT}")
    return kind


def npz_names(path: str) -> list:
    """The array names in a .npz (recognised by content); [] for a .npy."""
    kind = kind_checked(path)
    if kind != "npz":
        return []
    with reading(path), np.load(path, allow_pickle=False) as z:
        return list(z.keys())


def read_arrays(path: str, keys=None) -> dict:
    """The named arrays of a .npz (all when ``keys`` is None; absent names are left out), or
    {"": array} for a .npy -- recognised by content, whatever the file is named; one DataError line
    for a truncated, pickled or non-array file."""
    kind = kind_checked(path)
    if kind == "":
        raise DataError(f"{path}: not a readable .npy/.npz file (its first bytes are neither)")
    with reading(path):
        if kind == "npy":
            out = {"": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in z.keys() if keys is None or k in keys}
    for k, v in out.items():
        if v.dtype.kind == "O" or v.dtype.hasobject:
            raise DataError(f"{path}: holds Python objects (pickled data is never loaded)")
    return out


def load_features(path: str, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Load a 2-D feature array from ``.npy`` (memory-mapped) or ``.npz`` (``key``, or its only array),
    recognised by content, whatever the file is named.

    Checks shape and dtype here; NaN/Inf are caught by :func:`fastsel.ops._inputs.as_tensor` when the
    rows are used (one streaming pass, and a sharded run reads only its own rows).
    """
    kind = kind_checked(path)
    try:
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


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same resolved path (through symlinks and relative paths,
    also for a file not yet written) or the same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def check_distinct(outputs, inputs) -> None:
    """Refuse (usage error) an output path that names the same file as an input, or as another
    output of the same command: same inode, through symlinks and relative paths, or the same
    resolved path for a file not yet written."""
    ins = [p for p in inputs if p]
    outs = [o for o in outputs if o]
    for k, o in enumerate(outs):
        for i in ins:
            if same_file(o, i):
                raise UsageProblem(f"output {o} is the input {i}: choose another output path")
        for o2 in outs[:k]:
            if same_file(o, o2):
                raise UsageProblem(f"outputs {o2} and {o} are the same file: give two different paths")


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(path: str) -> str:
    """What ``path`` is when it exists and is not a regular file or folder ("" otherwise)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_output_path(path: str) -> None:
    """One clear line for an output path that cannot be a file (trailing slash, a folder), that
    exists and is not a regular file (a FIFO, a device such as /dev/null or /dev/stdout: an
    atomic write would replace it with a regular file, so it is refused), or whose name is
    longer than the file system allows."""
    if path.endswith(os.sep) or os.path.isdir(path):
        raise UsageProblem(f"output {path} names a folder; give a file path")
    what = _not_regular(path)
    if what:
        raise UsageProblem(f"output {path} is {what}, not a regular file: fastsel writes its outputs to "
                           "regular files only (temp file + rename); give a file path")
    target = os.path.realpath(path)
    name = os.path.basename(target)
    try:
        limit = os.pathconf(os.path.dirname(target), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(name)) > limit:
        raise UsageProblem(f"output {path}: file name too long ({len(os.fsencode(name))} bytes; "
                           f"this file system allows {limit})")


def check_outputs(outputs, inputs=()) -> None:
    """Before any work: every output path can be written (a file path, in a folder that exists and
    is writable), none of them is an input and no two are the same file."""
    for o in outputs:
        if not o:
            continue
        check_output_path(o)
        d = os.path.dirname(os.path.realpath(o))
        if not os.path.isdir(d):
            raise DataError(f"cannot write {o}: folder {d} does not exist")
        if not os.access(d, os.W_OK):
            raise DataError(f"cannot write {o}: folder {d} is not writable")
    check_distinct(outputs, inputs)


def npy_header(path: str):
    """(shape, dtype) of a .npy file, from its header only (recognised by content); None for a file that
    is not a readable .npy (a missing one, a .npz, text, a truncated header)."""
    try:
        with open(path, "rb") as f:
            if not f.read(6).startswith(_NPY_MAGIC):
                return None
            f.seek(0)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        return tuple(shape), dtype
    except (OSError, ValueError, EOFError):
        return None


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _write_failure(path: str, target: str, e: OSError) -> DataError:
    """One line for a failed write: what the file system said (a full disk and a file-size limit
    named as such, also when numpy reports only a short write) and whether an earlier file stays."""
    why = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        why = "no space left on device"
    elif e.errno == errno.EFBIG:
        why = "the file-size limit was hit (File too large)"
    elif e.errno is None and "requested and" in str(e):  # numpy's short write: find out why
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
        try:
            full = os.statvfs(os.path.dirname(target)).f_bavail == 0
        except OSError:
            full = False
        if full:
            why = "no space left on device"
        elif resource and soft != resource.RLIM_INFINITY:
            why = f"the file-size limit (ulimit -f: {soft} bytes) was hit"
        else:
            why = f"a short write ({e}): is the disk full?"
    kept = f"the earlier {path} is intact" if os.path.exists(target) else f"no {path} was written"
    return DataError(f"cannot write {path}: {why}; {kept}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it into place only on success, with the
    permissions a new file gets under the umask (mkstemp's 0600 would not follow it).

    A symlink is written through (its target is replaced; the link stays). The temp file has a
    short name (``.fs-XXXXXXXX.tmp``), so any name the file system allows works."""
    check_output_path(path)
    target = os.path.realpath(path)
    d = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fs-", suffix=".tmp", dir=d)
    except OSError as e:
        raise DataError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if _not_regular(target):  # it became a FIFO/device while the work ran: never replace it
            check_output_path(path)
        os.replace(tmp, target)
    except OSError as e:  # disk full, file-size limit, read-only file system: the old file stays
        raise _write_failure(path, target, e) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_json_object(path: str):
    """The JSON object (dict) stored at ``path``, else None: missing, unreadable, not UTF-8, not JSON or
    not an object -- how the commands read back the provenance records they write beside an output."""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) else None


def save_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


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
    """Write ``text`` atomically as UTF-8; file names that are not UTF-8 (surrogate escapes) are written
    as their own bytes."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)


def folder_lock(path: str, busy: str):
    """An exclusive, non-blocking lock on the file ``path`` (flock: released when the returned file is
    closed or the process ends), holding the holder's PID. Taken by every command that writes a folder
    (the loop's run folder, curate's --out); a second process gets one line, ``busy`` with the PID
    filled in ({pid}), never a mixed output. None where flock does not exist (Windows)."""
    try:
        import fcntl  # optional: Unix only (Windows has no flock: no lock)
    except ImportError:
        return None
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise DataError(busy.format(pid=pid)) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
