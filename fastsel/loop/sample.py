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
    from diffusers import DDIMScheduler, DDPMScheduler  # optional: the loop extra (and seconds of start-up)
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


FAST_DDPM = True  # tests turn it off to compare with diffusers' own step


def _fast_ddpm(sch) -> bool:
    """diffusers' DDPMScheduler draws each step's noise image by image from a list of generators
    (one CPU randn call per image per step: 256,000 calls for 256 images x 1000 steps, a quarter of
    the sampling time on a GPU). For the configuration the loop uses (epsilon prediction, fixed_small
    variance, clipping, no thresholding) :func:`ddpm_step` does the same arithmetic with the noise
    drawn ahead, chunk by chunk, from the same generators: the same numbers (tests/test_loop_sample.py)."""
    from diffusers import DDPMScheduler  # optional: the loop extra (and seconds of start-up)
    c = getattr(sch, "config", None)
    return (FAST_DDPM and type(sch) is DDPMScheduler and c.variance_type == "fixed_small"
            and c.prediction_type == "epsilon" and not c.thresholding)


def ddpm_step(sch, eps: torch.Tensor, t: int, x: torch.Tensor, z: Optional[torch.Tensor]) -> torch.Tensor:
    """One DDPMScheduler.step (epsilon prediction, fixed_small variance) with the noise ``z`` given:
    diffusers' operations in diffusers' order, so the result is the same bit for bit."""
    prev_t = sch.previous_timestep(t)
    a_t = sch.alphas_cumprod[t]
    a_prev = sch.alphas_cumprod[prev_t] if prev_t >= 0 else sch.one
    b_t, b_prev = 1 - a_t, 1 - a_prev
    cur_a = a_t / a_prev
    cur_b = 1 - cur_a
    x0 = (x - b_t ** (0.5) * eps) / a_t ** (0.5)
    if sch.config.clip_sample:
        x0 = x0.clamp(-sch.config.clip_sample_range, sch.config.clip_sample_range)
    prev = (a_prev ** (0.5) * cur_b) / b_t * x0 + cur_a ** (0.5) * b_prev / b_t * x
    if t > 0:
        prev = prev + (sch._get_variance(t) ** 0.5) * z
    return prev


class _NoiseAhead:
    """Each image's per-step noise drawn ``chunk`` steps at a time from its own generator. A draw of
    (K, C, H, W) gives the numbers of K draws of (C, H, W) when C*H*W is a multiple of 16 (torch's CPU
    normal fills 16 at a time); otherwise it draws one step at a time, as diffusers does."""

    def __init__(self, gens, shape, device, chunk: int = 64, max_bytes: int = 256 << 20):
        self.gens, self.shape, self.device = gens, tuple(shape), device
        per_step = 4 * len(gens) * int(np.prod(shape))  # float32 noise of one step of the batch
        chunk = max(1, min(chunk, max_bytes // max(1, per_step)))  # the buffer stays under max_bytes
        self.chunk = chunk if int(np.prod(shape)) % 16 == 0 else 1
        self.buf, self.k = None, 0

    def next(self) -> torch.Tensor:
        if self.buf is None or self.k == len(self.buf):
            draws = torch.stack([torch.randn((self.chunk, *self.shape), generator=g) for g in self.gens], dim=1)
            if self.device.type == "cuda":
                draws = draws.pin_memory()
            self.buf, self.k = draws.to(self.device, non_blocking=True), 0
        self.k += 1
        return self.buf[self.k - 1]


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
        noise = _NoiseAhead(gens, (channels, size, size), device) if _fast_ddpm(sch) else None
        for t in sch.timesteps:
            tt = torch.full((nb,), int(t), device=device, dtype=torch.long)
            if cfg.cfg_scale > 0:
                eps = model(torch.cat([x, x]), torch.cat([tt, tt]), class_labels=torch.cat([y, null])).sample
                ec, eu = eps.chunk(2)
                eps = eu + cfg.cfg_scale * (ec - eu)
            else:
                eps = model(x, tt).sample
            if noise is not None and eps.dtype == torch.float32:
                x = ddpm_step(sch, eps, int(t), x, noise.next() if int(t) > 0 else None)
            else:
                noise = None  # once off the fast path, the generators are drawn by diffusers alone
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
