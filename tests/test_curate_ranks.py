"""``torchrun ... -m fastsel -- curate``: the outputs equal one process's at 1, 2 and 4 ranks (gloo on the
CPU), a killed rank stops the run without a hang and a rerun at another world size resumes from the
shards written, a rank that cannot read its shard stops every rank with one line naming it."""
import csv
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from _helpers import free_port

PIL = pytest.importorskip("PIL.Image")
SHARD_ROWS = "8"


def _png(a) -> bytes:
    b = io.BytesIO()
    PIL.fromarray(a).save(b, format="PNG")
    return b.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same 90 images as WebDataset shards and as a folder of PNGs (two clusters and a spread)."""
    root = tmp_path_factory.mktemp("ranks")
    rng = np.random.default_rng(7)
    imgs = (rng.random((90, 6, 6, 3)) * 255).astype(np.uint8)
    imgs[:30] //= 4  # a dark cluster: many near-ties for the report's nearest rejected
    os.makedirs(root / "shards")
    os.makedirs(root / "folder")
    for s in range(3):
        with tarfile.open(root / "shards" / f"{s:05d}.tar", "w") as tf:
            for k in range(30):
                i = 30 * s + k
                for ext, data in (("png", _png(imgs[i])), ("txt", f"image {i}".encode())):
                    ti = tarfile.TarInfo(f"{i:06d}.{ext}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
    for i, a in enumerate(imgs):
        PIL.fromarray(a).save(root / "folder" / f"{i:03d}.png")
    out = {"shards": str(root / "shards" / "{00000..00002}.tar"), "folder": str(root / "folder")}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.table({"image": [{"bytes": _png(a), "path": None} for a in imgs]}),
                       root / "imgs.parquet")
        out["parquet"] = str(root / "imgs.parquet")
    except ImportError:
        pass
    return out


def _curate(source, out, *args, ranks=None, env=None, timeout=240):
    cmd = ["curate", source, "-n", "12", "--features", "pixels", "--out", str(out), "--shard-rows", SHARD_ROWS,
           "--json", *args]
    if ranks is None:
        cmd = [sys.executable, "-m", "fastsel", *cmd]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), "-m", "fastsel", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))


def _outputs(out) -> dict:
    """What must not depend on the rank count: selected.csv, the subset's bytes, the pool files, the
    report's figures (timings and the ranks field left out)."""
    with open(os.path.join(out, "selected.csv"), newline="") as f:
        sel = list(csv.reader(f))
    subset = {}
    for dirpath, _, names in os.walk(os.path.join(out, "subset")):
        for n_ in names:
            p = os.path.join(dirpath, n_)
            subset[os.path.relpath(p, out)] = open(p, "rb").read() if not os.path.islink(p) else os.readlink(p)
    r = json.load(open(os.path.join(out, "curate.json")))
    keep = {k: v for k, v in r.items() if k not in ("seconds", "select_seconds", "embedding", "ranks", "subset",
                                                         "peak_rss_mib")}
    return {"selected": sel, "subset": subset, "summary": keep,
            "emb": np.load(os.path.join(out, "embeddings.npy")).tobytes(),
            "rows": np.load(os.path.join(out, "rows.npy")).tolist(),
            "pngs": {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out)) if f.endswith(".png")}}


@pytest.mark.parametrize("kind, args, worlds", [
    ("shards", [], (2, 4)),
    ("folder", ["--start", "40"], (2, 4)),
    ("parquet", ["--column", "image"], (2,)),
    ("shards", ["--method", "facility"], (2,)),  # no sharded form: rank 0 selects over the whole pool
])
def test_ranks_equal_one_process(sources, tmp_path, kind, args, worlds):
    if kind not in sources:
        pytest.skip("pyarrow is not installed: no parquet source")
    one = _curate(sources[kind], tmp_path / "one", *args)
    assert one.returncode == 0, one.stderr[-2000:]
    want = _outputs(tmp_path / "one")
    for w in worlds:
        p = _curate(sources[kind], tmp_path / f"w{w}", *args, ranks=w)
        assert p.returncode == 0, p.stderr[-3000:]
        s = json.loads(p.stdout.strip().splitlines()[-1])  # rank 0 alone prints
        assert s["ranks"] == w and p.stdout.count('"source"') == 1
        got = _outputs(tmp_path / f"w{w}")
        for k in want:
            assert got[k] == want[k], (w, k)
    if "--start" in args:
        assert want["selected"][1][2] == "40"  # the first pick is the source index asked for


def test_killed_rank_stops_the_run_and_another_world_size_resumes(sources, tmp_path):
    p = _curate(sources["shards"], tmp_path / "run", ranks=2, env={"FASTSEL_TEST_KILL_RANK": "1:2"})
    assert p.returncode != 0  # no hang: the launcher stops rank 0 when rank 1 dies
    shards = sorted(os.listdir(tmp_path / "run" / "embeddings"))
    written = [f for f in shards if f.startswith("shard_")]
    assert 2 <= len(written) < 12 and not (tmp_path / "run" / "selected.csv").exists()
    mtimes = {f: os.stat(tmp_path / "run" / "embeddings" / f).st_mtime_ns for f in written}
    p = _curate(sources["shards"], tmp_path / "run", ranks=4)
    assert p.returncode == 0, p.stderr[-3000:]
    for f, t in mtimes.items():  # reused, not embedded again
        assert os.stat(tmp_path / "run" / "embeddings" / f).st_mtime_ns == t
    assert _curate(sources["shards"], tmp_path / "one").returncode == 0
    assert _outputs(tmp_path / "run") == _outputs(tmp_path / "one")


def test_rank_that_cannot_read_its_shard_stops_every_rank(sources, tmp_path):
    assert _curate(sources["shards"], tmp_path / "run", ranks=2).returncode == 0
    bad = tmp_path / "run" / "embeddings" / "shard_000010.npz"  # 12 shards: rank 1 holds 6..11
    bad.write_bytes(b"not an npz")
    os.unlink(tmp_path / "run" / "selected.csv")
    p = _curate(sources["shards"], tmp_path / "run", ranks=2, timeout=120)
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 2, p.stderr[-3000:]  # one line per rank, each naming rank 1 and the file
    assert all("rank 1 of 2" in e and "shard_000010.npz is unreadable" in e for e in errors)
    assert sum("every rank stops" in e for e in errors) == 1
    assert "an unexpected error" not in p.stderr and "/fastsel/" not in p.stderr  # no traceback of ours
    assert not (tmp_path / "run" / "selected.csv").exists()


def test_pool_beyond_the_memory_share_is_read_memory_mapped(sources, tmp_path):
    """FASTSEL_CURATE_MEMORY below the pool's bytes: one process streams greedy over a memory-mapped
    embeddings.npy, each rank maps its rows of it; the outputs equal the in-memory run's."""
    small = {"FASTSEL_CURATE_MEMORY": "1000"}
    assert _curate(sources["shards"], tmp_path / "mem").returncode == 0
    want = _outputs(tmp_path / "mem")
    p = _curate(sources["shards"], tmp_path / "one", env=small)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "greedy streams a memory-mapped" in p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["embedding"]["mapped"] is True
    p2 = _curate(sources["shards"], tmp_path / "two", ranks=2, env=small)
    assert p2.returncode == 0, p2.stderr[-2000:]
    assert "read memory-mapped" in p2.stderr
    assert _outputs(tmp_path / "one") == want and _outputs(tmp_path / "two") == want
    p = _curate(sources["shards"], tmp_path / "one", "--method", "facility", env=small)
    assert p.returncode == 1 and "--method facility needs the pool in memory" in p.stderr
    assert p.stderr.count("Error:") == 1 and "Traceback" not in p.stderr
