"""``fastsel curate``: a diverse subset of an image collection, in the collection's own form.

Sources (:func:`open_source`): a folder of images (recursive; every format Pillow reads: PNG, JPEG,
WebP, BMP, GIF, TIFF, PGM/PPM ...; EXIF orientation applied), a uint8 ``.npy`` / ``.npz``, a Hugging
Face dataset saved with ``save_to_disk``, a parquet file with an image column, WebDataset tar shards
(a brace pattern, one .tar, a folder of .tar files; :mod:`fastsel.wds`), or a hub dataset name
(``datasets.load_dataset``; online, Hugging Face's conventions: the hub cache, ``HF_HUB_OFFLINE``).
Under torchrun the ranks embed and select together (:func:`curate`, docs/curating.md).
Images are brought to one shape: ``image_size`` when given, else the first image's size; grayscale
when the first image is grayscale, else RGB.

Embedding (:func:`embed_source`) is written in shards under ``DIR/embeddings/`` beside a manifest
(source fingerprint, extractor, shape, row count): a killed run resumes with the first missing
shard, and a run whose manifest differs is refused rather than mixed. Unreadable images are listed
and skipped -- the rows of ``DIR/embeddings.npy`` are the readable ones, in source order, and
``DIR/rows.npy`` maps them back to the source's indices.

Precomputed features (``embeddings``) are read as ``fastsel select`` reads them (:func:`fastsel.io.load_features`,
:func:`fastsel.ops.as_tensor`): float64 and integer rows are kept exact, never cast to float32.

One run per output folder: an exclusive lock on ``DIR/.fastsel-curate.lock`` (a second run is refused),
under which an earlier killed run's temporary files are removed.

Then :func:`curate` selects with any registered selector (optionally after a SemDeDup pass), and
writes ``selected.csv`` (rank, embedding row, source index, id, distance to the earlier picks),
the subset (links or copies for a folder; ``save_to_disk`` for a dataset; a parquet / .npy
otherwise) and ``report.md`` with coverage, entropy against a random subset of the same size and two
image grids.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io as _io
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
import zipfile
from typing import Callable, List, Optional

import numpy as np
import torch

from .data.folder import image_extensions
from .errors import DataError, FastselError, UsageProblem
from .io import atomic_path, folder_lock, save_json, save_npy, save_text

SUBSET_MARK = ".fastsel-subset"
OUT_MARK = ".fastsel-curate"  # in --out: a folder this command made (or took over while empty)
LOCK = ".fastsel-curate.lock"  # in --out: held (flock) by the run writing there


# ----------------------------------------------------------------------------------------------- sources
class Source:
    """Rows of images: ``ids`` (a path or a row number each), ``load(i)`` -> PIL image (raises on an
    unreadable one), a ``fingerprint`` that changes when the rows do, and ``write_subset``."""
    kind = ""

    def __init__(self, spec: str):
        self.spec = spec
        self.ids: List[str] = []

    def __len__(self):
        return len(self.ids)

    def load(self, i: int):
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def write_subset(self, rows: np.ndarray, dest: str, copy: bool = False) -> str:
        raise NotImplementedError

    def columns(self) -> list:
        """Extra columns of ``selected.csv`` that locate a row (WebDataset: shard and key)."""
        return []

    def column_values(self, i: int) -> list:
        return []


def _sha_file(path: str) -> str:
    from .data._files import file_digest
    return file_digest(path, "sha256")


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__




def _upright(im):
    """The image as a viewer shows it: its EXIF orientation applied (a copy, independent of the file)."""
    from PIL import ImageOps
    return ImageOps.exif_transpose(im)


class FolderSource(Source):
    kind = "folder"

    def __init__(self, path: str):
        super().__init__(path)
        self.root = os.path.abspath(path)
        from .data.folder import walk_images
        files, self.real_dirs = walk_images(self.root, image_extensions())  # real_dirs: linked folders' targets
        if not files:
            raise DataError(f"{path}: no images (of a format Pillow reads: PNG, JPEG, WebP, TIFF, PGM ...) found in "
                            "the folder or its sub-folders")
        self.files = files
        self.ids = [os.path.relpath(f, self.root) for f in files]

    def load(self, i):
        from PIL import Image
        with Image.open(self.files[i]) as im:
            im.load()
            return _upright(im)

    def fingerprint(self):
        h = hashlib.sha256()
        for rel, f in zip(self.ids, self.files):
            try:
                st = os.stat(f)
                key = f"{st.st_size}\0{st.st_mtime_ns}"
            except OSError as e:  # a broken link: listed as unreadable later, never fatal here
                key = f"unreadable {e.errno}"
            h.update(f"{rel}\0{key}\n".encode("utf-8", "surrogateescape"))  # names need not be UTF-8
        return h.hexdigest()

    def write_subset(self, rows, dest, copy=False):
        for r in rows:
            src, rel = self.files[int(r)], self.ids[int(r)]
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if copy:
                shutil.copy2(src, target)
            else:
                os.symlink(src, target)
        return f"{'copies' if copy else 'links'} of the {len(rows)} files under {dest} (same relative paths)"


class ArraySource(Source):
    kind = "array"

    def __init__(self, path: str):
        super().__init__(path)
        from .data.arrays import from_arrays
        from .io import read_arrays
        arrs = read_arrays(path, ("images", "labels"))
        raw = arrs.get("", arrs.get("images"))
        self.raw_shape = None if raw is None else tuple(raw.shape)  # the subset is written in this layout
        ds = from_arrays(arrs, path)
        self.images = ds.images
        self.labels = ds.labels if "labels" in arrs else None  # a .npy has none: none are written
        self.ids = [str(i) for i in range(len(self.images))]

    def load(self, i):
        from PIL import Image
        a = self.images[i]
        return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)

    def fingerprint(self):
        return _sha_file(self.spec)

    def write_subset(self, rows, dest, copy=False):
        path = os.path.join(dest, "images.npy")
        sub = self.images[rows]  # (n, H, W, C): back to the source's own layout
        if len(self.raw_shape) == 3:
            sub = sub[..., 0]
        elif self.raw_shape[1:] != sub.shape[1:]:
            sub = sub.transpose(0, 3, 1, 2)  # the source was (N, C, H, W)
        save_npy(path, np.ascontiguousarray(sub))
        if self.labels is not None:
            save_npy(os.path.join(dest, "labels.npy"), np.asarray(self.labels)[rows])
        return f"{path} ({len(rows)} images in pick order)"


_BARS = {"quiet": False, "restore": False}  # a quiet run: datasets' own progress bars off while it lasts


def _datasets():
    """The datasets package (one line where it is missing), its progress bars off during a quiet run."""
    try:
        import datasets
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars
    except ImportError:
        raise DataError("Hugging Face datasets need the datasets package (pip install datasets)") from None
    if _BARS["quiet"] and not are_progress_bars_disabled():
        disable_progress_bars()
        _BARS["restore"] = True
    return datasets


@contextlib.contextmanager
def _quiet_datasets(quiet: bool):
    """``quiet``: datasets' progress bars (loading a dataset, saving the subset) off until the block ends
    (datasets is imported only where a source needs it)."""
    _BARS.update(quiet=quiet, restore=False)
    if quiet and "datasets" in sys.modules:
        _datasets()
    try:
        yield
    finally:
        if _BARS["restore"]:
            from datasets.utils import enable_progress_bars
            enable_progress_bars()
        _BARS.update(quiet=False, restore=False)


def _image_column(features, column: Optional[str], where: str) -> str:
    datasets = _datasets()
    if column is not None:
        if column not in features:
            raise DataError(f"{where}: no column {column!r} (columns: {', '.join(features)})")
        return column
    for name, f in features.items():
        if isinstance(f, datasets.Image):
            return name
    raise DataError(f"{where}: no Image column; name the column that holds the images with --column "
                    f"(columns: {', '.join(features)})")


def _pil_from_cell(v):
    from PIL import Image
    if isinstance(v, Image.Image):
        return v
    if isinstance(v, dict):
        if v.get("bytes") is not None:
            v = v["bytes"]
        elif v.get("path"):
            with Image.open(v["path"]) as im:
                im.load()
                return _upright(im)
    if isinstance(v, (bytes, bytearray, memoryview)):
        im = Image.open(_io.BytesIO(bytes(v)))
        im.load()
        return _upright(im)
    if isinstance(v, np.ndarray) or isinstance(v, list):
        return Image.fromarray(np.asarray(v, dtype=np.uint8))
    raise DataError(f"a cell of type {type(v).__name__} is not an image")


def _from_disk(spec: str, split: str):
    """A dataset folder written by save_to_disk (one line for a damaged one); a DatasetDict's ``split``."""
    datasets = _datasets()
    if _data_files(spec) == []:
        raise DataError(f"{spec}: the dataset has no rows (save_to_disk wrote no data file)")
    try:
        ds = datasets.load_from_disk(spec)
    except Exception as e:  # noqa: BLE001 -- datasets' complaint about a damaged folder, as one line
        raise DataError(f"{spec}: not a readable datasets folder (save_to_disk): {type(e).__name__}: "
                        f"{_first_line(e)}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{spec}: no split {split!r} (splits: {', '.join(ds)})")
        ds = ds[split]
    return ds


def _from_hub(spec: str, split: str):
    try:
        return _datasets().load_dataset(spec, split=split)
    except FastselError:
        raise
    except Exception as e:  # noqa: BLE001 -- not found, offline, no such split: one line
        raise DataError(f"{spec}: no such local file or folder, and the Hugging Face hub gives no dataset of that "
                        f"name ({type(e).__name__}: {_first_line(e)})") from None


class HFSource(Source):
    kind = "hf"

    def __init__(self, spec: str, column: Optional[str] = None, split: str = "train"):
        super().__init__(spec)
        if os.path.isdir(spec):
            ds, self.kind = _from_disk(spec, split), "hf-disk"
        else:
            ds, self.kind = _from_hub(spec, split), "hf-hub"
        if len(ds) == 0:
            raise DataError(f"{spec}: the dataset has no rows")
        self.col = _image_column(ds.features, column, spec)
        self.ds = ds
        self.ids = [str(i) for i in range(len(ds))]

    def load(self, i):
        return _pil_from_cell(self.ds[int(i)][self.col])

    def fingerprint(self):
        return f"{self.ds._fingerprint}:{len(self.ds)}"

    def write_subset(self, rows, dest, copy=False):
        self.ds.select([int(r) for r in rows]).save_to_disk(dest)
        return f"a datasets.Dataset of {len(rows)} rows in pick order under {dest} (datasets.load_from_disk)"


def _hf_image_column(meta) -> Optional[str]:
    """The Image column a parquet file written by datasets names in its metadata (None: none, or unreadable)."""
    try:
        feats = json.loads((meta or {})[b"huggingface"]).get("info", {}).get("features", {})
        return next((k for k, v in feats.items() if isinstance(v, dict) and v.get("_type") == "Image"), None)
    except (KeyError, ValueError, AttributeError, TypeError):
        return None


class ParquetSource(Source):
    kind = "parquet"

    def __init__(self, path: str, column: Optional[str] = None):
        super().__init__(path)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("parquet files need pyarrow (pip install pyarrow)") from None
        try:
            self.table = pq.read_table(path, memory_map=True)
        except (pa.ArrowException, OSError, ValueError) as e:  # garbage, truncated, 0 bytes
            raise DataError(f"{path}: not a readable parquet file ({_first_line(e)})") from None
        names = self.table.column_names
        if column is None:
            column = _hf_image_column(self.table.schema.metadata)  # a parquet written by datasets
            if column is None:
                raise DataError(f"{path}: name the column that holds the images with --column (columns: "
                                f"{', '.join(names)})")
        if column not in names:
            raise DataError(f"{path}: no column {column!r} (columns: {', '.join(names)})")
        self.col = column
        self.cells = self.table.column(column)
        self.ids = [str(i) for i in range(self.table.num_rows)]

    def load(self, i):
        return _pil_from_cell(self.cells[int(i)].as_py())

    def fingerprint(self):
        return _sha_file(self.spec)

    def write_subset(self, rows, dest, copy=False):
        import pyarrow as pa
        import pyarrow.parquet as pq
        path = os.path.join(dest, "subset.parquet")
        with atomic_path(path) as tmp:
            pq.write_table(self.table.take(pa.array(np.asarray(rows, dtype=np.int64))), tmp)
        return f"{path} ({len(rows)} rows in pick order)"


class WebDatasetSource(Source):
    """WebDataset tar shards (img2dataset's layout: ``key.jpg`` beside ``key.json`` / ``key.txt``): a
    brace pattern, one .tar, or a folder of .tar files. A row is a sample; its image is the member
    whose extension Pillow reads (jpg, png, webp ... in that preference); ``selected.csv`` names the
    shard and the key; the subset is new tar shards holding the picked samples with all their files."""
    kind = "webdataset"
    PREFER = ("jpg", "jpeg", "png", "webp")

    def __init__(self, spec: str):
        super().__init__(spec)
        from . import wds
        self.paths = wds.shard_paths(spec)
        self.samples = wds.index_shards(self.paths)
        if not self.samples:
            raise DataError(f"{spec}: its {len(self.paths)} shard(s) hold no samples")
        self.reader = wds.ShardReader(self.paths)
        exts = {e.lstrip(".") for e in image_extensions()}
        self._image_ext = []
        for smp in self.samples:
            have = [e for e in self.PREFER if e in smp.members]
            have += [e for e in smp.members if e not in have and e.rpartition(".")[2].lower() in exts]
            self._image_ext.append(have[0] if have else None)
        base = os.path.commonpath([os.path.abspath(p) for p in self.paths]) if len(self.paths) > 1 else None
        self.shard_names = [os.path.relpath(p, base) if base else os.path.basename(p) for p in self.paths]
        self.ids = [f"{self.shard_names[smp.shard]}:{smp.key}" for smp in self.samples]

    def load(self, i):
        from PIL import Image
        smp, ext = self.samples[int(i)], self._image_ext[int(i)]
        if ext is None:
            raise DataError(f"sample {smp.key} has no image member (members: {', '.join(sorted(smp.members)) or 'none'})")
        with Image.open(_io.BytesIO(self.reader.read(smp.shard, *smp.members[ext]))) as im:
            im.load()
            return _upright(im)

    def columns(self) -> list:
        return ["shard", "key"]

    def column_values(self, i) -> list:
        smp = self.samples[int(i)]
        return [self.shard_names[smp.shard], smp.key]

    def fingerprint(self):
        from . import wds
        return wds.fingerprint(self.paths)

    def write_subset(self, rows, dest, copy=False):
        from . import wds
        picked = [self.samples[int(r)] for r in rows]
        paths = wds.write_shards(picked, self.reader, dest)
        return f"{len(paths)} tar shard(s) under {dest} ({len(rows)} samples in pick order, every member kept)"


def _data_files(path: str) -> Optional[list]:
    """The data files a save_to_disk folder's state.json lists (None: no such state.json)."""
    try:
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    files = state.get("_data_files") if isinstance(state, dict) else None
    return files if isinstance(files, list) else None


def _hf_dataset_folder(path: str) -> bool:
    """A Dataset folder save_to_disk wrote: dataset_info.json and state.json beside .arrow files, or
    a state.json of datasets' own form (an empty dataset has no .arrow file). An image folder with a
    stray state.json is read as images."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    if "dataset_info.json" not in names or "state.json" not in names:
        return False
    return any(f.endswith(".arrow") for f in names) or _data_files(path) is not None


def _hf_folder(path: str) -> bool:
    """A Dataset folder, or a DatasetDict's: dataset_dict.json beside a split folder that is one."""
    if _hf_dataset_folder(path):
        return True
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) and any(
        _hf_dataset_folder(os.path.join(path, d)) for d in os.listdir(path))


def _hub_name(spec: str) -> bool:
    """owner/name: one slash, not a path (./, /, ~), and not under an existing local folder (data/x
    whose data/ exists is a missing local path, not a dataset on the hub)."""
    if spec.count("/") != 1 or spec.startswith((".", os.sep, "~")) or spec.endswith("/"):
        return False
    return not os.path.isdir(spec.split("/")[0])


def _tar_folder(path: str) -> bool:
    """A folder of WebDataset shards: .tar files in it (or below it) and no image files."""
    from .data.folder import walk_images
    has_tar = any(f.lower().endswith(".tar") for _, _, names in os.walk(path) for f in names)
    return has_tar and not walk_images(path, image_extensions())[0]


def open_source(spec: str, column: Optional[str] = None, split: str = "train") -> Source:
    from . import wds
    if wds.is_spec(spec):
        return WebDatasetSource(spec)
    if os.path.isdir(spec):
        if _hf_folder(spec):
            return HFSource(spec, column, split)
        return WebDatasetSource(spec) if _tar_folder(spec) else FolderSource(spec)
    if os.path.isfile(spec):
        low = spec.lower()
        if low.endswith((".npy", ".npz")):
            return ArraySource(spec)
        if low.endswith(".parquet"):
            return ParquetSource(spec, column)
        raise DataError(f"{spec}: not a source fastsel curate reads (a folder of images, .npy/.npz, .parquet, "
                        "WebDataset .tar shards, a datasets folder, or a hub dataset name)")
    if _hub_name(spec):
        return HFSource(spec, column, split)  # owner/name on the hub
    raise DataError(f"{spec}: no such file or folder")


# -------------------------------------------------------------------------------------------- embedding
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _to_8bit(im):
    """16-bit and float images scaled to 8 bits (PIL's convert("L") would clip them at 255)."""
    from PIL import Image
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
    from PIL import Image
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
    from . import features as Fe
    from tqdm import tqdm
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
        from .distributed import shard_rows as share  # the ranks' contiguous split, as for pool rows
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


# ----------------------------------------------------------------------------------------------- curate
def pick_distances(x: torch.Tensor, idx: torch.Tensor) -> np.ndarray:
    """Distance of each pick to the picks before it (inf for the first), float64, O(n^2 d)."""
    return _pick_distances(x[idx])


def _pick_distances(sub: torch.Tensor) -> np.ndarray:
    """Distance of each row of ``sub`` (the picks, in pick order) to the rows before it (inf for the
    first), float64, O(n^2 d). Rows of extreme magnitude (1e300) are scaled by a power of two first,
    exactly, as the selectors do, and centred, so that rows far from the origin (1e8 + 3k) keep their
    distances' digits."""
    from . import ops
    s = sub.to(torch.float64)
    e = ops.pow2_scale(s)
    s = ops.ldexp(s, e)
    s = s - s.mean(0)
    n = s.shape[0]
    out = np.full(n, np.inf)
    sq = (s * s).sum(1)
    best = torch.full((n,), float("inf"), dtype=torch.float64)
    B = 1024
    for a in range(0, n, B):
        d2 = (sq[a:a + B, None] + sq[None, :] - 2.0 * (s[a:a + B] @ s.T)).clamp_min_(0.0)
        i = torch.arange(a, min(a + B, n))[:, None]
        d2 = d2.masked_fill(torch.arange(n)[None, :] >= i, float("inf"))
        best[a:a + B] = d2.min(1).values
    out[:] = ops.unscale(best.sqrt(), e).numpy()
    return out


def coverage(x: torch.Tensor, idx: torch.Tensor) -> tuple:
    """Distance from every row to its nearest subset row: ({max, mean}, the distances) (exact k-NN)."""
    return coverage_of(x, x[idx])


def _grid(images: list, titles: list, path: str, cols: int, suptitle: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, t in zip(axes.ravel(), images, titles):
        ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None,
                  vmin=0, vmax=255)
        ax.set_title(t, fontsize=7)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def prepare_out(out_dir: str, src: Source):
    """Check ``out_dir`` is ours (or new or empty), create it and lock it; returns the open lock file
    (the lock lasts until it is closed; None where there is no fcntl) -- :func:`owned_out` closes it."""
    out = os.path.realpath(out_dir)
    if isinstance(src, WebDatasetSource) and os.path.isdir(src.spec) and _inside(out, os.path.realpath(src.spec)):
        raise DataError(f"--out {out_dir} is inside the folder of shards {src.spec}: its subset shards would be read as "
                        "source shards on the next run; choose a folder outside it")
    if isinstance(src, FolderSource) and any(_inside(out, d) for d in [os.path.realpath(src.root), *src.real_dirs]):
        raise DataError(f"--out {out_dir} is inside the source folder {src.spec} (or a folder linked from it): its "
                        "files would be read as images on the next run; choose a folder outside it")
    if os.path.exists(src.spec):
        real = os.path.realpath(src.spec)
        if _inside(real, out):  # e.g. curating OUT/subset into OUT: the new subset would replace its own source
            raise DataError(f"the source {src.spec} lies inside --out {out_dir}, whose files this run rewrites; "
                            "choose another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"--out {out_dir} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not any(
            os.path.exists(os.path.join(out, f)) for f in (OUT_MARK, LOCK, "curate.json",
                                                            os.path.join("embeddings", "manifest.json"))):
        raise DataError(f"--out {out_dir} is a folder with other files in it (not an earlier fastsel curate "
                        "output): choose a new or empty folder")
    _check_subset_ours(out_dir)  # before anything is written, not after
    os.makedirs(out, exist_ok=True)
    lock = _lock(out_dir)
    try:
        open(os.path.join(out, OUT_MARK), "a").close()  # ours from now on: a run that fails later can be rerun
        _drop_temps(out)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    return lock


@contextlib.contextmanager
def owned_out(out_dir: str, src: Source):
    """:func:`prepare_out`, its lock held until the block ends."""
    lock = prepare_out(out_dir, src)
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


def _lock(out_dir: str):
    """curate's lock on ``out_dir/LOCK`` (fastsel.io.folder_lock: the loop takes the same kind)."""
    return folder_lock(os.path.join(out_dir, LOCK), f"--out {out_dir} is in use by another fastsel process (PID {{pid}}); "
                       "wait for it or choose another --out")


_TEMP = re.compile(r"\.fs-[a-z0-9_]+\.tmp")  # io.atomic_path's temporary files
_SUBSET_TEMP = re.compile(r"\.subset\.(tmp|old)[0-9]+")  # _replace_subset's folders


def _drop_temps(out: str) -> None:
    """Remove what a killed run left in our folder (the caller holds its lock): atomic_path's temporary
    files in it and in its embeddings/, and _replace_subset's half-built or old subset folders."""
    for d in (out, os.path.join(out, "embeddings")):
        if os.path.islink(d) or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.islink(p):
                continue
            if _TEMP.fullmatch(name) and os.path.isfile(p):
                os.unlink(p)
            elif d == out and _SUBSET_TEMP.fullmatch(name) and os.path.isdir(p):
                shutil.rmtree(p)


def _subset_files(folder: str) -> list:
    """Every file (or link) under ``folder``, relative, sorted; the mark itself left out."""
    out = []
    for dirpath, _, names in os.walk(folder):
        out += [os.path.relpath(os.path.join(dirpath, n), folder) for n in names]
    return sorted(f for f in out if f != SUBSET_MARK)


def _check_subset_ours(out_dir: str) -> None:
    """Refuse an ``out_dir/subset`` that fastsel curate did not write, or one a user has added files to
    since (its mark lists what curate wrote): it is never replaced then."""
    dest = os.path.join(out_dir, "subset")
    mark = os.path.join(dest, SUBSET_MARK)
    if os.path.lexists(dest) and not os.path.exists(mark):
        raise DataError(f"{dest} exists and was not written by fastsel curate: move it away first")
    if os.path.isdir(dest):
        with open(mark, encoding="utf-8", errors="surrogateescape") as f:
            listed = set(f.read().splitlines())
        extra = [p for p in _subset_files(dest) if p not in listed] if listed else []
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            raise DataError(f"{dest} holds files fastsel curate did not write ({shown}): move them away first "
                            "(the subset is replaced whole on a rerun)")


def _replace_subset(out_dir: str, build: Callable[[str], str]) -> str:
    """Build the subset in a fresh folder, then swap it in for the previous one (ours only)."""
    dest = os.path.join(out_dir, "subset")
    _check_subset_ours(out_dir)
    tmp = os.path.join(out_dir, f".subset.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        what = build(tmp)
        with open(os.path.join(tmp, SUBSET_MARK), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("".join(p + "\n" for p in _subset_files(tmp)))  # what curate wrote: checked on a rerun
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.lexists(dest):
        old = os.path.join(out_dir, f".subset.old{os.getpid()}")
        os.rename(dest, old)
    os.rename(tmp, dest)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return what.replace(tmp, dest)


def curate(source: str, n: int, out_dir: str, *, features: str = "dinov2-s", embeddings: Optional[str] = None,
           key: Optional[str] = None, method: str = "greedy", seed: int = 0, start: Optional[int] = None,
           column: Optional[str] = None, split: str = "train", image_size: Optional[int] = None, copy: bool = False,
           dedup: Optional[float] = None, batch_size: int = 64, shard_rows: int = 4096, device=None,
           quiet: bool = False, log: Callable = print, grid: int = 64, options: Optional[dict] = None) -> dict:
    """Pick a diverse n-image subset of a collection and write it in the collection's own form
    (what ``fastsel curate`` runs; the module docstring describes the sources and the files).

    Args:
        source: a folder of images, a uint8 .npy/.npz, a Hugging Face dataset folder, a .parquet with an
            image column, or a hub dataset name (online).
        n: the subset's size.
        out_dir: the output folder (created; a rerun resumes the embedding in it; never the source; one
            run at a time).
        features: the extractor (:func:`fastsel.features.get`) when ``embeddings`` is not given.
        embeddings: a precomputed (rows, dim) .npy or .npz, one row per source row in source order, read
            as ``fastsel select`` reads its input (its own dtype: float64 and integers stay exact).
        key: the array of an ``embeddings`` .npz that holds several.
        method: a registered selector (:func:`fastsel.select`).
        seed: the selector's seed and the random baseline's.
        start: the first pick, a source index (default: drawn from ``seed``).
        column: the image column of a parquet file or dataset (default: its Image column).
        split: the split of a Hugging Face dataset.
        image_size: resize every image to this side (default: the first image's size, at most 512).
        copy: folder sources: copy the selected files (default: symbolic links).
        dedup: run SemDeDup first with this cosine-distance eps > 0 (:func:`fastsel.clusters.semdedup`:
            rows closer than eps to an earlier row of their cluster go; 1e-6 removes exact duplicates).
        batch_size: images per embedding batch.
        shard_rows: rows per embedding shard (the unit a killed run resumes from).
        device: where the extractor runs (default: cuda when available).
        quiet: no progress bars (datasets' own included).
        log: called with each note and warning line.
        grid: how many of the first picks the report's image grid shows.
        options: the method's own options (:class:`fastsel.selectors.Option`, e.g. ``{"knn": 16}`` for
            facility), passed to it as :func:`fastsel.select` does; recorded in curate.json when given.

    Returns:
        The summary written to ``out_dir/curate.json``: rows read and unreadable, the embedding's and
        the selection's times, coverage (max / mean distance to the subset) and entropy beside a
        seeded random subset of the same size (None, with ``entropy_note`` saying why, where exact
        duplicates make it -inf), and what was written.

    Raises:
        fastsel.io.DataError: an unreadable source or embeddings file, or one whose row count differs;
            an ``out_dir`` another run holds.
        fastsel.errors.UsageProblem: an option that does not apply to the source (``column``, ``copy``,
            ``key``), or an input that is one of the files this run writes.
        fastsel.errors.FastselError: n larger than the source's rows (before any work) or the readable
            ones, a start row not available, a start with a method that has no first pick, an option the
            method does not declare, or dedup <= 0.
    """
    from .selectors import check_options, check_start_applies
    from . import _dist
    t_all = time.perf_counter()
    check_start_applies(method, start)
    options = dict(options or {})
    check_options(method, options)
    if dedup is not None and not dedup > 0:
        raise FastselError(f"--dedup {dedup} removes nothing: rows closer than EPS (cosine distance) to an earlier "
                           "row of their cluster go; for exact duplicates use a small EPS such as 1e-6")
    if key is not None and embeddings is None:
        raise UsageProblem("--key names an array of the --embeddings .npz file, and no --embeddings was given")
    kw = dict(features=features, embeddings=embeddings, key=key, method=method, seed=seed, start=start,
              image_size=image_size, copy=copy, dedup=dedup, batch_size=batch_size, shard_rows=shard_rows,
              device=device, quiet=quiet, log=log, grid=grid, t_all=t_all, options=options)
    if _dist.launched():
        return _curate_ranks(source, n, out_dir, column=column, split=split, **kw)
    with contextlib.ExitStack() as held:
        held.enter_context(_quiet_datasets(quiet))
        src = open_source(source, column, split)
        _check_applies(src, n, start, column, copy)
        _check_inputs_kept(out_dir, embeddings)
        held.enter_context(owned_out(out_dir, src))  # one run per folder, from here to the end
        res = _curate_one(src, n, out_dir, **kw)
        res["peak_rss_mib"] = [_peak_rss_mib()]
        save_json(os.path.join(out_dir, "curate.json"), res)
        return res


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB; Linux reports KiB, macOS bytes)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (2**20 if sys.platform == "darwin" else 1024), 1)


def _curate_one(src, n, out_dir, *, features, embeddings, key, method, seed, start, image_size, copy, dedup,
                batch_size, shard_rows, device, quiet, log, grid, t_all, options, emb_info=None, ranks=1,
                note_resume=True):
    """One process holds the pool: embed (or read) it, select, write (the caller holds the folder's lock)."""
    from .selectors import select
    if embeddings is None:
        _, rows, bad, info = embed_source(src, features, out_dir, image_size=image_size, log=log,
                                          batch_size=batch_size, shard_rows=shard_rows, device=device, quiet=quiet,
                                          note_resume=note_resume, collect=False)
        # the in-memory path holds the features about 3 times at its peak (the shards' list and their
        # concatenation, the tensor the selector takes): compare 3 copies with the share
        need, limit = 3 * len(rows) * info["dim"] * 4, memory_limit()
        if need > limit:
            return _curate_mapped(src, n, out_dir, rows, bad, emb_info or info, need, limit, method=method,
                                  seed=seed, start=start, dedup=dedup, shard_rows=shard_rows, features=features,
                                  copy=copy, grid=grid, log=log, t_all=t_all, ranks=ranks)
        emb_info = emb_info or info  # this run's embedding (the second pass below only reads the shards)
    feats, x, rows, bad, info = _features_of(src, out_dir, embeddings, key, features, image_size, log,
                                             batch_size=batch_size, shard_rows=shard_rows, device=device,
                                             quiet=True, note_resume=False)
    save_npy(os.path.join(out_dir, "embeddings.npy"), feats)
    save_npy(os.path.join(out_dir, "rows.npy"), rows)
    _write_unreadable(out_dir, bad, log)
    cand, start, dedup_info = _candidates(x, rows, len(src), n, start, dedup, seed, log)
    t0 = time.perf_counter()
    idx = cand[select(x[cand], n, method, seed=seed, start=start, **options)]
    t_sel = time.perf_counter() - t0
    return _finish(src, _LocalPool(x, rows), len(cand), lambda p: cand[p], idx, out_dir, n=n, method=method,
                   seed=seed, features=features, embeddings=embeddings, dim=int(feats.shape[1]), unreadable=len(bad),
                   dedup=dedup, dedup_info=dedup_info, emb_info=emb_info or info, t_sel=t_sel, copy=copy,
                   grid=grid, log=log, t_all=t_all, ranks=ranks, options=options)


def memory_limit() -> int:
    """Bytes of features curate holds in memory: FASTSEL_CURATE_MEMORY (bytes) when set, else half of
    the memory available now (MemAvailable; 8 GiB where /proc/meminfo is missing). A larger pool is
    streamed from a memory-mapped embeddings.npy."""
    env = os.environ.get("FASTSEL_CURATE_MEMORY")
    if env:
        return int(float(env))
    per_node = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # ranks sharing this machine's memory
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2 // per_node
    except OSError:
        pass
    return (8 << 30) // per_node


def _curate_mapped(src, n, out_dir, rows, bad, info, need, limit, *, method, seed, start, dedup, shard_rows, features,
                   copy, grid, log, t_all, ranks) -> dict:
    """A pool larger than the memory share: embeddings.npy written shard by shard, then memory-mapped;
    greedy streams it (fastsel.streaming.greedy: the same picks as in memory) and the report reads it
    in chunks. Other selectors and --dedup need the pool in memory: refused, saying what to do."""
    from . import streaming
    gib = (f"{_size(need)} (the features, about 3 copies at the peak) > the {_size(limit)} curate holds in memory "
           "(FASTSEL_CURATE_MEMORY)")
    if method != "greedy" or dedup is not None:
        what = "--dedup" if dedup is not None else f"--method {method}"
        raise FastselError(f"{gib}: {what} needs the pool in memory; use --method greedy (streams from disk), run "
                           "under torchrun on more machines, or raise FASTSEL_CURATE_MEMORY (bytes)")
    M = len(rows)
    if n > M:
        raise FastselError(f"--n {n} is more than the {M} readable rows")
    log(f"note: {gib}: greedy streams a memory-mapped {os.path.join(out_dir, 'embeddings.npy')}")
    _write_pool_files(out_dir, src, shard_rows, M, info["dim"], bad, log)
    mm = np.load(os.path.join(out_dir, "embeddings.npy"), mmap_mode="r")
    pos = None if start is None else _start_position(rows, start, 0)
    if start is not None and pos is None:
        raise FastselError(f"--start {start}: that source row is {'not readable' if start < len(src) else 'out of range'}")
    t0 = time.perf_counter()
    idx = streaming.greedy(mm, n, pos, seed=seed).indices.cpu()
    t_sel = time.perf_counter() - t0
    return _finish(src, _MappedPool(mm, rows), M, lambda p: p, idx, out_dir, n=n, method=method, seed=seed,
                   features=features, embeddings=None, dim=info["dim"], unreadable=len(bad), dedup=None,
                   dedup_info=None, emb_info={**info, "mapped": True}, t_sel=t_sel, copy=copy, grid=grid, log=log,
                   t_all=t_all, ranks=ranks)


def _finish(src, pool, n_cand, cand_at, idx, out_dir, *, n, method, seed, features, embeddings, dim, unreadable,
            dedup, dedup_info, emb_info, t_sel, copy, grid, log, t_all, ranks, options=None) -> dict:
    """selected.csv, the subset, the report: the same for one process and for sharded ranks (every
    rank calls it; only rank 0 writes). ``cand_at(positions)``: pool rows of candidate positions."""
    # every collective first (all ranks), then rank 0's writing: a write that fails there leaves no rank
    # waiting in a collective (the caller's step tells the others)
    sub = pool.take(idx)
    src_idx = pool.source_index(idx)
    # the report: coverage and entropy of the selection against a seeded random subset of the same size
    cov, dsub = pool.coverage(sub)
    g = torch.Generator().manual_seed(int(seed) + 7)
    ridx = cand_at(torch.randperm(n_cand, generator=g)[:n])
    rsub = pool.take(ridx)
    rcov, _ = pool.coverage(rsub)
    order, dord = pool.nearest_rejected(idx, dsub, 12)
    near = ops_nn_first(pool.take(order), sub) if len(order) else torch.zeros(0, dtype=torch.int64)
    rej_src = pool.source_index(order)
    if not pool.main:
        return {}
    _write_selected(out_dir, src, idx, src_idx, _pick_distances(sub))
    what = _replace_subset(out_dir, lambda d: src.write_subset(src_idx, d, copy=copy))
    ent, rent, dup_note = _entropies(sub, rsub, dedup, log)
    k = min(grid, len(idx))
    res = {"source": src.spec, "kind": src.kind, "rows": len(src), "readable": pool.M, "unreadable": unreadable,
           "features": features if embeddings is None else f"from {embeddings}", "dim": dim,
           "method": method, **({"options": dict(options)} if options else {}), "n": n, "seed": seed,
           "dedup": dedup_info, "embedding": emb_info,
           "select_seconds": t_sel, "coverage": cov, "coverage_random": rcov, "entropy": ent,
           "entropy_random": rent, "entropy_note": dup_note, "subset": what, "ranks": ranks}
    pairs = [(int(r), float(dd), int(src_idx[j]), int(j)) for r, dd, j in zip(rej_src.tolist(), dord.tolist(),
                                                                          near.tolist())]
    pngs = _report_pngs(src, src_idx[:k], pairs, emb_info["shape"], out_dir, log)
    res["seconds"] = time.perf_counter() - t_all
    save_json(os.path.join(out_dir, "curate.json"), res)
    save_text(os.path.join(out_dir, "report.md"), _report_md(res, pngs))
    return res


def ops_nn_first(q: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Each query row's nearest reference row (exact k-NN, k = 1)."""
    from . import ops
    return ops.nn(q, ref, k=1).indices[:, 0]


class _LocalPool:
    """The whole pool in this process (what the sharded pool's collectives reduce to)."""
    main = True

    def __init__(self, x: torch.Tensor, rows: np.ndarray):
        self.x, self.rows, self.M = x, rows, len(x)

    def take(self, gi) -> torch.Tensor:
        return self.x[torch.as_tensor(gi, dtype=torch.int64)]

    def source_index(self, gi) -> np.ndarray:
        return self.rows[np.asarray(gi, dtype=np.int64)]

    def coverage(self, sub: torch.Tensor) -> tuple:
        return coverage_of(self.x, sub)

    def nearest_rejected(self, idx, d: torch.Tensor, k: int) -> tuple:
        chosen = torch.zeros(self.M, dtype=torch.bool)
        chosen[idx] = True
        rest = torch.nonzero(~chosen)[:, 0]
        order = rest[torch.argsort(d[rest], stable=True)][:k]
        return order, d[order]


class _MappedPool(_LocalPool):
    """The pool as a memory-mapped (M, d) float32 array: rows are read when asked for, distances to
    the subset a chunk at a time."""
    CHUNK = 65536

    def __init__(self, mm: np.ndarray, rows: np.ndarray):
        self.mm, self.rows, self.M = mm, rows, len(mm)

    def take(self, gi) -> torch.Tensor:
        gi = np.asarray(gi, dtype=np.int64).reshape(-1)
        return torch.from_numpy(np.array(self.mm[gi]))

    def coverage(self, sub: torch.Tensor) -> tuple:
        from . import ops
        d = torch.cat([ops.nn(torch.from_numpy(np.array(self.mm[a:a + self.CHUNK])), sub, k=1).distances[:, 0]
                       .to(torch.float64) for a in range(0, self.M, self.CHUNK)])
        return {"max": float(d.max()), "mean": float(d.mean())}, d


class _Ranks:
    """The ranks of a torchrun launch, and the one rule that keeps them together: every step ends with
    all ranks saying whether it failed, so a failure anywhere stops every rank with one line naming the
    rank and its cause -- no rank is left waiting in a collective."""

    def __init__(self):
        import torch.distributed as dist
        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def gather(self, obj) -> list:
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def step(self, fn: Callable, *a, **kw):
        err, out = None, None
        try:
            out = fn(*a, **kw)
        except Exception as e:  # noqa: BLE001 -- told to every rank below, then raised
            err = e
        said = self.gather(None if err is None else (_first_line(err) or type(err).__name__))
        failed = [(r, m) for r, m in enumerate(said) if m is not None]
        if not failed:
            return out
        if err is not None and not isinstance(err, FastselError):
            raise err  # not an input a user can fix: its traceback (the other ranks stop with one line)
        r, m = (self.rank, said[self.rank]) if err is not None else failed[0]
        cls = type(err) if err is not None else DataError
        raise cls(f"rank {r} of {self.world}: {m}" + ("" if err is not None else " (every rank stops)")) from None


class _ShardedPool:
    """The pool as the ranks hold it: rank r keeps the rows it embedded, a contiguous block of the
    readable rows in source order; what the report needs crosses the group as n rows, never the pool."""
    main = False

    def __init__(self, x: torch.Tensor, rows: np.ndarray, R: _Ranks):
        self.R, self.x, self.rows = R, x, rows
        counts = R.gather(len(rows))
        self.lo = sum(counts[:R.rank])
        self.hi = self.lo + len(rows)
        self.M = sum(counts)
        self.main = R.rank == 0

    def _mine(self, gi):
        gi = torch.as_tensor(gi, dtype=torch.int64).reshape(-1)
        return gi, (gi >= self.lo) & (gi < self.hi)

    def take(self, gi) -> torch.Tensor:
        gi, m = self._mine(gi)
        out = torch.zeros((len(gi), self.x.shape[1]), dtype=self.x.dtype)
        out[m] = self.x[gi[m] - self.lo]
        self.R.dist.all_reduce(out)  # one rank holds each row, the others add zeros: exact
        return out

    def source_index(self, gi) -> np.ndarray:
        gi, m = self._mine(gi)
        out = torch.zeros(len(gi), dtype=torch.int64)
        out[m] = torch.from_numpy(self.rows[(gi[m] - self.lo).numpy()])
        self.R.dist.all_reduce(out)
        return out.numpy()

    def coverage(self, sub: torch.Tensor) -> tuple:
        if len(self.x):
            c, d = coverage_of(self.x, sub)
            mx, total = c["max"], float(d.sum())
        else:
            d, mx, total = torch.zeros(0, dtype=torch.float64), -math.inf, 0.0
        t = torch.tensor([mx], dtype=torch.float64)
        self.R.dist.all_reduce(t, op=self.R.dist.ReduceOp.MAX)
        sums = torch.tensor([total], dtype=torch.float64)
        self.R.dist.all_reduce(sums)
        return {"max": float(t), "mean": float(sums) / self.M}, d

    def nearest_rejected(self, idx, d: torch.Tensor, k: int) -> tuple:
        gi, m = self._mine(idx)
        chosen = torch.zeros(len(self.x), dtype=torch.bool)
        chosen[gi[m] - self.lo] = True
        rest = torch.nonzero(~chosen)[:, 0]
        order = rest[torch.argsort(d[rest], stable=True)][:k]
        mine = [(float(d[o]), int(o) + self.lo) for o in order]
        best = sorted(c for part in self.R.gather(mine) for c in part)[:k]  # ties: the lower row, as stable argsort
        return (torch.tensor([g for _, g in best], dtype=torch.int64),
                torch.tensor([v for v, _ in best], dtype=torch.float64))


def _curate_ranks(source, n, out_dir, *, column, split, features, embeddings, key, method, seed, start, image_size,
                  copy, dedup, batch_size, shard_rows, device, quiet, log, grid, t_all, options) -> dict:
    """``torchrun ... -m fastsel -- curate``: each rank embeds its contiguous block of the embedding
    shards; a selector with a sharded form (greedy, threshold) runs across the ranks on the rows each
    embedded (fastsel.distributed: no rank holds the pool); any other selector, --dedup and
    --embeddings run on rank 0 over the whole pool read from the shards. Rank 0 writes every output;
    they equal one process's (selected.csv, the subset, the report's figures)."""
    from . import _dist
    from .selectors import check_options, get_selector
    # a rank may wait long for the others (an uneven resume, rank 0 writing embeddings.npy or selecting
    # alone): collectives wait up to FASTSEL_DIST_TIMEOUT seconds, 12 h by default, not torch's 30 min
    with _dist.group("cpu", _dist.wait_limit(12 * 3600)):
        R = _Ranks()
        main = R.rank == 0
        say = log if main else (lambda *a, **k: None)
        with contextlib.ExitStack() as held:
            held.enter_context(_quiet_datasets(quiet or not main))

            def opened():
                src_ = open_source(source, column, split)
                _check_applies(src_, n, start, column, copy)
                _check_inputs_kept(out_dir, embeddings)
                return src_
            src = R.step(opened)
            seen = R.gather((len(src), src.fingerprint()))
            R.step(lambda: None if len(set(seen)) == 1 else _raise(DataError(
                f"the ranks read different sources ({source}: rank 0 sees {seen[0][0]} rows, rank "
                f"{next(r for r, v in enumerate(seen) if v != seen[0])} sees another set): every rank must read "
                "the same files")))
            R.step(lambda: held.enter_context(owned_out(out_dir, src)) if main else None)  # rank 0 holds the lock
            sel = get_selector(method)
            sharded = sel.sharded is not None and dedup is None and embeddings is None
            R.step(check_options, method, options, sharded=sharded)  # an option its sharded form lacks: one line
            dev = device  # each rank on its LOCAL_RANK GPU: no --device, or a bare --device cuda
            if (dev is None and torch.cuda.is_available()) or dev == "cuda":
                dev = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            info = None
            if embeddings is None:
                part = R.step(embed_source, src, features, out_dir, image_size=image_size, batch_size=batch_size,
                              shard_rows=shard_rows, device=dev, quiet=quiet or not main, log=say,
                              part=(R.rank, R.world), collect=False)
                infos = R.gather(part[3])
                secs = max(i["seconds"] for i in infos)
                done = sum(i["embedded"] for i in infos)
                info = {"seconds": secs, "load_seconds": max(i["load_seconds"] for i in infos), "embedded": done,
                        "img_per_s": done / secs if done and secs > 0 else None, "shape": infos[0]["shape"],
                        "ranks": R.world}
            kw = dict(features=features, embeddings=embeddings, key=key, method=method, seed=seed, start=start,
                      image_size=image_size, copy=copy, dedup=dedup, batch_size=batch_size, shard_rows=shard_rows,
                      device=dev, quiet=quiet, log=say, grid=grid, t_all=t_all, options=options)
            if not sharded:
                why = ("--embeddings" if embeddings is not None else "--dedup" if dedup is not None
                       else f"{method} has no sharded form")
                say(f"note: {why}: rank 0 selects over the whole pool (read from disk); the other ranks wait")
                res = R.step(lambda: _curate_one(src, n, out_dir, **kw, emb_info=info, ranks=R.world,
                                                 note_resume=False) if main else None)
                rss = R.gather(_peak_rss_mib())
                res = R.gather(res)[0]
                res["peak_rss_mib"] = rss
                if main:
                    save_json(os.path.join(out_dir, "curate.json"), res)
                return res
            _, rows, bad, einfo = part
            d = max(R.gather(einfo["dim"]))
            counts = R.gather(len(rows))
            lo, M = sum(counts[:R.rank]), sum(counts)
            bad_all = [b for part_ in R.gather(bad) for b in part_]
            R.step(lambda: _write_pool_files(out_dir, src, shard_rows, M, d, bad_all, say) if main else None)
            x = R.step(_rank_rows, out_dir, lo, len(rows), d, say)  # from rank 0's embeddings.npy (shared --out)
            pool = _ShardedPool(x, rows, R)

            def checked_start():
                if n > pool.M:
                    raise FastselError(f"--n {n} is more than the {pool.M} readable rows")
                return None if start is None else _start_position(rows, start, pool.lo)
            pos = R.step(checked_start)
            if start is not None:
                got = [p for p in R.gather(pos) if p is not None]
                R.step(lambda: None if got else _raise(FastselError(
                    f"--start {start}: that source row is {'not readable' if start < len(src) else 'out of range'}")))
                pos = got[0]
            t0 = time.perf_counter()
            out_ = R.step(sel.sharded, x, n, start=pos, seed=seed, **options)
            idx = (out_[0] if isinstance(out_, tuple) else out_).cpu()
            t_sel = time.perf_counter() - t0
            res = R.step(_finish, src, pool, pool.M, lambda p: p, idx, out_dir, n=n, method=method, seed=seed,
                         features=features, embeddings=None, dim=d, unreadable=len(bad_all), dedup=None,
                         dedup_info=None, emb_info=info, t_sel=t_sel, copy=copy, grid=grid, log=say, t_all=t_all,
                         ranks=R.world, options=options)
            rss = R.gather(_peak_rss_mib())
            res = R.gather(res)[0]  # rank 0's summary on every rank
            res["peak_rss_mib"] = rss
            if main:
                save_json(os.path.join(out_dir, "curate.json"), res)
            return res


def _rank_rows(out_dir: str, lo: int, m: int, d: int, log: Callable) -> torch.Tensor:
    """This rank's rows [lo, lo + m) of embeddings.npy: read into memory when they fit the memory share
    (:func:`memory_limit`), else left memory-mapped (the kernels read them through the page cache)."""
    from . import ops
    if m == 0:
        return torch.zeros((0, d), dtype=torch.float32)
    mm = np.load(os.path.join(out_dir, "embeddings.npy"), mmap_mode="r")[lo:lo + m]
    if m * d * 4 <= memory_limit():
        return ops.as_tensor(np.array(mm), "features")
    log(f"note: this rank's {_size(m * d * 4)} of features exceed the memory share: read memory-mapped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a read-only mapping: no op writes to its input
        return ops.as_tensor(torch.from_numpy(mm), "features")


def _size(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB" if b >= 2**20 else f"{b / 1024:.0f} KiB"


def _raise(e: BaseException):
    raise e


def _start_position(rows: np.ndarray, start: int, lo: int) -> Optional[int]:
    """The readable-row position of source index ``start`` when this rank holds it, else None."""
    e = int(np.searchsorted(rows, start))
    return lo + e if e < len(rows) and int(rows[e]) == start else None


def _write_pool_files(out_dir: str, src: Source, shard_rows: int, M: int, d: int, bad: list, log: Callable) -> None:
    """Rank 0: embeddings.npy and rows.npy streamed from the embedding shards one shard at a time (the
    files one process writes, byte for byte, never the pool in memory), and unreadable.txt."""
    sdir = os.path.join(out_dir, "embeddings")
    with atomic_path(os.path.join(out_dir, "embeddings.npy")) as tmp_e, \
            atomic_path(os.path.join(out_dir, "rows.npy")) as tmp_r:
        fe = np.lib.format.open_memmap(tmp_e, mode="w+", dtype=np.float32, shape=(M, d))
        fr = np.lib.format.open_memmap(tmp_r, mode="w+", dtype=np.int64, shape=(M,))
        at = 0
        for s in range(0, len(src), shard_rows):
            z = _read_shard(os.path.join(sdir, f"shard_{s // shard_rows:06d}.npz"))
            m = len(z["rows"])
            if m:
                fe[at:at + m] = z["features"]
                fr[at:at + m] = z["rows"]
            at += m
        fe.flush()
        fr.flush()
        del fe, fr
    _write_unreadable(out_dir, sorted(bad), log)


def coverage_of(x: torch.Tensor, sub: torch.Tensor) -> tuple:
    """({max, mean} distance from every row of ``x`` to its nearest row of ``sub``, the distances float64)."""
    from . import ops
    d = ops.nn(x, sub, k=1).distances[:, 0].to(torch.float64)
    return {"max": float(d.max()), "mean": float(d.mean())}, d


_KIND_WORDS = {"folder": "a folder of images", "array": "an array of images", "webdataset": "WebDataset tar shards"}


def _check_applies(src: Source, n: int, start: Optional[int], column: Optional[str], copy: bool) -> None:
    """Before any work: an option that does not apply to this source, and n or start beyond its rows."""
    if column is not None and not isinstance(src, (ParquetSource, HFSource)):
        raise UsageProblem(f"--column applies to a parquet file or a Hugging Face dataset, not to {src.spec} "
                           f"({_KIND_WORDS.get(src.kind, src.kind)})")
    if copy and src.kind != "folder":
        raise UsageProblem(f"--copy applies to a folder of images (whose files are linked or copied); the subset of "
                           f"{src.spec} is written as a new file")
    if n > len(src):
        raise FastselError(f"--n {n} is more than the {len(src)} rows of {src.spec}")
    if start is not None and start >= len(src):
        raise FastselError(f"--start {start}: that source row is out of range ({src.spec} has {len(src)} rows)")


# the files a run writes in --out (besides embeddings/ and subset/, which are folders of its own)
OUTPUTS = ("embeddings.npy", "rows.npy", "selected.csv", "unreadable.txt", "curate.json", "report.md",
           "first_picks.png", "redundant.png", OUT_MARK, LOCK)


def _check_inputs_kept(out_dir: str, embeddings: Optional[str]) -> None:
    """An input is never one of the files this run writes (``--embeddings OUT/embeddings.npy``, an
    earlier run's output, would be replaced by this run's copy of it)."""
    if embeddings is None:
        return
    from .io import same_file
    mine = [os.path.join(out_dir, f) for f in OUTPUTS]
    hit = next((p for p in mine if same_file(embeddings, p)), None)
    if hit is None and _inside(os.path.realpath(embeddings), os.path.realpath(os.path.join(out_dir, "subset"))):
        hit = os.path.join(out_dir, "subset")
    if hit is not None:
        raise UsageProblem(f"--embeddings {embeddings} is {hit}, which this run rewrites: copy it out of --out "
                           "first, or choose another --out")


def _read_embeddings(path: str, key: Optional[str], src: Source) -> np.ndarray:
    """``--embeddings`` as ``fastsel select`` reads its input (:func:`fastsel.io.load_features`: a .npy,
    or a .npz's ``key``), in the file's own dtype: float64 and integer rows are never rounded."""
    from .io import load_features
    feats = np.asarray(load_features(path, key, mmap=False))
    if len(feats) != len(src):
        raise DataError(f"--embeddings {path}: {len(feats)} rows, but the source has {len(src)}")
    bad_rows = np.nonzero(~np.isfinite(feats).all(axis=1))[0]
    if len(bad_rows):
        raise DataError(f"--embeddings {path}: {len(bad_rows)} row(s) hold NaN or Inf values (first: row "
                        f"{int(bad_rows[0])})")
    return feats


def _features_of(src, out_dir, embeddings, key, features, image_size, log, **embed_kw) -> tuple:
    """(features as given or embedded, the same as the selectors take them -- ops.as_tensor, as
    ``fastsel select`` does --, their source rows, the unreadable rows, the embedding's info)."""
    from . import ops
    if embeddings is not None:
        feats = _read_embeddings(embeddings, key, src)
        rows, bad = np.arange(len(src), dtype=np.int64), []
        info = {"seconds": 0.0, "load_seconds": 0.0, "embedded": 0, "img_per_s": None,
                "shape": target_shape(src, image_size), "from": embeddings}
    else:
        feats, rows, bad, info = embed_source(src, features, out_dir, image_size=image_size, log=log, **embed_kw)
    return feats, ops.as_tensor(feats, f"--embeddings {embeddings}" if embeddings else "features"), rows, bad, info


def _write_unreadable(out_dir: str, bad: list, log: Callable) -> None:
    if not bad:
        _drop_stale(out_dir, "unreadable.txt")  # an earlier run's list, not this one's
        return
    save_text(os.path.join(out_dir, "unreadable.txt"), "".join(f"{i}\t{p}\t{w}\n" for i, p, w in bad))
    log(f"warning: {len(bad)} unreadable image(s) skipped, listed in {os.path.join(out_dir, 'unreadable.txt')}")


def _candidates(x, rows, n_src, n, start, dedup, seed, log) -> tuple:
    """(the rows selection may pick: all, or SemDeDup's survivors; ``start`` -- a source index -- as a
    position among them; the dedup info)."""
    M_ = len(x)
    cand, info = torch.arange(M_), None
    if dedup is not None:
        from .clusters import semdedup
        keep, info = semdedup(x, eps=dedup, seed=seed)
        cand = torch.sort(keep).values
        info = {**info, "kept": int(len(cand)), "removed": int(M_ - len(cand))}
        log(f"dedup (SemDeDup, eps {dedup}): {M_ - len(cand)} near-duplicates removed, {len(cand)} rows left")
    if n > len(cand):
        raise FastselError(f"--n {n} is more than the {len(cand)} readable{' deduplicated' if dedup else ''} rows")
    if start is not None:
        e = int(np.searchsorted(rows, start))
        pos = torch.nonzero(cand == e)[:, 0] if e < len(rows) and int(rows[e]) == start else torch.zeros(0)
        if len(pos) == 0:
            why = "not readable" if start < n_src else "out of range"
            raise FastselError(f"--start {start}: that source row is {why}"
                               f"{' or was removed by --dedup' if dedup is not None else ''}")
        start = int(pos[0])
    return cand, start, info


def _write_selected(out_dir: str, src: Source, idx: torch.Tensor, src_idx: np.ndarray, dist: np.ndarray) -> None:
    with atomic_path(os.path.join(out_dir, "selected.csv")) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:  # names as on disk
            w = csv.writer(f)
            w.writerow(["rank", "row", "source_index", "id", "distance_at_pick", *src.columns()])
            for r, (e, si, dd) in enumerate(zip(idx.tolist(), src_idx.tolist(), dist)):
                w.writerow([r, e, int(si), src.ids[int(si)], f"{dd:.6g}", *src.column_values(int(si))])


def _entropies(sub, rsub, dedup, log) -> tuple:
    """KL entropy of the subset and of the random one (None where exact duplicates make it -inf: JSON
    has no -inf), and a note saying why one is missing."""
    from . import metrics as M
    if len(sub) < 2:
        return None, None, "a subset of one row has no KL entropy (it needs two)"
    with warnings.catch_warnings():  # exact duplicates: -inf, said once below
        warnings.simplefilter("ignore")
        ent, rent = M.kl_entropy(sub), M.kl_entropy(rsub)
    inf = [w for v, w in ((ent, "this subset"), (rent, "the random subset")) if not math.isfinite(v)]
    note = None
    if inf:
        note = (f"{' and '.join(inf)} {'hold' if len(inf) == 2 else 'holds'} exact duplicates (distance 0 "
                f"in feature space), so {'their' if len(inf) == 2 else 'its'} KL entropy is -inf"
                + ("; --dedup 1e-6 removes them before selection" if dedup is None else ""))
        log(f"note: {note}")
    return (*(v if math.isfinite(v) else None for v in (ent, rent)), note)


def _report_pngs(src, first: np.ndarray, pairs: list, shape, out_dir, log) -> list:
    """The report's grids: the first picks (source indices ``first``) and the rejected images nearest
    to the subset, ``pairs`` = [(source index, distance, source index of its nearest pick, pick rank)]."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("note: matplotlib is not installed: report.md without its image grids")
        _drop_stale(out_dir, "first_picks.png", "redundant.png")  # an earlier run's grids, not this one's
        return []

    def img(si):  # an image the report cannot read (features given by --embeddings) is a grey tile
        try:
            return _to_array(src.load(int(si)), shape)
        except Exception:
            return np.full(shape, 128, np.uint8)
    k = len(first)
    _grid([img(i) for i in first], [f"#{r}" for r in range(k)], os.path.join(out_dir, "first_picks.png"), 8,
          f"the first {k} picks, in pick order")
    pngs = ["first_picks.png"]
    if pairs:
        pair_ims, titles = [], []
        for si, dd, sj, j in pairs:
            pair_ims += [img(si), img(sj)]
            titles += [f"rejected, d={dd:.3g}", f"kept, pick #{j}"]
        _grid(pair_ims, titles, os.path.join(out_dir, "redundant.png"), 6,
              "the rejected images nearest to the subset (left of each pair) and the kept image they are nearest to")
        pngs.append("redundant.png")
    else:
        _drop_stale(out_dir, "redundant.png")  # an earlier run's grid: nothing was rejected now
    return pngs


def _drop_stale(out_dir: str, *names: str) -> None:
    """Remove files an earlier run wrote in ``out_dir`` (ours: prepare_out checked) that this run does not."""
    for f in names:
        if os.path.exists(os.path.join(out_dir, f)):
            os.unlink(os.path.join(out_dir, f))


def _g(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _report_md(r: dict, pngs: list) -> str:
    cov, rc = r["coverage"], r["coverage_random"]
    e = r["embedding"]
    lines = [f"# fastsel curate: {r['n']} of {r['readable']} images", "",
             f"Source `{r['source']}` ({r['kind']}; {r['rows']} rows, {r['unreadable']} unreadable and skipped); "
             f"features {r['features']} ({r['dim']}-d); method {r['method']}"
             + "".join(f", {k} {v}" for k, v in (r.get("options") or {}).items()) + f", seed {r['seed']}.", ""]
    if r["dedup"]:
        lines += [f"SemDeDup before selection: eps {r['dedup']['eps']}, {r['dedup']['k']} clusters, "
                  f"{r['dedup']['removed']} near-duplicates removed.", ""]
    lines += ["| | this subset | a random subset of the same size |", "|---|---|---|",
              f"| largest distance from any image to the subset (coverage radius) | {cov['max']:.4g} | {rc['max']:.4g} |",
              f"| mean distance from an image to the subset | {cov['mean']:.4g} | {rc['mean']:.4g} |",
              f"| KL entropy of the subset (nats) | {_g(r['entropy'])} | {_g(r['entropy_random'])} |", "",
              *([f"Entropy: {r['entropy_note']} (shown as n/a).", ""] if r.get("entropy_note") else []),
              (f"Embedding: {e['embedded']} images in {e['seconds']:.1f} s ({e['img_per_s']:.0f} img/s; loading the "
               f"network {e.get('load_seconds', 0):.1f} s more) this run; "
               if e.get("img_per_s") else f"Embedding: none this run ({e.get('from') or 'every shard was on disk'}); ") +
              f"selection {r['select_seconds']:.2f} s; whole command {r['seconds']:.1f} s.", "",
              f"Subset: {r['subset']}. `selected.csv`: rank, row of `embeddings.npy`, source index, id, distance "
              "to the earlier picks at pick time.", ""]
    for p in pngs:
        lines += [f"![{p}]({p})", ""]
    return "\n".join(lines)
