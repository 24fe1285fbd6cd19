"""DDPM training with diffusers, deterministic and resumable (sampling: sample.py).

Every random draw of training (batch order, noise, timesteps, label dropout) comes from one CPU
``torch.Generator`` whose state is checkpointed with the model and optimizer, so a run resumed from
a checkpoint continues exactly as one never interrupted (on the CPU). Also here: the UNet, the
noise schedule, checkpoints and model files, and the crash hook the resume tests use.
"""
from __future__ import annotations

import math
import os
import pickle
import signal
import sys
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .. import _dist, data
from .._threads import CoreGovernor
from ..io import DataError, atomic_path
from .config import LoopConfig, needs_padding, unet_kwargs
from ..errors import FastselError

_KILL_COUNTS: dict = {}


def maybe_kill(stage: str) -> None:
    """Test hook: FASTSEL_LOOP_KILL="stage:k" SIGKILLs this process at the k-th event of ``stage``
    (train_step, sample_batch, iteration) -- a crash at a chosen moment."""
    spec = os.environ.get("FASTSEL_LOOP_KILL")
    if not spec:
        return
    name, _, k = spec.partition(":")
    if name != stage:
        return
    _KILL_COUNTS[stage] = _KILL_COUNTS.get(stage, 0) + 1
    if _KILL_COUNTS[stage] == int(k):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def to_model_space(images: np.ndarray, device) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def build_unet(cfg: LoopConfig, size: int, channels: int, num_classes: int = 0):
    from diffusers import UNet2DModel  # optional: the loop extra (and seconds of start-up)
    kw = unet_kwargs(cfg.unet, channels)
    levels = len(kw["block_out_channels"])
    if size % (2 ** (levels - 1)):
        raise FastselError(f"image size {size} must be divisible by {2 ** (levels - 1)} for the {cfg.unet} UNet "
                         f"({levels} levels)")
    if cfg.cfg_scale > 0:
        kw["num_class_embeds"] = num_classes + 1  # the last class is "no label" (classifier-free guidance)
    torch.manual_seed(cfg.seed)  # weights: a function of the seed only
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, **kw)


def _scheduler(cfg: LoopConfig):
    from diffusers import DDPMScheduler  # optional: the loop extra (and seconds of start-up)
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule=cfg.beta_schedule)


LOSS_EVERY = 50  # on a GPU the loss shown in the progress bar is read every this many steps


def train_steps_for(cfg: LoopConfig, n_train: int) -> int:
    if cfg.train_steps:
        return int(cfg.train_steps)
    return int(cfg.epochs or 1) * math.ceil(n_train / cfg.batch_size)


def _optimizer(cfg, params):
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps, weight_decay=cfg.weight_decay)


def _lr_lambda(cfg, total):
    def f(step):
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        if cfg.lr_schedule == "cosine":
            p = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
        return 1.0
    return f


def _ddp():
    return _dist.multi()


def _resume(st: dict, model, opt, lr_sched, ema, scaler, g):
    """Load a checkpoint's state into the training objects; returns (step, perm, pos)."""
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    lr_sched.load_state_dict(st["lr_sched"])
    if ema is not None and "ema" in st:
        ema.load_state_dict(st["ema"])
    if scaler is not None and "scaler" in st:
        scaler.load_state_dict(st["scaler"])
    g.set_state(st["gen"])
    return int(st["step"]), st["perm"], int(st["pos"])


def _checkpoint(model, opt, lr_sched, ema, scaler, g, step: int, perm, pos: int) -> dict:
    """What resuming needs: the objects' states, the generator and where the epoch stands."""
    st = {"model": model.state_dict(), "opt": opt.state_dict(), "lr_sched": lr_sched.state_dict(),
          "gen": g.get_state(), "step": step, "perm": perm, "pos": pos}
    if ema is not None:
        st["ema"] = ema.state_dict()
    if scaler is not None:
        st["scaler"] = scaler.state_dict()
    return st


def _distributed(model, device):
    """Under torchrun: the model wrapped in DDP and (rank, world); otherwise (model, 0, 1)."""
    if not _ddp():
        return model, 0, 1
    rank, world = _dist.rank_world()
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None), rank, world


def _draw(g, cfg: LoopConfig, sched, shape, perm, pos: int):
    """One global batch's draws from ``g``, in a fixed order (the same on every rank): the rows (a fresh
    permutation at each epoch's end), the noise, the timesteps, the label drop-out. Returns
    (rows, noise, t, drop, perm, pos)."""
    N, C, H, W = shape
    B = min(cfg.batch_size, N)
    if pos + B > N:  # a new epoch: a fresh permutation from the same generator
        perm, pos = torch.randperm(N, generator=g), 0
    idx = perm[pos:pos + B]
    noise = torch.randn((B, C, H, W), generator=g)
    t = torch.randint(0, sched.config.num_train_timesteps, (B,), generator=g)
    drop = torch.rand(B, generator=g) < cfg.label_dropout
    return idx, noise, t, drop, perm, pos + B


def _optimise(loss, model, opt, scaler, grad_clip: float) -> None:
    """Backward and one optimiser step (gradient clipping and the fp16 scaler when set)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()


def train(cfg: LoopConfig, images: np.ndarray, labels: np.ndarray, num_classes: int, workdir: str, seed: int,
          progress: Optional[Callable[[int, int, float], None]] = None):
    """Train a fresh UNet on ``images`` (uint8 NHWC); returns ``(model, final loss)`` (EMA weights when cfg.ema).

    Writes ``workdir/ckpt.pt`` every cfg.ckpt_every steps (atomically) and resumes from it.
    Under torchrun (world size > 1) the model is wrapped in DDP and each rank takes its slice of
    every global batch, drawn from the same generator on every rank.
    """
    device = torch.device(cfg.device)
    N, H, W, C = images.shape
    model = build_unet(cfg, H, C, num_classes).to(device)
    sched = _scheduler(cfg)
    total = train_steps_for(cfg, N)
    opt = _optimizer(cfg, model.parameters())
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
    ema = None
    if cfg.ema:
        from diffusers.training_utils import EMAModel  # optional: the loop extra (and seconds of start-up)
        # the diffusers script's EMA: warm-up decay 1 - (1 + step / inv_gamma) ** -power, capped at 0.9999
        ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    amp = cfg.mixed_precision if device.type == "cuda" else "no"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    g = torch.Generator().manual_seed(seed)
    step, perm, pos = 0, torch.randperm(N, generator=g), 0
    ckpt = os.path.join(workdir, "ckpt.pt")
    st = load_checkpoint(ckpt)
    if st is not None:
        step, perm, pos = _resume(st, model, opt, lr_sched, ema, scaler, g)
    net, rank, world = _distributed(model, device)
    lab = torch.from_numpy(labels.astype(np.int64))
    model.train()
    loss_v = float("nan")
    gov = CoreGovernor() if device.type == "cpu" else None  # follow the cores other processes leave free
    while step < total:
        idx, noise, t, drop, perm, pos = _draw(g, cfg, sched, (N, C, H, W), perm, pos)
        sl = slice(rank * len(idx) // world, (rank + 1) * len(idx) // world)  # this rank's slice of the batch
        x0 = to_model_space(images[idx[sl].numpy()], device)
        xt = sched.add_noise(x0, noise[sl].to(device), t[sl].to(device))
        kw = {}
        if cfg.cfg_scale > 0:
            kw["class_labels"] = torch.where(drop[sl], num_classes, lab[idx[sl]]).to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = net(xt, t[sl].to(device), **kw).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise[sl].to(device))
        _optimise(loss, model, opt, scaler, cfg.grad_clip)
        lr_sched.step()
        if ema is not None:
            ema.step(model.parameters())
        step += 1
        if device.type != "cuda" or step % LOSS_EVERY == 0 or step == total or step % cfg.ckpt_every == 0:
            loss_v = float(loss.detach())  # on a GPU a read waits for the step: read now and then, not every step
        if progress is not None:
            progress(step, total, loss_v)
        if (step % cfg.ckpt_every == 0 or step == total) and rank == 0:
            save_checkpoint(_checkpoint(model, opt, lr_sched, ema, scaler, g, step, perm, pos), ckpt)
        maybe_kill("train_step")
        if gov is not None:
            gov.step()
    if gov is not None:
        gov.close()
    if ema is not None:
        ema.copy_to(model.parameters())
    model.eval()
    return model, loss_v


def safe_load(path: str):
    """torch.load(weights_only=True) with one line naming the file when it cannot be read.
    Raises _Truncated for a file cut short (a failing disk), DataError for one refused as unsafe."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: refused -- it holds objects a weights-only load does not allow (tampered, or "
                        "not written by fastsel); fastsel never unpickles them: delete the file to redo this "
                        "stage") from None
    except (EOFError, RuntimeError, OSError) as e:
        raise _Truncated(f"{path}: unreadable ({str(e).splitlines()[0][:120]}); delete it to redo this stage") from None


class _Truncated(DataError):
    pass


def load_checkpoint(ckpt: str):
    """The newest readable training checkpoint: ckpt.pt, or the previous one (ckpt.prev.pt) when
    ckpt.pt is missing or cut short; None when there is none."""
    prev = ckpt[:-3] + ".prev.pt"
    for path in (ckpt, prev):
        if not os.path.exists(path):
            continue
        try:
            st = safe_load(path)
        except _Truncated as e:
            print(f"warning: {e}; trying the previous checkpoint", file=sys.stderr)
            continue
        if not isinstance(st, dict) or "model" not in st or "step" not in st:
            raise DataError(f"{path}: not a fastsel training checkpoint; delete it to redo this stage")
        return st
    return None


def save_checkpoint(st: dict, ckpt: str) -> None:
    """Write ckpt.pt atomically, keeping the one before as ckpt.prev.pt (a fallback if a disk
    ever returns the newest one cut short)."""
    prev = ckpt[:-3] + ".prev.pt"
    with atomic_path(ckpt) as tmp:
        torch.save(st, tmp)
        if os.path.exists(ckpt):
            os.replace(ckpt, prev)


def load_model(cfg: LoopConfig, path: str, size: int, channels: int, num_classes: int):
    model = build_unet(cfg, size, channels, num_classes)
    st = safe_load(path)
    try:
        model.load_state_dict(st)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: does not fit this run's UNet ({str(e).splitlines()[0][:120]}); delete it to "
                        "retrain") from None
    return model.to(torch.device(cfg.device)).eval()


def save_model(model, path: str) -> None:
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def describe(cfg: LoopConfig) -> dict:
    """The resolved configuration with what it implies (UNet size, steps and samples per iteration),
    computed without touching data: ``fastsel loop --dry-run``. It lives with training because it builds
    the UNet (on the meta device) to count its parameters."""
    d = cfg.to_json()
    src = data.source(cfg.dataset)
    side, ch = src.shape if src is not None and src.shape is not None else (None, None)
    if side is not None and cfg.image_size:
        side = cfg.image_size
    elif side == 32 and ch == 1 and not needs_padding(28, cfg.unet, 1):
        side = 28  # MNIST is padded to 32x32 only when the UNet's levels need it
    params = None
    if side is not None:
        with torch.device("meta"):
            params = sum(p.numel() for p in build_unet(cfg, side, ch, 10).parameters())
    d.update(unet_params=params, image_size=side, channels=ch,
             steps_per_iteration=train_steps_for(cfg, cfg.n),
             samples_per_iteration=cfg.pool_factor * cfg.n if cfg.paradigm == "replace" else cfg.n)
    d["sample_steps"] = cfg.sample_steps if cfg.sampler == "ddim" else (cfg.sample_steps or 1000)
    d["selectors"] = list(cfg.selectors)
    return d
