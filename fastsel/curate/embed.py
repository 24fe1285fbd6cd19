"""Embedding a source in resumable shards (:func:`embed_source`), every image brought to one shape first
(:func:`target_shape`)."""
from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from .. import features as Fe
from ..distributed import shard_rows as share  # the ranks' contiguous split, as for pool rows
from ..errors import DataError
from ..io import atomic_path, save_json
from .sources import Source, _first_line


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _to_8bit(im):
    """16-bit and float images scaled to 8 bits (PIL's convert("L") would clip them at 255)."""
    from PIL import Image  # optional: Pillow (the data extra)
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            top = 1.0 if a.size and float(np.nanmax(a)) <= 1.0 else 255.0
        else:
            top = 65535.0 if im.mode.startswith("I;16") or (a.size and float(a.max()) > 255) else 255.0
        return Image.fromarray(np.clip(np.nan_to_num(a) * (255.0 / top), 0, 255).round().astype(np.uint8))
    return im


def _to_array(im, shape) -> np.ndarray:
    """PIL image -> uint8 (H, W, C) at ``shape`` = (H, W, C)."""
    from PIL import Image  # optional: Pillow (the data extra)
    H, W, C = shape
    im = _to_8bit(im).convert("L" if C == 1 else "RGB")
    if im.size != (W, H):
        im = im.resize((W, H), Image.BICUBIC)
    a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if C == 1 else a


MAX_SIDE = 512  # default shape: the first image's, when its sides are at most this; else MAX_SIDE x MAX_SIDE


def target_shape(src: Source, image_size: Optional[int]) -> tuple:
    """(H, W, C) every image is brought to: (image_size, image_size, C) when given, else the first
    readable image's size (MAX_SIDE x MAX_SIDE when a side is larger: the extractors work at 224-299,
    and a shard of camera-size images would not fit in memory). C = 1 only when every one of the
    first 100 readable images is grayscale, else 3."""
    memo = src.__dict__.setdefault("_target_shapes", {})  # a run asks twice or more; the reading is once
    if image_size not in memo:
        memo[image_size] = _target_shape(src, image_size)
    return memo[image_size]


def _target_shape(src: Source, image_size: Optional[int]) -> tuple:
    first, gray, seen = None, True, 0
    for i in range(len(src)):  # until 100 readable ones (unreadable rows first do not end the search)
        try:
            im = src.load(i)
        except Exception:
            continue
        first = first or im.size
        gray = gray and im.mode in GRAY_MODES
        seen += 1
        if seen == 100:
            break
    if first is None:
        raise DataError(f"{src.spec}: none of its {len(src)} images could be read" if len(src) else
                        f"{src.spec}: holds no images")
    C = 1 if gray else 3
    if image_size:
        return (image_size, image_size, C)
    if max(first) > MAX_SIDE:
        return (MAX_SIDE, MAX_SIDE, C)
    return (first[1], first[0], C)


def embed_source(src: Source, extractor_name: str, out_dir: str, *, image_size: Optional[int] = None,
                 batch_size: int = 64, shard_rows: int = 4096, device=None, quiet: bool = False,
                 log: Callable = print, stop_after_shards: Optional[int] = None, part: Optional[tuple] = None,
                 note_resume: bool = True, collect: bool = True):
    """Features of the source's readable rows, in shards under ``out_dir/embeddings``; returns
    (features float32 (M, d), rows int64 (M,) source indices, unreadable [(index, id, reason)], info:
    this run's embedded rows, their seconds -- reading and decoding included, loading the network not
    (``load_seconds``) -- and rate).

    ``part`` = (rank, world): embed and return only that rank's contiguous block of shards (shard
    files are numbered by source rows, so a run with another world size reuses every shard written)."""
    shape = target_shape(src, image_size)
    manifest = {"source": os.path.abspath(src.spec) if os.path.exists(src.spec) else src.spec, "kind": src.kind,
                "fingerprint": src.fingerprint(), "rows": len(src), "features": extractor_name,
                "image_shape": list(shape), "shard_rows": int(shard_rows)}
    sdir = os.path.join(out_dir, "embeddings")
    os.makedirs(sdir, exist_ok=True)
    mpath = os.path.join(sdir, "manifest.json")
    if os.path.exists(mpath):
        try:
            old = json.load(open(mpath))
        except ValueError:
            old = None
        if old != manifest:
            diff = sorted(k for k in manifest if old is None or old.get(k) != manifest[k])
            verb = "differs" if len(diff) == 1 else "differ"
            raise DataError(f"{sdir} holds embeddings of another run ({', '.join(diff)} {verb}): delete that folder "
                            "or choose another --out")
    else:
        save_json(mpath, manifest)
    ext = None
    N = len(src)
    shards = list(range(0, N, shard_rows))
    if part is not None:
        a, b = share(len(shards), *part)
        shards = shards[a:b]
    die = _test_death(part)
    done = sum(os.path.exists(os.path.join(sdir, f"shard_{s // shard_rows:06d}.npz")) for s in shards)
    if done and note_resume:
        log(f"resuming: {done} of {len(shards)} embedding shards{' of this rank' if part else ''} already written")
    t0, made, imgs, t_load = time.perf_counter(), 0, 0, 0.0
    with tqdm(total=N, desc=f"embed[{extractor_name}]", unit="img", file=sys.stderr, disable=quiet, delay=1.0) as bar:
        for s in shards:
            path = os.path.join(sdir, f"shard_{s // shard_rows:06d}.npz")
            if os.path.exists(path):
                bar.update(min(shard_rows, N - s))
                continue
            if stop_after_shards is not None and made >= stop_after_shards:
                raise KeyboardInterrupt("stopped after the requested shards (test hook)")
            rows, bad, parts = [], [], []
            if ext is None:  # loading the network is timed apart from the embedding rate
                t1 = time.perf_counter()
                ext = Fe.get(extractor_name, device)
                t_load = time.perf_counter() - t1
            for b0 in range(s, min(s + shard_rows, N), batch_size):  # decoded a batch at a time: memory ~ a batch
                arrs = []
                for i in range(b0, min(b0 + batch_size, s + shard_rows, N)):
                    try:
                        arrs.append(_to_array(src.load(i), shape))
                        rows.append(i)
                    except Exception as e:  # unreadable: listed, skipped, never fatal
                        bad.append((i, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"))
                if arrs:
                    parts.append(Fe.embed(np.stack(arrs), ext, batch_size=batch_size, quiet=True))
            feats = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, features=feats, rows=np.asarray(rows, np.int64),
                             bad_rows=np.asarray([b[0] for b in bad], np.int64),
                             bad_why=np.asarray([b[1] for b in bad], dtype=np.str_))
            made += 1
            imgs += len(rows)  # the shard's readable rows (not the last batch's)
            if die is not None and made >= die:  # tests: a rank killed mid-run
                os.kill(os.getpid(), 9)
            bar.update(min(shard_rows, N - s))
    secs = time.perf_counter() - t0 - t_load
    feats, rows, bad, dim = [], [], [], 0
    for s in shards:
        z = _read_shard(os.path.join(sdir, f"shard_{s // shard_rows:06d}.npz"), features=collect)
        if len(z["rows"]):
            if collect:
                feats.append(z["features"])
            rows.append(z["rows"])
            dim = z["dim"]
        bad += [(int(i), src.ids[int(i)], str(w)) for i, w in zip(z["bad_rows"], z["bad_why"])]
    info = {"seconds": secs, "load_seconds": t_load, "embedded": imgs,
            "img_per_s": imgs / secs if imgs and secs > 0 else None, "shape": shape, "dim": int(dim)}
    if not collect and rows:
        return None, np.concatenate(rows), bad, info
    if not feats:
        if part is not None:  # this rank's block holds no readable row: the others may
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), bad, info
        raise DataError(f"{src.spec}: no image could be read")
    return np.concatenate(feats).astype(np.float32, copy=False), np.concatenate(rows), bad, info


def _read_shard(path: str, features: bool = True) -> dict:
    """One embedding shard's arrays (``features=False``: all but the features, which are not read;
    ``dim`` either way); a damaged one is one line naming it (delete it to embed those rows again)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in (("features",) if features else ()) + ("rows", "bad_rows", "bad_why")}
            if features:
                out["dim"] = out["features"].shape[1]
            else:  # the header of the features member only
                with z.zip.open("features.npy") as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape = read(f)[0]
                out["dim"] = shape[1] if len(shape) == 2 else 0
            return out
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # truncated, not a zip (numpy
        # then suspects a pickle), a member missing
        raise DataError(f"{path} is unreadable ({type(e).__name__}: {_first_line(e)[:80]}): delete it and rerun to "
                        "embed its rows again") from None


def _test_death(part) -> Optional[int]:
    """FASTSEL_TEST_KILL_RANK=R:K (tests only): rank R kills itself after embedding K shards."""
    spec = os.environ.get("FASTSEL_TEST_KILL_RANK")
    if not spec or part is None:
        return None
    r, k = (int(v) for v in spec.split(":"))
    return k if r == part[0] else None
