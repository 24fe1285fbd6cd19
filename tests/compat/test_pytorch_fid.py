"""fastsel.fid against pytorch-fid (github.com/mseitzer/pytorch-fid, tests/test_fid_score.py and
src/pytorch_fid/fid_score.py at commit af953a98e1e9c50a5e51d9a5294a282bfaee5e07), re-expressed from
its facts (pytorch-fid is not installed: it would pull its own torch):

* test_calculate_fid_given_statistics: mu = 0 and 1 (d = 2048; 512 here), sigma = I for both -> the FID is
  exactly sum((m1 - m2)^2).
* test_compute_statistics_of_path: a folder of three 4x4 RGB PNGs (0, 0.5, 1 times 255) through a
  model that averages each channel -> mu ~ 0.5 (atol 1e-3), sigma ~ 0.25 everywhere (np.cov, unbiased).
* test_compute_statistics_of_path_from_file: an .npz of mu (5,) and sigma (5, 5) is read back as it
  is. Its sigma there is np.random.randn(5, 5), not symmetric: fastsel refuses it on purpose (one
  DataError line: not a covariance matrix); a symmetric one is read back exactly.
* test_image_types: a white 24x24 RGB image saved under every extension of pytorch-fid's
  IMAGE_EXTENSIONS (bmp, jpg, jpeg, pgm, png, ppm, tif, tiff, webp) reads back unchanged.
* calculate_frechet_distance: d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), with eps * I added
  to both covariances when the square root is not finite; here held to a naive float64 computation.

fastsel fid / embed / curate read folders through one extension list (fastsel.data.folder.image_extensions,
every format Pillow opens): PGM, PPM and TIFF folders written here go through all three commands.
"""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fastsel import data as D
from fastsel import features as Fe
from fastsel import fid as FID
from fastsel.cli.main import cli
from fastsel.data.folder import image_extensions
from fastsel.features._extractor import Extractor
from fastsel.io import DataError

PYTORCH_FID_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")


def naive_frechet(mu1, s1, mu2, s2, eps=1e-6):
    """pytorch-fid's formula, literally, in float64 (scipy's sqrtm, the eps rule, the real part)."""
    from scipy import linalg
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(len(s1)) * eps
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def channel_means(device=None):
    """pytorch-fid's mock model: each image's per-channel mean, in [0, 1] (features (N, 3))."""
    return Extractor("channel-means", lambda x: x,
                     lambda im: torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).mean(dim=(1, 2)),
                     3, torch.device("cpu"))


@pytest.fixture
def stub_inception(monkeypatch):
    """``fastsel fid`` with the channel-means model in Inception's place (no weights needed)."""
    monkeypatch.setitem(Fe.EXTRACTORS, "inception", lambda name, device, model=None: channel_means(device))


def test_fid_of_equal_covariances_is_the_squared_mean_difference():
    dim = 512  # pytorch-fid's 2048 costs a 2048 x 2048 sqrtm (half a minute here) for the same fact
    m1, m2 = np.zeros(dim), np.ones(dim)
    sigma = np.eye(dim)
    value = FID.frechet(FID.Stats(m1, sigma, 10 ** 4), FID.Stats(m2, sigma, 10 ** 4))
    assert value == np.sum((m1 - m2) ** 2)


def test_fid_cli_on_saved_equal_covariances(tmp_path):
    dim = 64
    for name, mu in (("1", np.zeros(dim)), ("2", np.ones(dim))):
        FID.save_stats(str(tmp_path / f"{name}.npz"), FID.Stats(mu, np.eye(dim), 1000))
    r = CliRunner().invoke(cli, ["fid", str(tmp_path / "1.npz"), str(tmp_path / "2.npz"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["fid"] == dim


def test_frechet_matches_the_naive_computation(rng):
    d = 12
    a, b = rng.standard_normal((200, d)), rng.standard_normal((300, d)) * rng.uniform(0.5, 2.0, d) + 0.3
    sa, sb = FID.stats(a), FID.stats(b)
    assert np.allclose(sa.mu, a.mean(0), rtol=0, atol=1e-12)
    assert np.allclose(sa.sigma, np.cov(a, rowvar=False), rtol=1e-12, atol=1e-12)  # unbiased, as np.cov
    ref = naive_frechet(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert FID.frechet(sa, sb) == pytest.approx(ref, rel=1e-9)
    assert FID.frechet_eigh(sa, sb) == pytest.approx(ref, rel=1e-7)


def test_singular_covariances_take_the_eps_rule(rng):
    """n <= d: singular covariances. pytorch-fid's eps rule, plus one warning saying the value is unreliable."""
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((5, 6))
    sa, sb = FID.stats(a), FID.stats(b)
    with pytest.warns(RuntimeWarning, match="n <= d"):
        value = FID.frechet(sa, sb)
    assert value == pytest.approx(max(naive_frechet(sa.mu, sa.sigma, sb.mu, sb.sigma), 0.0), rel=1e-5, abs=1e-6)


def test_statistics_of_an_image_folder(tmp_path, stub_inception):
    """pytorch-fid's folder of three 4x4 PNGs through the channel-means model: mu ~ 0.5, sigma ~ 0.25."""
    size = (4, 4, 3)
    for i, v in enumerate((0.0, 0.5, 1.0)):
        Image.fromarray((np.ones(size) * v * 255).astype(np.uint8), mode="RGB").save(tmp_path / f"{i}.png")
    ds = D.load(str(tmp_path))
    s = FID.stats(channel_means()(ds.images))
    assert np.allclose(s.mu, np.ones(3) * 0.5, atol=1e-3)
    assert np.allclose(s.sigma, np.ones((3, 3)) * 0.25)
    # the CLI's path: folder -> images -> features -> statistics, saved as pytorch-fid's keys
    out = tmp_path.parent / "stats_a.npz"
    r = CliRunner().invoke(cli, ["fid", str(tmp_path), str(tmp_path), "--device", "cpu", "--json", "-q",
                                 "--save-stats", str(out), str(tmp_path.parent / "stats_b.npz")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["fid"] == pytest.approx(0.0, abs=1e-9)
    with np.load(out) as z:
        assert np.allclose(z["mu"], s.mu) and np.allclose(z["sigma"], s.sigma)


def test_statistics_from_file(tmp_path, rng):
    mu = rng.standard_normal(5)
    f = rng.standard_normal((5, 5))
    sigma = f @ f.T
    with (tmp_path / "stats.npz").open("wb") as fh:
        np.savez(fh, mu=mu, sigma=sigma)  # pytorch-fid's keys, no n
    s = FID.load_stats(str(tmp_path / "stats.npz"))
    assert np.array_equal(s.mu, mu) and np.array_equal(s.sigma, sigma)


def test_a_random_non_symmetric_sigma_is_refused(tmp_path, rng):
    """pytorch-fid's from-file test saves sigma = np.random.randn(5, 5) and reads it back as it is;
    fastsel refuses it on purpose: a covariance is symmetric, and a FID from one is meaningless."""
    with (tmp_path / "stats.npz").open("wb") as fh:
        np.savez(fh, mu=rng.standard_normal(5), sigma=rng.standard_normal((5, 5)))
    with pytest.raises(DataError, match="not symmetric") as e:
        FID.load_stats(str(tmp_path / "stats.npz"))
    assert "\n" not in str(e.value)
    ok = tmp_path / "ok.npz"
    FID.save_stats(str(ok), FID.Stats(np.zeros(5), np.eye(5), 10))
    r = CliRunner().invoke(cli, ["fid", str(tmp_path / "stats.npz"), str(ok)])
    assert r.exit_code != 0 and "not symmetric" in r.output and "Traceback" not in r.output


def test_every_pytorch_fid_image_type_reads_back(tmp_path):
    """A white 24x24 RGB image under each of pytorch-fid's extensions (and GIF) loads unchanged."""
    in_arr = np.ones((24, 24, 3), dtype=np.uint8) * 255
    exts = PYTORCH_FID_EXTENSIONS + ("gif",)
    assert {"." + e for e in exts} <= set(image_extensions())
    for ext in exts:
        Image.fromarray(in_arr, mode="RGB").save(tmp_path / f"img.{ext}")
    ds = D.load(str(tmp_path))
    assert len(ds.images) == len(exts)
    for img in ds.images:
        assert np.array_equal(img[..., :3] if img.shape[-1] >= 3 else np.repeat(img, 3, -1), in_arr)


@pytest.fixture
def netpbm_tiff_folder(tmp_path, rng):
    """Eight 8x8 images as PGM, PPM and TIFF only (no PNG/JPEG/WebP/BMP): once "no images found"."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(8):
        a = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        ext = ("pgm", "ppm", "tif", "tiff")[i % 4]
        im = Image.fromarray(a, mode="RGB")
        (im.convert("L") if ext == "pgm" else im).save(folder / f"im{i}.{ext}")
    return folder


def test_fid_embed_and_curate_read_pgm_ppm_tiff(tmp_path, netpbm_tiff_folder, stub_inception):
    src = str(netpbm_tiff_folder)
    r = CliRunner().invoke(cli, ["fid", src, src, "--device", "cpu", "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_a"] == 8
    out = tmp_path / "feats.npy"
    r = CliRunner().invoke(cli, ["embed", src, "--features", "pixels", "--out", str(out), "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    assert np.load(out).shape[0] == 8
    r = CliRunner().invoke(cli, ["curate", src, "-n", "3", "--features", "pixels", "--out", str(tmp_path / "picked"),
                                 "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    assert "no images" not in r.output
