"""`fastsel curate` on the forms image collections live in: a nested folder with a corrupt file, a
Hugging Face dataset saved to disk, parquet files, a .npy; resumable embedding; the outputs."""
import csv
import os

import numpy as np
import pytest
from click.testing import CliRunner

from fastsel import curate as C
from fastsel.curate.embed import _to_array
from fastsel.cli.main import cli
from fastsel.errors import DataError, FastselError


def _images(rng, k, side=10, ch=3):
    return rng.integers(0, 256, (k, side, side, ch)).astype(np.uint8)


@pytest.fixture
def folder(tmp_path, rng):
    from PIL import Image
    root = tmp_path / "photos"
    ims = _images(rng, 30)
    for i, a in enumerate(ims):
        d = root / ("x" if i % 3 == 0 else "y/z" if i % 3 == 1 else "")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(d / f"im{i:02d}.png")
    (root / "y" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a header, no image
    (root / "notes.txt").write_text("not an image")
    return root


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _run(args):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return r


def test_folder_curate_matches_select_lists_the_corrupt_file_and_links_the_subset(folder, tmp_path):
    out = tmp_path / "out"
    _run(["curate", str(folder), "-n", "7", "--out", str(out), "--features", "pixels", "--shard-rows", "8", "-q"])
    rows = _csv(out / "selected.csv")
    assert [int(r["rank"]) for r in rows] == list(range(7))
    emb = np.load(out / "embeddings.npy")
    assert emb.shape == (30, 300)  # 31 image files, one unreadable
    bad = (out / "unreadable.txt").read_text()
    assert "broken.png" in bad and len(bad.strip().splitlines()) == 1
    # the same picks as `fastsel select` on the same embeddings
    _run(["select", "--in", str(out / "embeddings.npy"), "--n", "7", "--out", str(tmp_path / "idx.npy"), "-q",
          "--no-metrics"])
    assert [int(r["row"]) for r in rows] == np.load(tmp_path / "idx.npy").tolist()
    # ids are the files' relative paths; the subset holds links to exactly those files
    src = C.open_source(str(folder))
    kept = np.load(out / "rows.npy")
    for r in rows:
        assert r["id"] == src.ids[int(r["source_index"])] and int(kept[int(r["row"])]) == int(r["source_index"])
        link = out / "subset" / r["id"]
        assert link.is_symlink() and os.path.samefile(link, folder / r["id"])
    assert float(rows[0]["distance_at_pick"]) == float("inf")
    d = [float(r["distance_at_pick"]) for r in rows[1:]]
    assert d == sorted(d, reverse=True)  # farthest-point picks: non-increasing distance to the set
    report = (out / "report.md").read_text()
    assert "coverage radius" in report and (out / "first_picks.png").stat().st_size > 0
    # a rerun with --copy replaces the subset (ours) with copies
    _run(["curate", str(folder), "-n", "7", "--out", str(out), "--features", "pixels", "--shard-rows", "8", "-q",
          "--copy"])
    link = out / "subset" / rows[0]["id"]
    assert not link.is_symlink() and link.read_bytes() == (folder / rows[0]["id"]).read_bytes()


def test_killed_embedding_resumes_to_identical_embeddings(folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):  # killed after two of the four shards
        C.embed_source(C.open_source(str(folder)), "pixels", str(out), shard_rows=8, quiet=True, stop_after_shards=2)
    shards = sorted(os.listdir(out / "embeddings"))
    assert shards == ["manifest.json", "shard_000000.npz", "shard_000001.npz"]
    msgs = []
    C.curate(str(folder), 5, str(out), features="pixels", shard_rows=8, quiet=True, log=msgs.append)
    assert any("resuming: 2 of 4" in m for m in msgs)
    fresh = tmp_path / "fresh"
    C.curate(str(folder), 5, str(fresh), features="pixels", shard_rows=8, quiet=True, log=lambda m: None)
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(fresh / "embeddings.npy"))
    assert (out / "selected.csv").read_text() == (fresh / "selected.csv").read_text()


def test_a_changed_run_is_refused_not_mixed(folder, tmp_path):
    out = tmp_path / "out"
    C.curate(str(folder), 4, str(out), features="pixels", quiet=True, log=lambda m: None)
    with pytest.raises(DataError, match="holds embeddings of another run \\(image_shape"):
        C.curate(str(folder), 4, str(out), features="pixels", image_size=8, quiet=True, log=lambda m: None)


def test_out_inside_the_source_and_a_foreign_subset_are_refused(folder, tmp_path):
    r = CliRunner().invoke(cli, ["curate", str(folder), "-n", "3", "--out", str(folder / "picked"),
                                 "--features", "pixels"])
    assert r.exit_code == 1 and "inside the source folder" in r.output
    out = tmp_path / "out"
    _run(["curate", str(folder), "-n", "3", "--out", str(out), "--features", "pixels", "-q"])
    import shutil
    shutil.rmtree(out / "subset")
    (out / "subset").mkdir()
    (out / "subset" / "mine.txt").write_text("keep me")  # a subset folder fastsel did not write
    r = CliRunner().invoke(cli, ["curate", str(folder), "-n", "3", "--out", str(out), "--features", "pixels"])
    assert r.exit_code == 1 and "not written by fastsel curate" in r.output
    assert (out / "subset" / "mine.txt").read_text() == "keep me"


def _hf_dataset(rng, k=24):
    datasets = pytest.importorskip("datasets")
    from PIL import Image
    ims = _images(rng, k, side=8)
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in ims], "label": list(range(k))})
    return ds.cast_column("image", datasets.Image()), ims


def test_hf_dataset_on_disk_curated_to_a_dataset_in_pick_order(tmp_path, rng):
    datasets = pytest.importorskip("datasets")
    ds, ims = _hf_dataset(rng)
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    _run(["curate", str(tmp_path / "ds"), "-n", "6", "--out", str(out), "--features", "pixels", "-q"])
    rows = _csv(out / "selected.csv")
    sub = datasets.load_from_disk(str(out / "subset"))
    assert len(sub) == 6
    assert sub["label"] == [int(r["source_index"]) for r in rows]  # pick order
    for img, r in zip(sub["image"], rows):
        assert np.array_equal(np.asarray(img), ims[int(r["source_index"])])
    _run(["select", "--in", str(out / "embeddings.npy"), "--n", "6", "--out", str(tmp_path / "i.npy"), "-q",
          "--no-metrics"])
    assert [int(r["row"]) for r in rows] == np.load(tmp_path / "i.npy").tolist()


def test_parquet_written_by_datasets_and_a_plain_one(tmp_path, rng):
    pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ds, ims = _hf_dataset(rng)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    out = tmp_path / "out"
    _run(["curate", str(tmp_path / "d.parquet"), "-n", "5", "--out", str(out), "--features", "pixels", "-q"])
    rows = _csv(out / "selected.csv")
    sub = pq.read_table(out / "subset" / "subset.parquet")
    assert sub.num_rows == 5 and sub.column("label").to_pylist() == [int(r["source_index"]) for r in rows]
    # a plain parquet of PNG bytes: the column must be named
    import io
    from PIL import Image
    cells = []
    for a in ims:
        b = io.BytesIO()
        Image.fromarray(a).save(b, format="PNG")
        cells.append(b.getvalue())
    pq.write_table(pa.table({"png": cells, "k": list(range(len(ims)))}), tmp_path / "plain.parquet")
    r = CliRunner().invoke(cli, ["curate", str(tmp_path / "plain.parquet"), "-n", "5", "--out", str(tmp_path / "o2"),
                                 "--features", "pixels"])
    assert r.exit_code == 1 and "--column" in r.output
    _run(["curate", str(tmp_path / "plain.parquet"), "--column", "png", "-n", "5", "--out", str(tmp_path / "o2"),
          "--features", "pixels", "-q"])
    # same images, same features, same picks as the datasets-written file
    assert _csv(tmp_path / "o2" / "selected.csv") == rows


def test_npy_source_embeddings_option_and_dedup(tmp_path, rng):
    ims = _images(rng, 20, side=6)
    ims = np.concatenate([ims, ims[:5]])  # 5 exact duplicates
    np.save(tmp_path / "im.npy", ims)
    out = tmp_path / "out"
    r = C.curate(str(tmp_path / "im.npy"), 10, str(out), features="pixels", dedup=0.001, quiet=True, log=lambda m: None)
    assert r["dedup"]["removed"] == 5
    sel = np.load(out / "subset" / "images.npy")
    assert len({a.tobytes() for a in sel}) == 10
    # precomputed embeddings: the same picks without embedding again
    out2 = tmp_path / "out2"
    C.curate(str(tmp_path / "im.npy"), 10, str(out2), embeddings=str(out / "embeddings.npy"), dedup=0.001,
             quiet=True, log=lambda m: None)
    assert (out2 / "selected.csv").read_text() == (out / "selected.csv").read_text()
    np.save(tmp_path / "short.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(DataError, match="3 rows, but the source has 25"):
        C.curate(str(tmp_path / "im.npy"), 2, str(tmp_path / "o3"), embeddings=str(tmp_path / "short.npy"),
                 quiet=True, log=lambda m: None)


def test_source_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["curate", str(tmp_path / "nope"), "-n", "3", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no such file or folder" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["curate", str(tmp_path / "empty"), "-n", "3", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no images" in r.output


def test_sixteen_bit_and_large_images_and_start_as_a_source_index(tmp_path, rng):
    from PIL import Image
    root = tmp_path / "deep"
    root.mkdir()
    a16 = (rng.integers(0, 65536, (6, 8, 8))).astype(np.uint16)
    for i, a in enumerate(a16):
        Image.fromarray(a).save(root / f"{i}.png")  # 16-bit grayscale PNGs
    src = C.open_source(str(root))
    assert C.target_shape(src, None) == (8, 8, 1)
    got = _to_array(src.load(0), (8, 8, 1))[..., 0]
    assert np.abs(got.astype(int) - np.round(a16[0] / 257.0).astype(int)).max() <= 1  # scaled, not clipped at 255
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(rng.integers(0, 256, (700, 600, 3)).astype(np.uint8)).save(big / "a.png")
    Image.fromarray(rng.integers(0, 256, (20, 30)).astype(np.uint8)).save(big / "b.png")  # gray among RGB: RGB
    assert C.target_shape(C.open_source(str(big)), None) == (C.MAX_SIDE, C.MAX_SIDE, 3)
    # --start names a source row; after an unreadable row the embedding rows shift but the pick does not
    (root / "0a.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # sorts between 0.png and 1.png: source index 1
    r = CliRunner().invoke(cli, ["curate", str(root), "-n", "3", "--out", str(tmp_path / "o"), "--features", "pixels",
                                 "--start", "4", "-q"])
    assert r.exit_code == 0, r.output
    first = _csv(tmp_path / "o" / "selected.csv")[0]
    assert first["source_index"] == "4" and first["row"] == "3"
    r = CliRunner().invoke(cli, ["curate", str(root), "-n", "3", "--out", str(tmp_path / "o"), "--features", "pixels",
                                 "--start", "1"])
    assert r.exit_code == 1 and "--start 1: that source row is not readable" in r.output


def test_a_source_inside_out_is_refused(folder, tmp_path):
    out = tmp_path / "out"
    _run(["curate", str(folder), "-n", "4", "--out", str(out), "--features", "pixels", "-q", "--copy"])
    r = CliRunner().invoke(cli, ["curate", str(out / "subset"), "-n", "2", "--out", str(out), "--features", "pixels"])
    assert r.exit_code == 1 and "lies inside --out" in r.output
    assert len([f for _, _, fs in os.walk(out / "subset") for f in fs if f.endswith(".png")]) == 4


def test_a_foreign_non_empty_out_is_refused(folder, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own notes")
    r = CliRunner().invoke(cli, ["curate", str(folder), "-n", "3", "--out", str(out), "--features", "pixels"])
    assert r.exit_code == 1 and "choose a new or empty folder" in r.output
    assert (out / "report.md").read_text() == "my own notes"


def test_the_embedding_count_and_rate_cover_every_batch_of_every_shard(folder, tmp_path):
    """Batches smaller than a shard: the reported count is every readable row embedded this run (it
    once counted only each shard's last batch), and a resumed run counts only what it embedded."""
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):  # one shard of 8 rows written, in batches of 3
        C.embed_source(C.open_source(str(folder)), "pixels", str(out), shard_rows=8, batch_size=3, quiet=True,
                       stop_after_shards=1)
    first = np.load(out / "embeddings" / "shard_000000.npz")
    feats, rows, bad, info = C.embed_source(C.open_source(str(folder)), "pixels", str(out), shard_rows=8,
                                            batch_size=3, quiet=True, log=lambda m: None)
    assert len(rows) == 30 and len(bad) == 1  # 31 files, one unreadable
    assert info["embedded"] == 30 - len(first["rows"])
    assert info["img_per_s"] == pytest.approx(info["embedded"] / info["seconds"])
    fresh = C.curate(str(folder), 5, str(tmp_path / "fresh"), features="pixels", shard_rows=8, batch_size=3,
                     quiet=True, log=lambda m: None)
    assert fresh["embedding"]["embedded"] == fresh["readable"] == 30


def test_exact_duplicates_give_no_entropy_and_say_why_instead_of_failing(tmp_path, rng):
    """A collection with exact copies: the random baseline (or the subset) can hold a pair at distance
    0, whose KL entropy is -inf -- which JSON cannot hold. curate once failed writing curate.json
    there; the entropy is now None with a note in the summary, the report and the log."""
    ims = _images(rng, 4, side=6)
    np.save(tmp_path / "dups.npy", np.concatenate([ims] * 6))  # 24 rows, 4 distinct: any 8 hold a copy
    msgs = []
    r = C.curate(str(tmp_path / "dups.npy"), 8, str(tmp_path / "o"), features="pixels", method="random", quiet=True,
                 log=msgs.append)
    assert r["entropy"] is None and r["entropy_random"] is None
    assert "exact duplicates" in r["entropy_note"] and "--dedup 1e-6" in r["entropy_note"]
    import json
    assert json.loads((tmp_path / "o" / "curate.json").read_text())["entropy_note"] == r["entropy_note"]
    assert "exact duplicates" in (tmp_path / "o" / "report.md").read_text() and any("-inf" in m for m in msgs)
    res = CliRunner().invoke(cli, ["curate", str(tmp_path / "dups.npy"), "-n", "8", "--out", str(tmp_path / "o2"),
                                   "--features", "pixels", "--method", "random"])
    assert res.exit_code == 0 and "entropy n/a (random n/a)" in res.output, res.output
    # no duplicates: finite entropies and no note
    np.save(tmp_path / "distinct.npy", _images(rng, 24, side=6))
    r = C.curate(str(tmp_path / "distinct.npy"), 8, str(tmp_path / "o3"), features="pixels", quiet=True,
                 log=lambda m: None)
    assert r["entropy"] is not None and r["entropy_random"] is not None and r["entropy_note"] is None


def test_odd_folders_links_and_names_are_read_not_fatal(folder, tmp_path, rng):
    """A broken link and a file name that is not UTF-8 are listed or kept as they are, never fatal; a
    linked sub-folder is followed once (a link back to the root does not loop); unreadable files
    sorted first do not hide the readable ones behind them."""
    from PIL import Image
    other = tmp_path / "other"
    other.mkdir()
    for i, a in enumerate(_images(rng, 3)):
        Image.fromarray(a).save(other / f"o{i}.png")
    os.symlink(other, folder / "linked")
    os.symlink(folder, folder / "x" / "loop")  # a link back up: read once
    os.symlink(tmp_path / "nowhere.png", folder / "dangling.png")
    latin = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # not UTF-8
    Image.fromarray(_images(rng, 1)[0]).save(latin, format="PNG")
    out = tmp_path / "out"
    _run(["curate", str(folder), "-n", "34", "--out", str(out), "--features", "pixels", "-q"])
    kept = np.load(out / "rows.npy")
    src = C.open_source(str(folder))
    ids = [src.ids[int(i)] for i in kept]
    assert len(ids) == 34 and sum(i.startswith("linked" + os.sep) for i in ids) == 3  # 30 + 3 linked + café
    assert not any("loop" in i for i in ids)
    bad = (out / "unreadable.txt").read_bytes()
    assert b"dangling.png" in bad and b"broken.png" in bad
    assert b"caf\xe9.png" in (out / "selected.csv").read_bytes()  # the name as it is on disk
    # 100 unreadable files sorted before the images
    many = tmp_path / "badfirst"
    many.mkdir()
    for i in range(100):
        (many / f"a{i:03d}.png").write_bytes(b"")
    for i, a in enumerate(_images(rng, 6)):
        Image.fromarray(a).save(many / f"b{i}.png")
    r = C.curate(str(many), 3, str(tmp_path / "o2"), features="pixels", quiet=True, log=lambda m: None)
    assert r["readable"] == 6 and r["unreadable"] == 100


def test_dedup_eps_removes_exact_duplicates_and_zero_is_refused(tmp_path, rng):
    from fastsel.clusters import semdedup
    ims = _images(rng, 60, side=12)
    np.save(tmp_path / "dup.npy", np.concatenate([ims, ims[:40]]))
    r = C.curate(str(tmp_path / "dup.npy"), 10, str(tmp_path / "o"), features="pixels", dedup=1e-6, quiet=True,
                 log=lambda m: None)
    assert r["dedup"]["removed"] == 40 and r["dedup"]["kept"] == 60
    with pytest.raises(FastselError, match="--dedup 0.0 removes nothing"):
        C.curate(str(tmp_path / "dup.npy"), 10, str(tmp_path / "o0"), features="pixels", dedup=0.0, quiet=True)
    # the library's eps = 0: rows closer than 0 go, i.e. none -- whatever the rounding of the duplicates
    x = np.load(tmp_path / "o" / "embeddings.npy")
    assert len(semdedup(x, eps=0.0, seed=0)[0]) == 100 and len(semdedup(x, eps=1e-6, seed=0)[0]) == 60


def test_start_is_refused_where_a_method_has_no_first_pick(tmp_path, rng):
    np.save(tmp_path / "im.npy", _images(rng, 40, side=6))
    for method in ("facility", "herding", "random", "semdedup", "kmeans-balanced"):
        with pytest.raises(FastselError, match="no first pick"):
            C.curate(str(tmp_path / "im.npy"), 5, str(tmp_path / "o"), features="pixels", method=method, start=7,
                     quiet=True)
    for method in ("greedy", "threshold", "dpp"):
        C.curate(str(tmp_path / "im.npy"), 5, str(tmp_path / method), features="pixels", method=method, start=7,
                 quiet=True, log=lambda m: None)
        assert _csv(tmp_path / method / "selected.csv")[0]["source_index"] == "7", method
    np.save(tmp_path / "f.npy", rng.standard_normal((40, 4)).astype(np.float32))
    r = CliRunner().invoke(cli, ["select", "--in", str(tmp_path / "f.npy"), "-n", "5", "--method", "facility",
                                 "--start", "3", "--out", str(tmp_path / "i.npy")])
    assert r.exit_code == 1 and "no first pick" in r.output and not (tmp_path / "i.npy").exists()


def test_a_failed_run_can_be_rerun_and_a_foreign_subset_stops_before_any_write(tmp_path, rng):
    np.save(tmp_path / "im.npy", _images(rng, 20, side=6))
    np.save(tmp_path / "e.npy", rng.standard_normal((20, 4)).astype(np.float32))
    out = tmp_path / "o"
    with pytest.raises(FastselError, match="more than"):  # fails before any work (500 > the 20 rows)
        C.curate(str(tmp_path / "im.npy"), 500, str(out), embeddings=str(tmp_path / "e.npy"), quiet=True)
    C.curate(str(tmp_path / "im.npy"), 5, str(out), embeddings=str(tmp_path / "e.npy"), quiet=True,
             log=lambda m: None)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    import shutil
    shutil.rmtree(out / "subset")
    (out / "subset").mkdir()
    (out / "subset" / "mine.txt").write_text("a user's file")
    with pytest.raises(DataError, match="not written by fastsel curate"):
        C.curate(str(tmp_path / "im.npy"), 7, str(out), embeddings=str(tmp_path / "e.npy"), quiet=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing rewritten
    nan = rng.standard_normal((20, 4)).astype(np.float32)
    nan[5, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataError, match=r"nan.npy: 1 row\(s\) hold NaN or Inf values \(first: row 5\)"):
        C.curate(str(tmp_path / "im.npy"), 5, str(tmp_path / "o3"), embeddings=str(tmp_path / "nan.npy"), quiet=True)


def test_an_array_subset_keeps_the_source_layout_and_stale_files_go(tmp_path, rng):
    gray = rng.integers(0, 256, (30, 8, 8), dtype=np.uint8)
    nchw = rng.integers(0, 256, (30, 3, 8, 8), dtype=np.uint8)
    for name, a in (("gray.npy", gray), ("nchw.npy", nchw)):
        np.save(tmp_path / name, a)
        out = tmp_path / f"o-{name}"
        C.curate(str(tmp_path / name), 5, str(out), features="pixels", quiet=True, log=lambda m: None)
        rows = [int(r["source_index"]) for r in _csv(out / "selected.csv")]
        assert np.array_equal(np.load(out / "subset" / "images.npy"), a[rows]), name
        assert not (out / "subset" / "labels.npy").exists()  # a .npy has no labels to carry
    np.savez(tmp_path / "lab.npz", images=nchw, labels=np.arange(30))
    out = tmp_path / "o-npz"
    C.curate(str(tmp_path / "lab.npz"), 5, str(out), features="pixels", quiet=True, log=lambda m: None)
    rows = [int(r["source_index"]) for r in _csv(out / "selected.csv")]
    assert np.load(out / "subset" / "labels.npy").tolist() == rows
    # n = every row: no rejected images, so an earlier run's redundant.png goes; n = 1: why no entropy
    assert (out / "redundant.png").exists()
    r = C.curate(str(tmp_path / "lab.npz"), 30, str(out), features="pixels", quiet=True, log=lambda m: None)
    assert not (out / "redundant.png").exists()
    r = C.curate(str(tmp_path / "lab.npz"), 1, str(out), features="pixels", quiet=True, log=lambda m: None)
    assert r["entropy"] is None and "one row" in r["entropy_note"]


def test_linked_folders_real_paths_win_and_out_through_a_link_is_refused(tmp_path, rng):
    """A link to a folder inside the source does not rename or duplicate it, whatever the listing
    order; a link to the source or above it is not followed; --out inside a linked folder is refused
    like --out inside the source; a source folder whose name is not UTF-8 gets its report."""
    from PIL import Image
    from fastsel.data.folder import walk_images
    root = tmp_path / "src"
    for sub in ("cats", "zdogs"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(_images(rng, 1)[0]).save(root / sub / "1.png")
    os.symlink(root / "cats", root / "acats")  # sorts before the real folder
    os.symlink(tmp_path, root / "up")  # above the source: not followed
    ext = tmp_path / "ext"
    ext.mkdir()
    Image.fromarray(_images(rng, 1)[0]).save(ext / "e.png")
    os.symlink(ext, root / "linked")
    files, real = walk_images(str(root))
    assert [os.path.relpath(f, root) for f in files] == [os.path.join("cats", "1.png"), os.path.join("linked", "e.png"),
                                                         os.path.join("zdogs", "1.png")]
    assert os.path.realpath(ext) in real
    with pytest.raises(DataError, match="linked from it"):
        C.curate(str(root), 2, str(ext / "picked"), features="pixels", quiet=True)
    latin = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(latin)
    for i, a in enumerate(_images(rng, 4)):
        Image.fromarray(a).save(os.path.join(latin, b"%d.png" % i), format="PNG")
    r = C.curate(os.fsdecode(latin), 2, str(tmp_path / "o"), features="pixels", quiet=True, log=lambda m: None)
    assert r["readable"] == 4 and b"caf\xe9" in (tmp_path / "o" / "report.md").read_bytes()


def test_a_run_hashes_its_source_and_reads_its_first_images_once(tmp_path, rng, monkeypatch):
    """A run asks for the source's fingerprint (a hash of every byte of an array file) and its image shape
    (the first 100 images decoded) in more than one place: each is computed once per source object,
    and a source changed between runs is still a new fingerprint."""
    from fastsel.curate import embed as E, sources as S
    path = tmp_path / "ims.npy"
    np.save(path, _images(rng, 40))
    hashed, shaped = [], []
    real_fp, real_shape = S.ArraySource._fingerprint, E._target_shape
    monkeypatch.setattr(S.ArraySource, "_fingerprint", lambda self: hashed.append(1) or real_fp(self))
    monkeypatch.setattr(E, "_target_shape", lambda src, size: shaped.append(1) or real_shape(src, size))
    out = tmp_path / "out"
    _run(["curate", str(path), "-n", "5", "--out", str(out), "--features", "pixels", "--shard-rows", "16", "-q"])
    assert len(hashed) == 1 and len(shaped) == 1
    before = C.open_source(str(path)).fingerprint()
    np.save(path, _images(rng, 40))
    assert C.open_source(str(path)).fingerprint() != before
