"""The collections ``fastsel curate`` reads (:func:`open_source`): a folder of images, a uint8 .npy/.npz, a
Hugging Face dataset (saved with ``save_to_disk``, or on the hub), a parquet file with an image column,
WebDataset tar shards, and the datasets registered with :mod:`fastsel.data`."""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import os
import shutil
import sys
from typing import List, Optional

import numpy as np

from .. import data, wds
from ..data._files import file_digest
from ..data.arrays import from_arrays
from ..data.folder import image_extensions, walk_images
from ..errors import DataError, FastselError
from ..io import atomic_path, read_arrays, save_npy


class Source:
    """Rows of images: ``ids`` (a path or a row number each), ``load(i)`` -> PIL image (raises on an
    unreadable one), a ``fingerprint`` that changes when the rows do (a subclass writes ``_fingerprint``;
    ``fingerprint`` computes it once per object), and ``write_subset``."""
    kind = ""

    def __init__(self, spec: str):
        self.spec = spec
        self.ids: List[str] = []

    def __len__(self):
        return len(self.ids)

    def load(self, i: int):
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Computed once per source object: a run asks at its start, in each embedding pass and in each
        rank's check, and for an array or parquet file it is a hash of every byte (a folder: a stat of every
        file), seconds to minutes on a large pool. Like the rows listed at opening, it is a snapshot: open the
        source again (:func:`open_source`) to see files changed since."""
        fp = self.__dict__.get("_fingerprint_value")
        if fp is None:
            fp = self.__dict__["_fingerprint_value"] = self._fingerprint()
        return fp

    def _fingerprint(self) -> str:
        raise NotImplementedError

    def write_subset(self, rows: np.ndarray, dest: str, copy: bool = False) -> str:
        raise NotImplementedError

    def columns(self) -> list:
        """Extra columns of ``selected.csv`` that locate a row (WebDataset: shard and key)."""
        return []

    def column_values(self, i: int) -> list:
        return []


def _sha_file(path: str) -> str:
    return file_digest(path, "sha256")


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _upright(im):
    """The image as a viewer shows it: its EXIF orientation applied (a copy, independent of the file)."""
    from PIL import ImageOps  # optional: Pillow (the data extra)
    return ImageOps.exif_transpose(im)


class FolderSource(Source):
    kind = "folder"

    def __init__(self, path: str):
        super().__init__(path)
        self.root = os.path.abspath(path)
        files, self.real_dirs = walk_images(self.root, image_extensions())  # real_dirs: linked folders' targets
        if not files:
            raise DataError(f"{path}: no images (of a format Pillow reads: PNG, JPEG, WebP, TIFF, PGM ...) found in "
                            "the folder or its sub-folders")
        self.files = files
        self.ids = [os.path.relpath(f, self.root) for f in files]

    def load(self, i):
        from PIL import Image  # optional: Pillow (the data extra)
        with Image.open(self.files[i]) as im:
            im.load()
            return _upright(im)

    def _fingerprint(self):
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
        arrs = read_arrays(path, ("images", "labels"))
        raw = arrs.get("", arrs.get("images"))
        self.raw_shape = None if raw is None else tuple(raw.shape)  # the subset is written in this layout
        ds = from_arrays(arrs, path)
        self.images = ds.images
        self.labels = ds.labels if "labels" in arrs else None  # a .npy has none: none are written
        self.ids = [str(i) for i in range(len(self.images))]

    def load(self, i):
        from PIL import Image  # optional: Pillow (the data extra)
        a = self.images[i]
        return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)

    def _fingerprint(self):
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
        import datasets  # optional: datasets (the data extra)
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars  # optional: the data extra
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
            from datasets.utils import enable_progress_bars  # optional: datasets (the data extra)
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
    from PIL import Image  # optional: Pillow (the data extra)
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

    def _fingerprint(self):
        return f"{self.ds._fingerprint}:{len(self.ds)}"

    def write_subset(self, rows, dest, copy=False):
        self.ds.select([int(r) for r in rows]).save_to_disk(dest)
        return f"a datasets.Dataset of {len(rows)} rows in pick order under {dest} (datasets.load_from_disk)"


class DatasetSource(ArraySource):
    """A dataset registered with :mod:`fastsel.data` (``register_dataset``: cifar10, mnist ..., or one of the
    user's own), by name or by a path kind of its own, read with :func:`fastsel.data.load` as ``fastsel
    loop`` reads it (nothing is downloaded: a dataset not cached is refused with the registry's own line).
    The subset is ``images.npy`` (N, H, W, C) and ``labels.npy``, in pick order."""
    kind = "dataset"

    def __init__(self, spec: str, split: str = "train"):
        Source.__init__(self, spec)
        ds = data.load(spec, split=split)
        self.images, self.labels = ds.images, ds.labels
        self.raw_shape = tuple(self.images.shape)  # written as read: (N, H, W, C)
        self.ids = [str(i) for i in range(len(self.images))]

    def _fingerprint(self):
        h = hashlib.sha256(f"{self.images.shape}\0{self.images.dtype}\0".encode())
        for a in (self.images, self.labels):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


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
            import pyarrow as pa  # optional: pyarrow (comes with datasets, the data extra)
            import pyarrow.parquet as pq  # optional: pyarrow (comes with datasets, the data extra)
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

    def _fingerprint(self):
        return _sha_file(self.spec)

    def write_subset(self, rows, dest, copy=False):
        import pyarrow as pa  # optional: pyarrow (comes with datasets, the data extra)
        import pyarrow.parquet as pq  # optional: pyarrow (comes with datasets, the data extra)
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
        from PIL import Image  # optional: Pillow (the data extra)
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

    def _fingerprint(self):
        return wds.fingerprint(self.paths)

    def write_subset(self, rows, dest, copy=False):
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
    has_tar = any(f.lower().endswith(".tar") for _, _, names in os.walk(path) for f in names)
    return has_tar and not walk_images(path, image_extensions())[0]


def open_source(spec: str, column: Optional[str] = None, split: str = "train") -> Source:
    """The source ``spec`` names. An existing path is read by its form, in this order: WebDataset shards (a
    brace pattern or .tar), a folder (a datasets folder, a folder of .tar shards, else images), a .npy/.npz,
    a .parquet, a file of a kind registered with :mod:`fastsel.data`. Else a dataset registered there by name
    (:func:`fastsel.data.find`, as ``fastsel loop`` resolves it), else owner/name on the Hugging Face hub."""
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
        reg = data.find(spec)
        if reg is not None and reg.matches is not None:  # a file kind registered with fastsel.data
            return DatasetSource(spec, split)
        raise DataError(f"{spec}: not a source fastsel curate reads (a folder of images, .npy/.npz, .parquet, "
                        "WebDataset .tar shards, a datasets folder, or a hub dataset name)")
    if data.find(spec) is not None:  # a dataset registered with fastsel.data (a local path above comes first)
        return DatasetSource(spec, split)
    if _hub_name(spec):
        return HFSource(spec, column, split)  # owner/name on the hub
    raise DataError(f"{spec}: no such file or folder")
