"""Image folders (PNG/JPEG, sorted by name; label = index of the first-level sub-folder)."""
from __future__ import annotations

import functools
import os
from typing import Optional

import numpy as np

from ..io import DataError
from ._files import Dataset

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@functools.lru_cache(maxsize=1)
def image_extensions() -> tuple:
    """The file extensions of every format Pillow opens (PNG, JPEG, WebP, BMP, GIF, TIFF, PGM/PPM ...);
    its stub formats, which need a decoder plug-in of their own, and MPEG, which it identifies but
    never decodes, are left out. Without Pillow: IMAGE_EXT."""
    try:
        from PIL import Image, ImageFile  # optional: Pillow (the data extra)
    except ImportError:
        return IMAGE_EXT
    Image.init()

    def reads(fmt):
        factory = Image.OPEN.get(fmt, (None,))[0]
        stub = isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)
        return factory is not None and not stub and fmt != "MPEG"
    return tuple(sorted(e for e, f in Image.registered_extensions().items() if reads(f)))


def walk_images(path: str, exts: Optional[tuple] = None) -> tuple:
    """(image files under ``path`` -- names ending in one of ``exts``, in any case -- sorted; the real
    folders read). Linked sub-folders are followed after every real one: a folder reached by several
    paths is read once, under its real path when it lies inside ``path``, else under the first link
    in name order (the result does not depend on the file system's listing order). Links to ``path``
    itself or to a folder above it are not followed (they would read the tree again, or the folders
    beside it)."""
    root = os.path.realpath(path)
    files, seen, links = [], set(), []

    def walk(top):  # one tree without following links; linked folders are kept for later
        for dirpath, dirs, names in os.walk(top):
            seen.add(os.path.realpath(dirpath))
            links.extend(os.path.join(dirpath, d) for d in dirs if os.path.islink(os.path.join(dirpath, d)))
            files.extend(os.path.join(dirpath, n) for n in names if n.lower().endswith(exts or image_extensions()))
    walk(path)
    while links:
        links.sort()
        link = links.pop(0)
        real = os.path.realpath(link)
        if real in seen or not os.path.isdir(real) or root == real or root.startswith(real.rstrip(os.sep) + os.sep):
            continue
        walk(link)
    files.sort()
    return files, sorted(seen)


def list_images(path: str) -> list:
    """The image files under ``path`` and its sub-folders (every format Pillow reads), sorted: see
    :func:`walk_images` for linked sub-folders."""
    return walk_images(path)[0]


def load_folder(path: str, size: Optional[int] = None) -> Dataset:
    """Images under ``path`` (sorted); labels are the index of the first-level sub-folder (0 if flat)."""
    from PIL import Image  # optional: Pillow (the data extra)
    files = list_images(path)
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
