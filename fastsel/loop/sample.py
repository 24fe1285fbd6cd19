"""DDPM / DDIM sampling with diffusers, resumable: each image's noise comes from its own generator
(seeded by run seed, stage and image index), so samples do not depend on the batch size, and
finished batches are kept on disk so a killed sampler resumes where it stopped."""
from __future__ import annotations

import glob
import os
import sys
from typing import Callable, Optional

import numpy as np
import torch

from ..io import save_npy
from .config import LoopConfig
from .train import _scheduler, maybe_kill, to_uint8


def _sample_scheduler(cfg: LoopConfig):
    from diffusers import DDIMScheduler, DDPMScheduler
    base = _scheduler(cfg)
    if cfg.sampler == "ddim":
        s = DDIMScheduler.from_config(base.config)
        s.set_timesteps(cfg.sample_steps)
        return s
    s = DDPMScheduler.from_config(base.config)
    s.set_timesteps(cfg.sample_steps if cfg.sample_steps else 1000)
    return s


def image_generator(seed: int, stage: int, i: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + stage * 7_919 + i) % (2 ** 63 - 1))


@torch.no_grad()
def sample(cfg: LoopConfig, model, count: int, size: int, channels: int, stage: int, workdir: str,
           labels: Optional[np.ndarray] = None, num_classes: int = 0,
           progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """``count`` images (uint8 NHWC), image i from its own generator; finished batches are kept in
    ``workdir/parts`` so that a killed run resumes with the next batch."""
    device = torch.device(cfg.device)
    parts = os.path.join(workdir, "parts")
    os.makedirs(parts, exist_ok=True)
    B = cfg.sample_batch
    out = []
    for b0 in range(0, count, B):
        path = os.path.join(parts, f"part_{b0:09d}.npy")
        nb = min(B, count - b0)
        if os.path.exists(path):
            try:
                part = np.load(path, allow_pickle=False)
            except (ValueError, EOFError):
                part = None
            if isinstance(part, np.ndarray) and part.dtype == np.uint8 and part.shape == (nb, size, size, channels):
                out.append(part)
                if progress is not None:
                    progress(nb)
                continue
            # a finished batch is a cache: a damaged one is sampled again (same generators, same images)
            print(f"warning: {path} is damaged; sampling that batch again", file=sys.stderr)
        gens = [image_generator(cfg.seed, stage, b0 + j) for j in range(nb)]
        x = torch.stack([torch.randn((channels, size, size), generator=gi) for gi in gens]).to(device)
        sch = _sample_scheduler(cfg)  # fresh per batch: some schedulers keep per-run state
        if cfg.cfg_scale > 0:
            y = torch.from_numpy(labels[b0:b0 + nb].astype(np.int64)).to(device)
            null = torch.full_like(y, num_classes)
        for t in sch.timesteps:
            tt = torch.full((nb,), int(t), device=device, dtype=torch.long)
            if cfg.cfg_scale > 0:
                eps = model(torch.cat([x, x]), torch.cat([tt, tt]), class_labels=torch.cat([y, null])).sample
                ec, eu = eps.chunk(2)
                eps = eu + cfg.cfg_scale * (ec - eu)
            else:
                eps = model(x, tt).sample
            x = sch.step(eps, t, x, generator=gens).prev_sample
        img = to_uint8(x)
        save_npy(path, img)
        out.append(img)
        if progress is not None:
            progress(nb)
        maybe_kill("sample_batch")
    return np.concatenate(out) if out else np.zeros((0, size, size, channels), np.uint8)


def clear_parts(workdir: str) -> None:
    for p in glob.glob(os.path.join(workdir, "parts", "part_*.npy")):
        os.unlink(p)
