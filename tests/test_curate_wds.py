"""``fastsel curate`` on WebDataset tar shards (img2dataset's layout), written here with the webdataset
package where it is installed and with plain tarfile otherwise; the subset it writes is read back
with the webdataset package."""
import csv
import io
import json
import os
import tarfile

import numpy as np
import pytest

from fastsel import curate as C
from fastsel import wds
from fastsel.errors import DataError

PIL = pytest.importorskip("PIL.Image")


def _png(a) -> bytes:
    b = io.BytesIO()
    PIL.fromarray(a).save(b, format="PNG")
    return b.getvalue()


def _write_shards(folder, rng, shards=3, per=20, side=8, keys=None, missing_image=()):
    """Shards ``folder/00000.tar`` ...: key.png (random pixels), key.txt, key.json per sample;
    returns the decoded images in source order."""
    os.makedirs(folder, exist_ok=True)
    images = []
    for s in range(shards):
        with tarfile.open(os.path.join(folder, f"{s:05d}.tar"), "w") as tf:
            for k in range(per):
                key = keys(s, k) if keys else f"{s:05d}{k:04d}"
                a = (rng.random((side, side, 3)) * 255).astype(np.uint8)
                files = {"txt": f"caption {s} {k}".encode(), "json": json.dumps({"s": s, "k": k}).encode()}
                if (s, k) not in missing_image:
                    files = {"png": _png(a), **files}
                    images.append(a)
                for ext, data in files.items():
                    ti = tarfile.TarInfo(f"{key}.{ext}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
    return np.stack(images)


def _selected(out):
    with open(os.path.join(out, "selected.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_braces_expand_as_webdataset_names_shards():
    assert wds.expand_braces("s/{000..002}.tar") == ["s/000.tar", "s/001.tar", "s/002.tar"]
    assert wds.expand_braces("{a,b}-{8..10}.tar") == ["a-8.tar", "a-9.tar", "a-10.tar", "b-8.tar", "b-9.tar", "b-10.tar"]
    assert wds.split_key("dir/000123.seg.png") == ("dir/000123", "seg.png")


@pytest.mark.parametrize("spec", ["braces", "folder", "one"])
def test_curate_shards_equals_curating_the_decoded_images(tmp_path, rng, spec):
    """The control: curating the shards picks the same source rows as curating the same decoded
    images from a .npy (pixels features: the images are the features)."""
    imgs = _write_shards(tmp_path / "shards", rng, shards=1 if spec == "one" else 3)
    np.save(tmp_path / "imgs.npy", imgs)
    source = {"braces": str(tmp_path / "shards" / "{00000..00002}.tar"), "folder": str(tmp_path / "shards"),
              "one": str(tmp_path / "shards" / "00000.tar")}[spec]
    r = C.curate(source, 7, str(tmp_path / "out"), features="pixels", quiet=True, log=lambda *_: None)
    ref = C.curate(str(tmp_path / "imgs.npy"), 7, str(tmp_path / "ref"), features="pixels", quiet=True,
                   log=lambda *_: None)
    assert r["kind"] == "webdataset" and r["rows"] == len(imgs)
    got, want = _selected(tmp_path / "out"), _selected(tmp_path / "ref")
    assert [g["source_index"] for g in got] == [w["source_index"] for w in want]
    for g in got:  # shard and key name the sample
        i = int(g["source_index"])
        assert g["shard"] == f"{i // 20:05d}.tar" and g["key"] == f"{i // 20:05d}{i % 20:04d}"


def test_subset_shards_hold_every_member_and_webdataset_reads_them(tmp_path, rng):
    webdataset = pytest.importorskip("webdataset")
    _write_shards(tmp_path / "shards", rng)
    C.curate(str(tmp_path / "shards"), 9, str(tmp_path / "out"), features="pixels", quiet=True, log=lambda *_: None)
    picked = _selected(tmp_path / "out")
    shards = sorted(os.listdir(tmp_path / "out" / "subset"))
    assert shards == [".fastsel-subset", "subset-000000.tar"]
    got = list(webdataset.WebDataset(str(tmp_path / "out" / "subset" / "subset-000000.tar"), shardshuffle=False))
    assert [s["__key__"] for s in got] == [p["key"] for p in picked]  # pick order
    src = {}
    for name in sorted(os.listdir(tmp_path / "shards")):
        with tarfile.open(tmp_path / "shards" / name) as tf:
            for m in tf:
                src[m.name] = tf.extractfile(m).read()
    for s in got:
        assert {k for k in s if not k.startswith("__")} == {"png", "txt", "json"}
        for ext in ("png", "txt", "json"):
            assert s[ext] == src[f"{s['__key__']}.{ext}"]  # bytes unchanged


def test_sample_without_image_is_listed_unreadable(tmp_path, rng):
    _write_shards(tmp_path / "shards", rng, shards=2, per=6, missing_image={(1, 2)})
    r = C.curate(str(tmp_path / "shards"), 3, str(tmp_path / "out"), features="pixels", quiet=True,
                 log=lambda *_: None)
    assert r["unreadable"] == 1 and r["readable"] == 11
    line = open(tmp_path / "out" / "unreadable.txt").read()
    assert line.startswith("8\t00001.tar:000010002\t") and "no image member" in line


def test_keys_reused_across_shards_do_not_merge(tmp_path, rng):
    webdataset = pytest.importorskip("webdataset")
    _write_shards(tmp_path / "shards", rng, shards=2, per=5, keys=lambda s, k: f"k{k}")
    C.curate(str(tmp_path / "shards"), 10, str(tmp_path / "out"), features="pixels", quiet=True, log=lambda *_: None)
    got = list(webdataset.WebDataset(str(tmp_path / "out" / "subset" / "subset-000000.tar"), shardshuffle=False))
    assert len(got) == 10 and len({s["__key__"] for s in got}) == 10


def test_missing_shard_is_one_line(tmp_path, rng):
    _write_shards(tmp_path / "shards", rng, shards=2, per=3)
    with pytest.raises(DataError, match=r"shard .*00002\.tar does not exist"):
        C.open_source(str(tmp_path / "shards" / "{00000..00002}.tar"))
    (tmp_path / "bad.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(DataError, match="not a readable tar shard"):
        C.open_source(str(tmp_path / "bad.tar"))


def test_webdataset_grouping_rules(tmp_path):
    """Keys as webdataset forms them: no-extension names and hidden files skipped; a repeated
    extension in one sample is one error line; braces padded when either bound has a leading zero."""
    def tar(path, names):
        with tarfile.open(path, "w") as tf:
            for nm in names:
                ti = tarfile.TarInfo(nm)
                ti.size = 1
                tf.addfile(ti, io.BytesIO(b"x"))
    tar(tmp_path / "a.tar", ["README", "k1.txt", ".DS_Store", "__MACOSX/k9.txt", "k2.txt"])
    assert [s.key for s in wds.index_shards([str(tmp_path / "a.tar")])] == ["k1", "k2"]
    tar(tmp_path / "b.tar", ["k1.jpg", "k1.jpg"])
    with pytest.raises(DataError, match="holds k1.jpg twice"):
        wds.index_shards([str(tmp_path / "b.tar")])
    assert wds.expand_braces("{1..010}.tar")[:2] == ["001.tar", "002.tar"]


def test_a_key_met_three_times_never_merges(tmp_path, rng):
    """Three samples with key ``a`` in one shard (not consecutive), picked next to each other: three
    samples in the subset, none merged."""
    webdataset = pytest.importorskip("webdataset")
    path = tmp_path / "s.tar"
    with tarfile.open(path, "w") as tf:
        for key in ("a", "b", "a", "c", "a"):
            data = _png((rng.random((4, 4, 3)) * 255).astype(np.uint8))
            ti = tarfile.TarInfo(f"{key}.png")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    smp = wds.index_shards([str(path)])
    reader = wds.ShardReader([str(path)])
    out = tmp_path / "out"
    out.mkdir()
    wds.write_shards([smp[0], smp[2], smp[4]], reader, str(out))
    got = list(webdataset.WebDataset(str(out / "subset-000000.tar"), shardshuffle=False))
    assert len(got) == 3 and len({g["__key__"] for g in got}) == 3


def test_out_inside_the_folder_of_shards_is_refused(tmp_path, rng):
    _write_shards(tmp_path / "shards", rng, shards=1, per=4)
    with pytest.raises(DataError, match="inside the folder of shards"):
        C.curate(str(tmp_path / "shards"), 2, str(tmp_path / "shards" / "picked"), features="pixels", quiet=True,
                 log=lambda *_: None)
