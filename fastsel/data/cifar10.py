"""CIFAR-10: the official binary or python tarballs (or their extracted folders) in <cache>/cifar10;
pickled batches are read only when their checksum matches the official release, and then only
through an unpickler restricted to numpy arrays and builtins."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from typing import Optional

import numpy as np

from ..io import DataError
from ._files import Dataset, cache_dir, download, md5

CIFAR_URLS = {
    "binary": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),
    "python": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
}
CIFAR_PY_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
}

def read_cifar_binary(members: dict) -> tuple:
    """CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (R, G, B planes of 32x32)."""
    imgs, labs = [], []
    for name, raw in members.items():
        if len(raw) % 3073:
            raise DataError(f"{name}: not a CIFAR-10 binary batch ({len(raw)} bytes)")
        rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        labs.append(rec[:, 0].astype(np.int64))
        imgs.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(imgs)), np.concatenate(labs)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "dict"), ("builtins", "list")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}")


def read_cifar_python(members: dict, verified: bool) -> tuple:
    """CIFAR-10 python batches: unpickled only when each file (or the tarball) matches the official md5."""
    imgs, labs = [], []
    for name, raw in members.items():
        base = os.path.basename(name)
        if not verified and hashlib.md5(raw).hexdigest() != CIFAR_PY_MD5.get(base):
            raise DataError(f"{name}: checksum does not match the official CIFAR-10 release; "
                            "pickled data is only loaded from the official files (use the binary version)")
        d = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
        imgs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labs.append(np.asarray(d[b"labels"], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(imgs)), np.concatenate(labs)


def _cifar_member_names(split: str, kind: str) -> list:
    if kind == "binary":
        return [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]


def load_cifar10(split: str = "train", root: Optional[str] = None, download_ok: bool = False) -> Dataset:
    root = root or os.path.join(cache_dir(), "cifar10")
    for kind, folder in (("binary", "cifar-10-batches-bin"), ("python", "cifar-10-batches-py")):
        tar = os.path.join(root, os.path.basename(CIFAR_URLS[kind][0]))
        names = _cifar_member_names(split, kind)
        if os.path.isdir(os.path.join(root, folder)):
            members = {}
            for nm in names:
                p = os.path.join(root, folder, nm)
                if not os.path.isfile(p):
                    raise DataError(f"{p}: missing CIFAR-10 batch")
                with open(p, "rb") as f:
                    members[nm] = f.read()
            x, y = read_cifar_binary(members) if kind == "binary" else read_cifar_python(members, False)
            return Dataset(x, y, os.path.join(root, folder))
        if os.path.isfile(tar):
            verified = md5(tar) == CIFAR_URLS[kind][1]
            with tarfile.open(tar, "r:gz") as tf:
                members = {}
                for nm in names:
                    try:
                        members[nm] = tf.extractfile(f"{folder}/{nm}").read()
                    except KeyError:
                        raise DataError(f"{tar}: no member {folder}/{nm}") from None
            x, y = read_cifar_binary(members) if kind == "binary" else read_cifar_python(members, verified)
            return Dataset(x, y, tar)
    if download_ok:
        url, sum_ = CIFAR_URLS["binary"]
        download(url, os.path.join(root, os.path.basename(url)), sum_)
        return load_cifar10(split, root)
    raise DataError(f"CIFAR-10 not found: put cifar-10-binary.tar.gz (or cifar-10-python.tar.gz) from "
                    f"{CIFAR_URLS['binary'][0].rsplit('/', 1)[0]}/ into {root}, or pass --download")
