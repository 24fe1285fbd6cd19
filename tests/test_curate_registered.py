"""``fastsel curate`` reads the datasets registered with fastsel.data (the registry ``fastsel loop`` reads):
one ``register_dataset`` call makes a dataset curatable by name, or a file kind by its path; the source
kinds curate reads itself keep their order (a local path comes before a registered name)."""
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from fastsel import curate as C
from fastsel import data
from fastsel.cli.main import cli
from fastsel.errors import DataError


def _toy(rng, k=24):
    return data.Dataset(rng.integers(0, 256, (k, 8, 8, 1)).astype(np.uint8), np.arange(k, dtype=np.int64) % 3, "toy")


@pytest.fixture
def registered(rng):
    toy = _toy(rng)
    data.register_dataset("toy-curate", lambda spec, split="train", download=False, size=None: toy, "a test dataset")
    data.register_dataset("<x.toy>", lambda spec, split="train", download=False, size=None: toy, "a test file kind",
                          matches=lambda spec: spec.endswith(".toy"))
    try:
        yield toy
    finally:
        data.SOURCES.pop("toy-curate")
        data.SOURCES.pop("<x.toy>")


def _picks(out):
    with open(out / "selected.csv") as f:
        return [int(r["source_index"]) for r in csv.DictReader(f)]


def _curate(args):
    r = CliRunner().invoke(cli, ["curate", *args, "--features", "pixels", "-q"])
    return r


def test_a_registered_dataset_is_curated_by_name_as_its_arrays_would_be(registered, tmp_path):
    r = _curate(["toy-curate", "-n", "6", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "o"
    picks = _picks(out)
    assert len(picks) == 6 and json.loads((out / "curate.json").read_text())["kind"] == "dataset"
    np.testing.assert_array_equal(np.load(out / "subset" / "images.npy"), registered.images[picks])
    np.testing.assert_array_equal(np.load(out / "subset" / "labels.npy"), registered.labels[picks])
    # the same images as a .npz (curate's own array source): the same picks
    np.savez(tmp_path / "toy.npz", images=registered.images, labels=registered.labels)
    assert _curate([str(tmp_path / "toy.npz"), "-n", "6", "--out", str(tmp_path / "o2")]).exit_code == 0
    assert _picks(tmp_path / "o2") == picks
    # a rerun resumes from the same shards (the fingerprint is stable)
    assert _curate(["toy-curate", "-n", "6", "--out", str(out)]).exit_code == 0 and _picks(out) == picks


def test_a_registered_file_kind_is_curated_by_its_path(registered, tmp_path):
    (tmp_path / "a.toy").write_bytes(b"read by the registered loader")
    src = C.open_source(str(tmp_path / "a.toy"))
    assert isinstance(src, C.DatasetSource) and len(src) == len(registered.images)
    (tmp_path / "b.unknown").write_bytes(b"x")
    with pytest.raises(DataError, match="not a source fastsel curate reads"):  # unregistered kinds: as before
        C.open_source(str(tmp_path / "b.unknown"))


def test_curate_own_kinds_come_first_and_refusals_stay(registered, tmp_path, monkeypatch, rng):
    from PIL import Image
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy-curate").mkdir()  # a local folder of the registered name: read as the folder it is
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).save(tmp_path / "toy-curate" / f"{i}.png")
    assert isinstance(C.open_source("toy-curate"), C.FolderSource)
    with pytest.raises(DataError, match="no such file or folder"):
        C.open_source("not-registered")
    r = _curate(["toy-curate.", "-n", "2", "--out", str(tmp_path / "o")])  # not a name, not a path
    assert r.exit_code != 0 and "no such file or folder" in r.output
    (tmp_path / "toy-curate").rename(tmp_path / "elsewhere")
    r = _curate(["toy-curate", "-n", "2", "--out", str(tmp_path / "o"), "--column", "image"])
    assert r.exit_code != 0 and "--column applies to a parquet file" in r.output
    assert "a dataset registered with fastsel.data" in r.output and "Traceback" not in r.output
