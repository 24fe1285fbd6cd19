"""What every dataset source shares: the Dataset tuple, the cache folder, checksummed downloads."""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from typing import NamedTuple, Optional

import numpy as np
from tqdm import tqdm

from ..io import DataError, atomic_path


class Dataset(NamedTuple):
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    source: str


def cache_dir() -> str:
    return os.path.expanduser(os.environ.get("FASTSEL_DATA", "~/.cache/fastsel"))


def file_digest(path: str, algo: str = "md5") -> str:
    """Hex digest of a file, read 1 MiB at a time."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def md5(path: str) -> str:
    return file_digest(path, "md5")


def download(url: str, dest: str, md5sum: Optional[str] = None, quiet: bool = False) -> str:
    """Fetch ``url`` to ``dest`` atomically with a progress bar, verifying ``md5sum``."""
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
