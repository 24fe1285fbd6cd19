"""The CPU main job's frontier: minutes of training vs how recognisable the samples are.

Trains one DDPM of the loop (fastsel.loop.train.train) on n real MNIST digits resized to SIZE,
samples 256 images and scores them with the LeNet classifier (fastsel.features.lenet): mean
max-softmax ("class_confidence"). Real MNIST test digits at the same size are scored as the
ceiling, uniform noise scores about 0.49.

    fastsel bench frontier '{"ch": [16, 32], "size": 16, "n_real": 512, "train_steps": 800,
        "batch_size": 32, "lr": 2e-3, "lr_schedule": "cosine", "warmup_steps": 50, "sampler": "ddim",
        "sample_steps": 50, "ema": true}'
"""
import json
import tempfile
import time

import numpy as np

from fastsel import data
from fastsel.cli.loop import _glibc_keep_memory
from fastsel.features import lenet
from fastsel.loop import sample as SM
from fastsel.loop import train as MD
from fastsel.loop.config import UNETS, LoopConfig
from fastsel.loop.run import resize_images


def run(a):
    args = json.loads(a.config)
    _glibc_keep_memory()
    ch, size = tuple(args.pop("ch")), args.pop("size")
    UNETS["frontier"] = dict(block_out_channels=ch, layers_per_block=args.pop("lpb", 1), norm_num_groups=8,
                             down_block_types=("DownBlock2D",) * len(ch), up_block_types=("UpBlock2D",) * len(ch))
    ds = data.load("mnist", n=args.pop("n_real"), seed=0)
    ims = resize_images(ds.images, size)
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
    print(json.dumps(dict(train_s=round(t1 - t0, 1), sample_s=round(t2 - t1, 1), loss=round(loss, 4),
                          real_confidence=round(real["class_confidence"], 3), lenet_test_accuracy=info["test_accuracy"],
                          **{k: round(v, 3) for k, v in lenet.class_stats(le, s).items()})))
