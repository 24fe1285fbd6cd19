"""The CPU main job's frontier: minutes of training vs how recognisable the samples are, and
whether the model copies its training images.

Trains one DDPM of the loop (fastsel.loop.train.train) on n real MNIST digits resized to SIZE,
samples 256 images and scores them with the LeNet classifier (fastsel.features.lenet): mean
max-softmax ("class_confidence"). Real MNIST test digits at the same size are scored as the
ceiling, uniform noise scores about 0.49. Memorization: the samples' copy fraction (pixels, the
ratio test of fastsel.metrics.copy_fraction) and GS normalised by 256 held-out real digits
(pixels); the held-out digits' own copy fraction is the control.

    fastsel bench frontier '{"ch": [16, 32], "size": 16, "n_real": 16, "train_steps": 2500,
        "batch_size": 16, "lr": 2e-3, "lr_schedule": "constant", "sampler": "ddim",
        "sample_steps": 50, "ema": true}'

    fastsel bench frontier '{"ch": [16, 32], "size": 16, "n_real": 512, "train_steps": 800,
        "batch_size": 32, "lr": 2e-3, "lr_schedule": "cosine", "warmup_steps": 50, "sampler": "ddim",
        "sample_steps": 50, "ema": true}'
"""
import json
import tempfile
import time

import numpy as np
import torch

from fastsel import data
from fastsel import metrics as M
from fastsel._runtime import keep_freed_memory
from fastsel.features import lenet
from fastsel.loop import sample as SM
from fastsel.loop import train as MD
from fastsel.loop.config import UNETS, LoopConfig
from fastsel.loop.run import resize_images


def run(a):
    args = json.loads(a.config)
    keep_freed_memory()
    ch, size = tuple(args.pop("ch")), args.pop("size")
    UNETS["frontier"] = dict(block_out_channels=ch, layers_per_block=args.pop("lpb", 1), norm_num_groups=8,
                             down_block_types=("DownBlock2D",) * len(ch), up_block_types=("UpBlock2D",) * len(ch))
    full = data.load("mnist")
    keep, held = data.nested_rows(len(full.images), args.pop("n_real"), 0, 256)
    ds = data.Dataset(full.images[keep], full.labels[keep], full.source)
    ims = resize_images(ds.images, size)
    held_ims = resize_images(full.images[held], size)
    le, info = lenet.load("lenet")
    real = lenet.class_stats(le, resize_images(data.load("mnist", split="test", n=1000).images, size))
    cfg = LoopConfig(dataset="mnist", unet="frontier", ckpt_every=10 ** 9, sample_batch=256, **args)
    d = tempfile.mkdtemp()
    t0 = time.time()
    m, loss = MD.train(cfg, ims, ds.labels, 10, d, 0)
    t1 = time.time()
    labels = (np.arange(256) % 10).astype(np.int64)
    s = SM.sample(cfg, m, 256, size, 1, 0, d, labels, 10)
    t2 = time.time()
    px = lambda a: torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255)  # noqa: E731
    mem = dict(copy_fraction=M.copy_fraction(px(s), px(ims)), copy_fraction_holdout=M.copy_fraction(px(held_ims), px(ims)),
               gs_norm_pixels=M.gs_normalized(px(s), px(ims), px(held_ims)))
    print(json.dumps(dict(**{k: round(v, 3) for k, v in mem.items()},train_s=round(t1 - t0, 1), sample_s=round(t2 - t1, 1), loss=round(loss, 4),
                          real_confidence=round(real["class_confidence"], 3), lenet_test_accuracy=info["test_accuracy"],
                          **{k: round(v, 3) for k, v in lenet.class_stats(le, s).items()})))
