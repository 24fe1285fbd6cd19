"""`fastsel curate` against a hostile user (issue #44): a cached model never replaced for an error
that is not its own, inputs never overwritten or rounded, one run per output folder, and every bad
input one line (no traceback) before any work."""
import csv
import fcntl
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from fastsel import curate as C
from fastsel.cli.main import cli
from _helpers import imgs, invoke as run, one_line

LOCK = ".fastsel-curate.lock"  # the lock file a run holds in its --out


def _images(rng, k, side=6, ch=3):
    return rng.integers(0, 256, (k, side, side, ch)).astype(np.uint8)


def _invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _ok(args):
    r = _invoke(args)
    assert r.exit_code == 0, r.output
    return r


def _refused(args, code, text):
    """A one-line refusal: the exit status, the message, no traceback."""
    r = _invoke(args)
    assert r.exit_code == code, r.output
    assert text in r.output, r.output
    assert "Traceback" not in r.output and "unexpected error" not in r.output, r.output
    return r


def _picks(out):
    with open(out / "selected.csv") as f:
        return [int(r["source_index"]) for r in csv.DictReader(f)]


@pytest.fixture
def src12(tmp_path, rng):
    p = tmp_path / "im.npy"
    np.save(p, _images(rng, 12))
    return p


# ------------------------------------------------------------------ 1. the cached LeNet and --device
def _fake_lenet_cache(tmp_path, monkeypatch):
    """A valid cached LeNet (random weights) under a private FASTSEL_DATA; training is a failure."""
    import torch
    from fastsel.features import lenet
    monkeypatch.setenv("FASTSEL_DATA", str(tmp_path / "fsdata"))
    path = lenet.cache_path("lenet")
    os.makedirs(os.path.dirname(path))
    torch.save(lenet.LeNet().state_dict(), path)
    with open(path[:-3] + ".json", "w") as f:
        json.dump({"name": "lenet", "test_accuracy": 0.99}, f)

    def no_training(*a, **k):
        raise AssertionError("the cached LeNet was retrained")
    monkeypatch.setattr(lenet, "train", no_training)
    return path, open(path, "rb").read()


def test_cuda_without_a_gpu_is_refused_first_and_the_cached_lenet_is_kept(tmp_path, monkeypatch, src12):
    """Once: the valid cache was called "unreadable", retrained and overwritten, then a traceback."""
    import torch
    path, before = _fake_lenet_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    _refused(["curate", src12, "-n", "2", "--features", "lenet", "--device", "cuda", "--out", out], 2,
             "--device cuda: no CUDA device is visible")
    assert open(path, "rb").read() == before and not out.exists()  # before any work
    _refused(["curate", src12, "-n", "2", "--features", "pixels", "--device", "tpu", "--out", out], 2,
             "--device must be cpu or cuda[:K], got 'tpu'")
    assert not out.exists()


def test_lenet_cache_is_replaced_only_when_it_cannot_be_read(tmp_path, monkeypatch):
    from fastsel.features import lenet
    path, before = _fake_lenet_cache(tmp_path, monkeypatch)

    def failing_move(self, *a, **k):
        raise RuntimeError("CUDA error: no kernel image is available")
    with monkeypatch.context() as m:  # the cache reads; moving the model fails: that error, cache kept
        m.setattr(lenet.LeNet, "to", failing_move)
        with pytest.raises(RuntimeError, match="no kernel image"):
            lenet.load("lenet", device="cuda")
    assert open(path, "rb").read() == before
    model, info = lenet.load("lenet", device="cpu")  # and it still loads
    assert info["test_accuracy"] == 0.99
    with open(path, "wb") as f:  # a damaged cache is retrained and replaced, as before
        f.write(b"not a torch file")
    monkeypatch.setattr(lenet, "train", lambda *a, **k: (lenet.LeNet(), 0.5))
    assert lenet.load("lenet", device="cpu")[1]["test_accuracy"] == 0.5
    assert open(path, "rb").read() != b"not a torch file"


# ------------------------------------------------------- 2. an input is never one of the outputs
def test_embeddings_inside_out_are_never_overwritten(tmp_path, rng, src12):
    e = tmp_path / "e.npy"
    np.save(e, rng.standard_normal((12, 3)))  # float64
    out = tmp_path / "out"
    _ok(["curate", src12, "-n", "3", "--embeddings", e, "--out", out, "-q"])
    mine = out / "embeddings.npy"
    before = mine.read_bytes()
    assert np.load(mine).dtype == np.float64
    os.symlink(mine, tmp_path / "link.npy")
    os.link(mine, tmp_path / "hard.npy")
    for given in (mine, tmp_path / "link.npy", tmp_path / "hard.npy"):
        _refused(["curate", src12, "-n", "4", "--embeddings", given, "--out", out], 2, "which this run rewrites")
    assert mine.read_bytes() == before
    assert len(_picks(out)) == 3  # the earlier run's outputs stand


# ---------------------------------------------- 3. --embeddings read as select reads them (no float32)
@pytest.mark.parametrize("rows", [(1e8 + 3 * np.arange(12)).reshape(-1, 1),  # float64: 1e8 + 3k
                                  (2 ** 40 + np.arange(12, dtype=np.int64)).reshape(-1, 1)])  # int64
def test_float64_and_int64_embeddings_are_not_rounded(tmp_path, src12, rows):
    """float32 rounded 1e8 + 3k to multiples of 8 (picks [0, 10, 4, 2]) and made 2**40 + k one point."""
    e = tmp_path / "e.npy"
    np.save(e, rows)
    out = tmp_path / "out"
    _ok(["curate", src12, "-n", "4", "--start", "0", "--embeddings", e, "--out", out, "-q"])
    assert _picks(out) == [0, 11, 5, 8]
    _ok(["select", "--in", e, "-n", "4", "--start", "0", "--out", tmp_path / "i.npy", "-q", "--no-metrics"])
    assert np.load(tmp_path / "i.npy").tolist() == _picks(out)
    kept = np.load(out / "embeddings.npy")
    assert kept.dtype == rows.dtype and np.array_equal(kept, rows)  # the user's data, as it was
    with open(out / "selected.csv") as f:
        step = 3 if rows.dtype == np.float64 else 1
        assert float(list(csv.DictReader(f))[1]["distance_at_pick"]) == 11 * step


def test_huge_float64_embeddings_are_accepted_as_select_accepts_them(tmp_path, rng, src12):
    """Rows of magnitude 1e300 were said to "hold NaN or Inf" (their float32 copy did)."""
    x = rng.standard_normal((12, 3)) * 1e300
    np.save(tmp_path / "e.npy", x)
    out = tmp_path / "out"
    r = _ok(["curate", src12, "-n", "5", "--embeddings", tmp_path / "e.npy", "--out", out, "--json"])
    _ok(["select", "--in", tmp_path / "e.npy", "-n", "5", "--out", tmp_path / "i.npy", "-q", "--no-metrics"])
    assert np.load(tmp_path / "i.npy").tolist() == _picks(out)
    res = json.loads(r.stdout)
    assert np.isfinite(res["coverage"]["max"]) and res["coverage"]["max"] > 1e299
    with open(out / "selected.csv") as f:
        d = [float(row["distance_at_pick"]) for row in csv.DictReader(f)][1:]
    assert all(np.isfinite(d)) and min(d) > 1e299
    _ok(["curate", src12, "-n", "5", "--embeddings", tmp_path / "e.npy", "--out", tmp_path / "o2", "-q",
         "--dedup", "0.01"])


def test_an_npz_of_several_arrays_takes_key(tmp_path, rng, src12):
    a, b = rng.standard_normal((12, 3)), rng.standard_normal((12, 5))
    np.savez(tmp_path / "e.npz", a=a, b=b)
    out = tmp_path / "out"
    _refused(["curate", src12, "-n", "4", "--embeddings", tmp_path / "e.npz", "--out", out], 1,
             "choose one with --key")
    _ok(["curate", src12, "-n", "4", "--embeddings", tmp_path / "e.npz", "--key", "b", "--out", out, "-q"])
    _ok(["select", "--in", tmp_path / "e.npz", "--key", "b", "-n", "4", "--out", tmp_path / "i.npy", "-q",
         "--no-metrics"])
    assert np.load(tmp_path / "i.npy").tolist() == _picks(out)
    assert np.array_equal(np.load(out / "embeddings.npy"), b)
    _refused(["curate", src12, "-n", "4", "--key", "b", "--out", out, "--features", "pixels"], 2,
             "no --embeddings was given")


# ---------------------------------------------------------------- 4. one run per output folder
def test_a_second_run_on_one_out_is_refused_while_the_first_holds_it(tmp_path, src12):
    out = tmp_path / "out"
    _ok(["curate", src12, "-n", "3", "--features", "pixels", "--out", out, "-q"])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != LOCK}
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for folder in (out, fresh):
        with open(folder / LOCK, "a+") as held:  # another fastsel process, as far as the lock can tell
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = _refused(["curate", src12, "-n", "4", "--features", "pixels", "--out", folder], 1,
                         "is in use by another fastsel process")
            assert len(r.output.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != LOCK} == before
    assert sorted(os.listdir(fresh)) == [LOCK]
    _ok(["curate", src12, "-n", "4", "--features", "pixels", "--out", out, "-q"])  # released: runs again
    assert len(_picks(out)) == 4


def test_a_killed_runs_temporary_files_are_removed_at_start(tmp_path, src12):
    out = tmp_path / "out"
    _ok(["curate", src12, "-n", "3", "--features", "pixels", "--out", out, "-q"])
    stale = [out / ".fs-abc123_x.tmp", out / "embeddings" / ".fs-zz9y8x7w.tmp"]
    for p in stale:
        p.write_bytes(b"")  # what SIGKILL during an atomic write leaves
    (out / ".subset.tmp4242").mkdir()
    (out / ".subset.tmp4242" / "images.npy").write_bytes(b"half")
    keep = [out / ".fs-notes.txt", out / "embeddings" / "fs-abc.tmp"]  # not our naming: kept
    for p in keep:
        p.write_text("mine")
    _ok(["curate", src12, "-n", "3", "--features", "pixels", "--out", out, "-q"])
    assert not any(p.exists() for p in stale) and not (out / ".subset.tmp4242").exists()
    assert all(p.read_text() == "mine" for p in keep)


# ------------------------------------------------------------------- 5. checks before any work
def test_n_and_start_beyond_the_source_are_refused_before_embedding(tmp_path, src12):
    out = tmp_path / "out"
    _refused(["curate", src12, "-n", "13", "--features", "pixels", "--out", out], 1, "--n 13 is more than the 12 rows")
    _refused(["curate", src12, "-n", "2", "--start", "12", "--features", "pixels", "--out", out], 1,
             "--start 12: that source row is out of range")
    assert not out.exists()


def test_column_and_copy_are_refused_where_they_do_not_apply(tmp_path, rng, src12):
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, a in enumerate(_images(rng, 4)):
        Image.fromarray(a).save(folder / f"{i}.png")
    out = tmp_path / "out"
    _refused(["curate", folder, "-n", "2", "--column", "image", "--features", "pixels", "--out", out], 2,
             "--column applies to a parquet file or a Hugging Face dataset")
    _refused(["curate", src12, "-n", "2", "--column", "image", "--features", "pixels", "--out", out], 2,
             "--column applies to a parquet file or a Hugging Face dataset")
    _refused(["curate", src12, "-n", "2", "--copy", "--features", "pixels", "--out", out], 2,
             "--copy applies to a folder of images")
    assert not out.exists()
    _ok(["curate", folder, "-n", "2", "--copy", "--features", "pixels", "--out", out, "-q"])


# --------------------------------------------------------------------- 5. sources: one line each
def test_unreadable_parquet_files_are_one_line(tmp_path, rng):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"png": [bytes(100)] * 50, "k": list(range(50))}), good)
    data = good.read_bytes()
    bad = {"garbage.parquet": b"this is not a parquet file at all" * 10, "truncated.parquet": data[:len(data) // 2],
           "empty.parquet": b""}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        _refused(["curate", tmp_path / name, "-n", "2", "--features", "pixels", "--out", tmp_path / "out"], 1,
                 f"{name}: not a readable parquet file")
    assert not (tmp_path / "out").exists()


def test_broken_and_empty_datasets_folders_are_one_line(tmp_path, rng):
    datasets = pytest.importorskip("datasets")
    from PIL import Image
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"image": [], "label": []}, features=feats).save_to_disk(str(tmp_path / "empty"))
    _refused(["curate", tmp_path / "empty", "-n", "2", "--features", "pixels", "--out", tmp_path / "o"], 1,
             "the dataset has no rows")
    ims = [Image.fromarray(a) for a in _images(rng, 4)]
    datasets.Dataset.from_dict({"image": ims, "label": [0, 1, 2, 3]}, features=feats).save_to_disk(
        str(tmp_path / "ds"))
    (tmp_path / "ds" / "dataset_info.json").write_text("{ not json")
    _refused(["curate", tmp_path / "ds", "-n", "2", "--features", "pixels", "--out", tmp_path / "o"], 1,
             "not a readable datasets folder")
    assert not (tmp_path / "o").exists()


def test_a_missing_local_folder_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: asked.append(a) or 1 / 0)
    r = _refused(["curate", "data/imgs", "-n", "2", "--features", "pixels", "--out", "o"], 1,
                 "data/imgs: no such file or folder")
    assert "Hub" not in r.output and not asked
    # owner/name with no local folder of that owner: the hub, and its failure as one line
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(
        ConnectionError("Couldn't reach 'someone/thing' on the Hub (LocalEntryNotFoundError)")))
    _refused(["curate", "someone/thing", "-n", "2", "--features", "pixels", "--out", "o"], 1,
             "someone/thing: no such local file or folder")


def test_an_image_folder_with_a_stray_state_json_is_read_as_images(tmp_path, rng):
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, a in enumerate(_images(rng, 5)):
        Image.fromarray(a).save(folder / f"{i}.png")
    (folder / "state.json").write_text('{"app": "my photo tool"}')
    (folder / "dataset_info.json").write_text("{}")  # both, but no .arrow files: not a datasets folder
    r = C.curate(str(folder), 3, str(tmp_path / "out"), features="pixels", quiet=True, log=lambda m: None)
    assert r["kind"] == "folder" and r["readable"] == 5


def test_quiet_silences_the_datasets_progress_bars(tmp_path, rng):
    datasets = pytest.importorskip("datasets")
    from datasets.utils import are_progress_bars_disabled
    from PIL import Image
    ims = [Image.fromarray(a) for a in _images(rng, 8)]
    ds = datasets.Dataset.from_dict({"image": ims}).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "ds"))
    loud = _ok(["curate", tmp_path / "ds", "-n", "3", "--features", "pixels", "--out", tmp_path / "o1"])
    assert "Saving the dataset" in loud.stderr  # the subset's save_to_disk shows a bar without -q
    quiet = _ok(["curate", tmp_path / "ds", "-n", "3", "--features", "pixels", "--out", tmp_path / "o2", "-q"])
    assert quiet.output == "" and quiet.stderr == ""
    assert not are_progress_bars_disabled()  # the switch is datasets', and set back after the run


# ------------------------------------------------------------------------ 5. reading the images
def test_exif_orientation_is_applied(tmp_path, rng):
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    side = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)  # stored 6 wide, 4 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(side).save(folder / "a.png", exif=exif)
    upright = rng.integers(0, 256, (6, 4, 3)).astype(np.uint8)
    Image.fromarray(upright).save(folder / "b.png")
    out = tmp_path / "out"
    _ok(["curate", folder, "-n", "2", "--features", "pixels", "--out", out, "-q"])
    emb = np.load(out / "embeddings.npy")
    want = np.rot90(side, -1)  # (6, 4, 3), as a viewer shows it
    assert np.allclose(emb[0], want.reshape(-1) / 255.0) and np.allclose(emb[1], upright.reshape(-1) / 255.0)


def test_pgm_ppm_and_tiff_are_read_like_png(tmp_path, rng):
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    gray = rng.integers(0, 256, (4, 8, 8)).astype(np.uint8)
    Image.fromarray(gray[0]).save(folder / "a.pgm")
    Image.fromarray(np.repeat(gray[1][..., None], 3, -1)).save(folder / "b.ppm")
    Image.fromarray(gray[2]).save(folder / "c.tif")
    Image.fromarray(gray[3]).save(folder / "d.TIFF")
    Image.fromarray(gray[0]).save(folder / "e.png")
    r = C.curate(str(folder), 5, str(tmp_path / "out"), features="pixels", quiet=True, log=lambda m: None)
    assert r["readable"] == 5 and r["unreadable"] == 0
    emb = np.load(tmp_path / "out" / "embeddings.npy")
    assert np.array_equal(emb[0], emb[4])  # the PGM reads as the PNG of the same pixels
    assert {".pgm", ".ppm", ".tif", ".tiff", ".png", ".jpg", ".webp", ".bmp", ".gif"} <= set(C.image_extensions())


def test_a_users_file_added_to_subset_is_never_deleted_by_a_rerun(tmp_path):
    """Held-out sweep: a rerun on the same --out replaced subset/ whole, deleting a file the user had put
    there. Now the rerun refuses (one line) and the file stays."""
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from fastsel.cli.main import cli
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "out"
    args = ["curate", str(src), "--features", "pixels", "--device", "cpu", "-q", "--copy", "--out", str(out)]
    r = CliRunner().invoke(cli, args + ["-n", "3"])
    assert r.exit_code == 0, r.output
    (out / "subset" / "mynotes.txt").write_text("my notes")
    r = CliRunner().invoke(cli, args + ["-n", "4"])
    assert r.exit_code != 0 and "did not write" in r.output and "mynotes.txt" in r.output
    assert (out / "subset" / "mynotes.txt").read_text() == "my notes"
    (out / "subset" / "mynotes.txt").unlink()
    r = CliRunner().invoke(cli, args + ["-n", "4"])  # without the stranger, the rerun replaces its own subset
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------------ moved here from test_reliability4.py

# ------------------------------------------------------------------ 4. curate: --features with --embeddings

def test_item4_curate_refuses_features_given_with_embeddings(imgs, tmp_path):
    np.save(tmp_path / "e.npy", np.random.default_rng(0).standard_normal((12, 4)))
    err = one_line(run("curate", imgs, "-n", 3, "--out", tmp_path / "c", "--embeddings", tmp_path / "e.npy",
                       "--features", "pixels", "-q"), 2)
    assert "--features" in err and "--embeddings" in err
    assert not (tmp_path / "c").exists()
    r = run("curate", imgs, "-n", 3, "--out", tmp_path / "c", "--embeddings", tmp_path / "e.npy", "-q")
    assert r.exit_code == 0, r.output  # --embeddings alone (the default --features unsaid) still works
