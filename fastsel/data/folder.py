"""Image folders (PNG/JPEG, sorted by name; label = index of the first-level sub-folder)."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..io import DataError
from ._files import Dataset

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_images(path: str) -> list:
    """The image files under ``path`` and its sub-folders (by extension, IMAGE_EXT), sorted; linked
    sub-folders are followed, and a folder reached twice (a link loop, two links) is read once."""
    files, seen = [], set()
    for dirpath, dirs, names in os.walk(path, followlinks=True):  # linked sub-folders too, each folder once
        real = os.path.realpath(dirpath)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        files += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXT)]
    files.sort()
    return files


def load_folder(path: str, size: Optional[int] = None) -> Dataset:
    """Images under ``path`` (sorted); labels are the index of the first-level sub-folder (0 if flat)."""
    from PIL import Image
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
