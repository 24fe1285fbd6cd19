"""WebDataset tar shards, as img2dataset writes them, read and written without the webdataset package.

A shard is a plain tar file; a *sample* is the run of consecutive members that share a key, the
key being a member's path up to the first dot of its file name (``00012/000120034.jpg`` and
``00012/000120034.json`` are one sample, key ``00012/000120034``, extensions ``jpg`` and ``json``)
-- the webdataset package's rule. A spec names shards as a brace pattern
(``shards/{00000..00127}.tar``, ``{a,b}`` lists too), one ``.tar`` file, or a folder whose ``.tar``
files are read in name order.

:func:`index_shards` reads only the tar headers (no image is decoded); :class:`ShardReader` reads one
member's bytes by offset; :func:`write_shards` writes picked samples, every member they had, into new
shards that the webdataset package reads.
"""
from __future__ import annotations

import glob
import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence

from .errors import DataError

_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(spec: str) -> List[str]:
    """``a{000..002}b`` -> a000b a001b a002b (zero-padded as the left bound is); ``{x,y}`` -> x y;
    several groups expand left to right (the braceexpand convention webdataset uses)."""
    m = _BRACE.search(spec)
    if m is None:
        return [spec]
    body, head, tail = m.group(1), spec[:m.start()], spec[m.end():]
    rng = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
    if rng:
        a, b = rng.group(1), rng.group(2)
        lo, hi = int(a), int(b)
        # zero-padded to the wider bound when either bound has a leading zero (braceexpand's rule)
        width = max(len(a), len(b)) if any(v.startswith("0") and len(v) > 1 for v in (a, b)) else 0
        step = 1 if hi >= lo else -1
        items = [str(v).zfill(width) for v in range(lo, hi + step, step)]
    elif "," in body:
        items = body.split(",")
    else:
        items = ["{" + body + "}"]  # not a pattern: literal braces
        return [head + items[0] + t for t in expand_braces(tail)]
    return [head + it + t for it in items for t in expand_braces(tail)]


def is_spec(spec: str) -> bool:
    """A spec this module reads: a brace pattern of .tar files, a .tar file, or a folder holding .tar
    files and no images."""
    if _BRACE.search(spec) and spec.lower().endswith(".tar"):
        return True
    if spec.lower().endswith(".tar") and os.path.isfile(spec):
        return True
    return False


def shard_paths(spec: str) -> List[str]:
    """The shard files a spec names, in order; a missing one is an error (one line naming it)."""
    if os.path.isdir(spec):
        paths = sorted(p for p in glob.glob(os.path.join(glob.escape(spec), "**", "*"), recursive=True)
                       if p.lower().endswith(".tar") and os.path.isfile(p))
        if not paths:
            raise DataError(f"{spec}: no .tar shards in the folder")
        return paths
    paths = expand_braces(spec)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"{spec}: shard {missing[0]} does not exist{more}")
    return paths


def split_key(name: str) -> tuple:
    """(key, extension) of a member name: the extension starts at the first dot of the file name."""
    d, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (d + "/" if d else "") + stem, ext if dot else ""


@dataclass
class Sample:
    """One sample of one shard: its key and its members (extension -> (offset, size))."""
    shard: int
    key: str
    members: dict = field(default_factory=dict)


def _iter_members(path: str) -> Iterator[tarfile.TarInfo]:
    try:
        with tarfile.open(path, "r:") as tf:  # plain tar: members are read by offset later
            for ti in tf:
                if ti.isfile():
                    yield ti
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable tar shard ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                        ) from None


def index_shards(paths: Sequence[str]) -> List[Sample]:
    """Every sample of every shard, in shard order then member order, as webdataset groups them:
    members whose file name starts with a dot (``.DS_Store``) or that lie under ``__MACOSX/``, and
    names without an extension, are skipped; a sample naming one extension twice is an error (one
    line), as in webdataset. A sample split across two shards is two samples (webdataset's reading
    too): the half without an image is listed unreadable."""
    samples: List[Sample] = []
    for si, p in enumerate(paths):
        cur: Optional[Sample] = None
        for ti in _iter_members(p):
            base = ti.name.rpartition("/")[2]
            if base.startswith(".") or ti.name.startswith("__MACOSX/") or "/__MACOSX/" in ti.name:
                continue
            key, ext = split_key(ti.name)
            if not ext:
                continue
            if cur is None or key != cur.key:
                cur = Sample(si, key)
                samples.append(cur)
            if ext in cur.members:
                raise DataError(f"{p}: sample {key} holds {key}.{ext} twice (a duplicate file name)")
            cur.members[ext] = (ti.offset_data, ti.size)
    return samples


def fingerprint(paths: Sequence[str]) -> str:
    """Changes when a shard is renamed, resized or rewritten (name, size, mtime of each)."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class ShardReader:
    """Member bytes by (shard, offset, size); a few shard files kept open (one process each)."""

    def __init__(self, paths: Sequence[str], keep: int = 8):
        self.paths = list(paths)
        self.keep = keep
        self._open: dict = {}

    def read(self, shard: int, offset: int, size: int) -> bytes:
        f = self._open.get(shard)
        if f is None:
            if len(self._open) >= self.keep:
                self._open.pop(next(iter(self._open))).close()
            f = self._open[shard] = open(self.paths[shard], "rb")
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise OSError(f"{self.paths[shard]}: truncated at byte {offset + len(data)}")
        return data

    def close(self):
        for f in self._open.values():
            f.close()
        self._open.clear()

    def __getstate__(self):  # a copy in another process opens its own files
        return {"paths": self.paths, "keep": self.keep, "_open": {}}


def write_shards(samples: Sequence[Sample], reader: ShardReader, dest: str, per_shard: int = 10000,
                 prefix: str = "subset") -> List[str]:
    """Write ``samples`` (in the given order, every member they had, bytes unchanged) into
    ``dest/{prefix}-000000.tar`` ...; a key met again (two source shards reusing a key) is written as
    ``<shard number>-<shard name>/<key>`` (a counter added if that too was written), so that no two
    samples merge. Returns the paths."""
    out, seen = [], set()
    for s0 in range(0, len(samples), per_shard):
        path = os.path.join(dest, f"{prefix}-{s0 // per_shard:06d}.tar")
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
            for s in samples[s0:s0 + per_shard]:
                key, extra = s.key, 0
                while key in seen:  # the shard's position and name first, then a counter: never a key seen
                    stem = os.path.splitext(os.path.basename(reader.paths[s.shard]))[0]
                    key = f"{s.shard:05d}-{stem}/{s.key}" + (f"-{extra}" if extra else "")
                    extra += 1
                seen.add(key)
                for ext, (off, size) in s.members.items():
                    ti = tarfile.TarInfo(f"{key}.{ext}" if ext else key)
                    ti.size = size
                    ti.mode, ti.mtime = 0o444, 0  # the same bytes whoever writes them
                    tf.addfile(ti, io.BytesIO(reader.read(s.shard, off, size)))
        out.append(path)
    return out
