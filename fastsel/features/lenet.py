"""A small LeNet-5 classifier of MNIST-family digits: features and class statistics that mean
something on a CPU (the MNIST self-consuming-loop literature reports a LeNet-feature FID).

Trained once on the dataset's real training split (seeded, about a minute on 2 cores) and cached
under ``$FASTSEL_DATA/lenet/`` (weights loaded with ``weights_only=True``), with its test accuracy
beside it. ``extractor(name)`` gives the 84-d penultimate layer as a fastsel feature extractor
(``--features lenet``); :func:`class_stats` gives the mean max-softmax (``class_confidence``) and
the entropy of the predicted-label histogram (``class_entropy``, log 10 when every class is
equally common; mode collapse lowers it).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import data
from ..data import cache_dir
from ..errors import DataError
from ..io import atomic_path, save_json
from ._extractor import Extractor

DATASETS = {"lenet": "mnist", "lenet-fashion": "fashion-mnist"}
EPOCHS = 2
BATCH = 128


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1 = nn.Linear(16 * 5 * 5, 120)
        self.f2 = nn.Linear(120, 84)
        self.f3 = nn.Linear(84, 10)

    def features(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return F.relu(self.f2(F.relu(self.f1(x.flatten(1)))))

    def forward(self, x):
        return self.f3(self.features(x))


def to_input(images: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 (N, H, W[, 1]) -> float (N, 1, 28, 28) in [0, 1]: 32x32 (the loop's padded MNIST) is
    centre-cropped, other sizes resized."""
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device)  # read-only (mmap): a copy
    if x.dim() == 4:
        x = x[..., :1] if x.shape[-1] in (1, 3) else x
        x = x.permute(0, 3, 1, 2)
    else:
        x = x[:, None]
    x = x.float() / 255.0
    H, W = x.shape[-2:]
    if (H, W) == (32, 32):
        x = x[..., 2:30, 2:30]
    elif (H, W) != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x


def cache_path(name: str, seed: int = 0) -> str:
    return os.path.join(cache_dir(), "lenet", f"{name}-seed{seed}.pt")


def train(name: str = "lenet", seed: int = 0, quiet: bool = False, n_train: int | None = None) -> tuple:
    """Train on the real training split (or a seeded subset of n_train images); returns (model, test
    accuracy). Deterministic for a seed."""
    ds = data.load(DATASETS[name], split="train", n=n_train, seed=seed)
    test = data.load(DATASETS[name], split="test")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = to_input(ds.images), torch.from_numpy(np.require(ds.labels, requirements=["C", "W"]))
    t0 = time.perf_counter()
    steps = EPOCHS * math.ceil(len(x) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for ep in range(EPOCHS):
        perm = torch.randperm(len(x), generator=g)
        for a in range(0, len(x), BATCH):
            i = perm[a:a + BATCH]
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if not quiet:
            print(f"lenet {name}: epoch {ep + 1}/{EPOCHS}, loss {float(loss.detach()):.4f}, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    model.eval()
    acc = accuracy(model, test.images, test.labels)
    return model, acc


@torch.no_grad()
def accuracy(model, images, labels) -> float:
    pred = torch.cat([model(to_input(images[a:a + 2048])).argmax(1) for a in range(0, len(images), 2048)])
    return float((pred.numpy() == np.asarray(labels)).mean())


def load(name: str = "lenet", seed: int = 0, device="cpu", quiet: bool = True) -> tuple:
    """(model, info) from the cache, training and caching it first when absent."""
    if name not in DATASETS:
        raise DataError(f"unknown LeNet {name!r}: one of {', '.join(DATASETS)}")
    path = cache_path(name, seed)
    meta = path[:-3] + ".json"
    model = LeNet()
    if os.path.exists(path) and os.path.exists(meta):
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            with open(meta) as f:
                info = json.load(f)
        except Exception as e:  # noqa: BLE001 -- a damaged cache is retrained, with a line saying so
            print(f"warning: {path} unreadable ({str(e).splitlines()[0][:80]}); retraining", file=sys.stderr)
        else:  # read: the cache stays, whatever happens next (a device that fails is not damage)
            return model.to(device).eval(), info
    t0 = time.perf_counter()
    model, acc = train(name, seed, quiet=quiet)
    info = {"name": name, "dataset": DATASETS[name], "seed": seed, "epochs": EPOCHS, "test_accuracy": acc,
            "train_seconds": time.perf_counter() - t0, "torch": torch.__version__}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    save_json(meta, info)
    return model.to(device).eval(), info


@torch.no_grad()
def probabilities(model, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    dev = next(model.parameters()).device
    out = [F.softmax(model(to_input(images[a:a + batch], dev)), 1).cpu() for a in range(0, len(images), batch)]
    return torch.cat(out).numpy().astype(np.float64)


def extractor(name: str, device) -> "object":
    """The 84-d penultimate layer as a fastsel extractor (``--features lenet``)."""
    model, _ = load(name, device=device)

    def prepare(images):
        return to_input(images, device)
    return Extractor(name, model.features, prepare, 84, device)


def class_stats(model, images: np.ndarray) -> dict:
    """class_confidence: mean max-softmax; class_entropy: entropy (nats) of the predicted-label
    histogram (log 10 = 2.303 when every digit is equally common)."""
    p = probabilities(model, images)
    hist = np.bincount(p.argmax(1), minlength=10) / len(p)
    nz = hist[hist > 0]
    return {"class_confidence": float(p.max(1).mean()), "class_entropy": float(-(nz * np.log(nz)).sum())}
