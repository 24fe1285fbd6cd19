"""Loop throughput: fastsel's training and sampling against bare diffusers, in the same run.

Training: ``fastsel.loop.train.train`` (seeded generator, uint8 -> float per batch, checkpoints,
progress) against a bare loop (add_noise -> UNet -> MSE -> Adam on a float tensor already on the
device), same UNet config, batch and device: images/s of each and their ratio.
Sampling: ``fastsel.loop.sample.sample`` (one generator per image, batches kept on disk) against a
bare ``DDPMPipeline`` call with the same scheduler and step count: images/s and ratio.

    fastsel bench loop                              # tiny UNet, CPU
    fastsel bench loop --unet paper --steps 20      # Appendix D CIFAR-10 config, bounded steps
    fastsel bench loop --unet paper --device cuda --mixed-precision bf16
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastsel._runtime import keep_freed_memory  # noqa: E402
from fastsel.io import save_json, save_text  # noqa: E402
from fastsel.loop import sample as SM  # noqa: E402
from fastsel.loop import train as MD  # noqa: E402
from fastsel.loop.config import LoopConfig  # noqa: E402


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_train(cfg: LoopConfig, images: np.ndarray, steps: int) -> float:
    """Seconds for ``steps`` steps of the bare diffusers loop."""
    from diffusers import DDPMScheduler  # optional: diffusers (the loop extra)
    dev = torch.device(cfg.device)
    N, H, W, C = images.shape
    model = MD.build_unet(cfg, H, C).to(dev).train()
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = MD.to_model_space(images, dev)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.mixed_precision) if dev.type == "cuda" else None

    def step():
        idx = torch.randint(0, N, (cfg.batch_size,), device=dev)
        x0 = data[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (cfg.batch_size,), device=dev)
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            pred = model(sched.add_noise(x0, noise, t), t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(2):
        step()
    _sync(cfg.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(cfg.device)
    return time.perf_counter() - t0


def ours_train(cfg: LoopConfig, images: np.ndarray, steps: int) -> tuple:
    """(seconds for ``steps`` steps, seconds for the whole call) of fastsel's training loop.

    The loop trains ``steps + 2`` steps; the steps are timed as the bare loop is, after its two
    warm-up steps. Building the model and the checkpoint written at the end are not steps (a step
    here still draws and converts its batch, checks the core count and records the loss); the whole
    call, all ``steps + 2`` steps included, is timed too."""
    with tempfile.TemporaryDirectory() as d:
        c = dataclasses.replace(cfg, train_steps=steps + 2)
        stamps = []

        def at_step(step, total, _loss):
            if step in (2, total):  # a GPU step is timed when it has finished; the bare loop syncs only there too
                _sync(cfg.device)
            stamps.append(time.perf_counter())
        t0 = time.perf_counter()
        MD.train(c, images, np.zeros(len(images), np.int64), 0, d, 0, progress=at_step)
        _sync(cfg.device)
        return stamps[-1] - stamps[1], time.perf_counter() - t0


def bare_sample(cfg: LoopConfig, model, count: int, size: int, channels: int) -> float:
    from diffusers import DDPMPipeline, DDPMScheduler  # optional: diffusers (the loop extra)
    pipe = DDPMPipeline(unet=model, scheduler=DDPMScheduler(num_train_timesteps=1000))
    pipe.set_progress_bar_config(disable=True)
    _sync(cfg.device)
    t0 = time.perf_counter()
    pipe(batch_size=count, generator=torch.Generator().manual_seed(0), num_inference_steps=cfg.sample_steps,
         output_type="np")
    _sync(cfg.device)
    return time.perf_counter() - t0


def ours_sample(cfg: LoopConfig, model, count: int, size: int, channels: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        _sync(cfg.device)
        t0 = time.perf_counter()
        SM.sample(cfg, model, count, size, channels, 0, d)
        _sync(cfg.device)
        return time.perf_counter() - t0


def sweep(a) -> dict:
    """Wall time of one 2-seed sweep of the main job's recipe (``fastsel loop mnist``, cpu preset,
    ``a.sweep_steps`` training steps, accumulate, none + greedy, one iteration after the shared one)
    run with ``--jobs 1`` and with ``--jobs 2``, each in a fresh folder.

    A warm-up sweep (one training step, not timed) first fills the caches every run reads (the LeNet
    classifier, the real data's features and FID statistics), so neither arm pays them; then the arms
    run in ABBA order (jobs 1, 2, 2, 1) and each arm's mean is compared. Also says whether the arms
    gave the same metrics (they need not: ``--jobs 1`` trains with every thread, ``--jobs 2`` with
    cores // 2 each, and a thread count changes the last bits of a reduction; the loop's tests check
    that ``--jobs 2`` equals the same sweep one sub-run at a time at one thread count)."""
    args = ["loop", "mnist", "--preset", "cpu", "--seeds", "0,1", "--selector", "none,greedy", "--iterations", "2",
            "--eval-samples", "64"]

    def one(d, jobs, steps):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "fastsel", *args, "--train-steps", str(steps), "--jobs", str(jobs),
                            "--run-dir", d], capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError(f"--jobs {jobs} failed: {p.stderr[-2000:]}")
        gs = []
        for s in ("seed0", "seed1"):
            with open(os.path.join(d, s, "metrics.json")) as f:
                gs += [r["gs"] for r in json.load(f)["iterations"]]
        return time.perf_counter() - t0, gs

    times, gs = {1: [], 2: []}, {}
    with tempfile.TemporaryDirectory() as tmp:
        warm, _ = one(os.path.join(tmp, "warm"), 1, 1)
        print(f"warm-up (caches, 1 step): {warm:.1f} s", flush=True)
        for k, jobs in enumerate((1, 2, 2, 1)):
            t, gs[jobs] = one(os.path.join(tmp, f"run{k}-jobs{jobs}"), jobs, a.sweep_steps)
            times[jobs].append(t)
            print(f"--jobs {jobs}: {t:.1f} s", flush=True)
    m1, m2 = statistics.mean(times[1]), statistics.mean(times[2])
    res = {"machine": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
           "torch": torch.__version__, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "command": "fastsel " + " ".join(args) + f" --train-steps {a.sweep_steps} --jobs J",
           "order": "warm-up, then jobs 1, 2, 2, 1", "jobs1_s": times[1], "jobs2_s": times[2],
           "jobs1_mean_s": m1, "jobs2_mean_s": m2, "speedup": m1 / m2, "same_gs": gs[1] == gs[2]}
    os.makedirs(a.out_dir, exist_ok=True)
    save_json(os.path.join(a.out_dir, "bench_loop_sweep.json"), res)
    print(f"sweep ({res['cores']} cores): --jobs 1 {m1:.1f} s, --jobs 2 {m2:.1f} s (means of two, ABBA): "
          f"{res['speedup']:.2f}x; same GS: {res['same_gs']}")
    return res


def run(a):
    if getattr(a, "sweep_steps", None):
        return sweep(a)
    cfg = LoopConfig(dataset="bench", unet=a.unet, batch_size=a.batch_size, device=a.device, sampler="ddpm",
                     sample_steps=a.sample_steps, sample_batch=a.sample_count, mixed_precision=a.mixed_precision,
                     ckpt_every=10 ** 9, lr=1e-4)
    keep_freed_memory()  # as `fastsel loop` runs (both loops profit alike)
    rng = np.random.default_rng(0)
    images = (rng.random((max(256, a.batch_size), a.size, a.size, a.channels)) * 255).astype(np.uint8)
    tb, to, tw = [], [], []
    for r in range(a.repeats):  # alternate (ABBA), so both see the same machine state
        for fn in (bare_train, ours_train)[:: 1 if r % 2 == 0 else -1]:
            if fn is bare_train:
                tb.append(bare_train(cfg, images, a.steps))
            else:
                steps_s, whole_s = ours_train(cfg, images, a.steps)
                to.append(steps_s)
                tw.append(whole_s)
    model = MD.build_unet(cfg, a.size, a.channels).to(torch.device(a.device)).eval()
    sb, so = [], []
    bare_sample(cfg, model, min(8, a.sample_count), a.size, a.channels)  # warm-up
    for r in range(a.repeats):
        for fn, acc in ((bare_sample, sb), (ours_sample, so))[:: 1 if r % 2 == 0 else -1]:
            acc.append(fn(cfg, model, a.sample_count, a.size, a.channels))
    img = a.steps * a.batch_size
    res = {
        "machine": platform.processor() or platform.machine(), "device": a.device,
        "device_name": torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{os.cpu_count()} CPU threads",
        "torch": torch.__version__, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": vars(a),
        "train_img_per_s": {"bare": img / min(tb), "fastsel": img / min(to)},
        "train_ratio": min(tb) / min(to),
        "train_whole_call_s": min(tw),  # fastsel's train(): steps + 2 steps, the model build, the final checkpoint
        "train_whole_call_ratio": (a.steps + 2) * a.batch_size / min(tw) / (img / min(tb)),  # img/s over bare's
        "sample_img_per_s": {"bare DDPMPipeline": a.sample_count / min(sb), "fastsel": a.sample_count / min(so)},
        "sample_ratio": min(sb) / min(so),
    }
    os.makedirs(a.out_dir, exist_ok=True)
    save_json(os.path.join(a.out_dir, "bench_loop.json"), res)
    md = (f"loop throughput -- {res['device_name']}, torch {res['torch']}, {res['date']}\n"
          f"UNet {a.unet}, {a.size}x{a.size}x{a.channels}, batch {a.batch_size}, mixed precision {a.mixed_precision}\n\n"
          f"| stage | bare diffusers (img/s) | fastsel (img/s) | fastsel / bare |\n|---|---|---|---|\n"
          f"| train ({a.steps} steps, best of {a.repeats}) | {res['train_img_per_s']['bare']:.1f} | "
          f"{res['train_img_per_s']['fastsel']:.1f} | {res['train_ratio']:.3f} |\n"
          f"| train, fastsel's whole call ({a.steps} + 2 steps, model build, final checkpoint) | "
          f"{img / min(tb):.1f} | {(a.steps + 2) * a.batch_size / min(tw):.1f} | "
          f"{res['train_whole_call_ratio']:.3f} |\n"
          f"| sample ({a.sample_count} images, {a.sample_steps} DDPM steps) | "
          f"{res['sample_img_per_s']['bare DDPMPipeline']:.1f} | {res['sample_img_per_s']['fastsel']:.1f} | "
          f"{res['sample_ratio']:.3f} |\n")
    save_text(os.path.join(a.out_dir, "bench_loop.md"), md)
    print(md)
    return res
