"""Where diffusers users watch training: TensorBoard event files or W&B, beside the loop's CSV/PNGs.

``--logger tensorboard`` writes under ``RUN_DIR/tensorboard`` (``torch.utils.tensorboard``; needs the
``tensorboard`` package): the training loss of every model (tag ``train/<arm>/it<t>/loss``, x = step),
every metric of every (arm, iteration) (``metrics/<name>/<arm>``, x = iteration) and a grid of the
first 16 samples (``samples/<arm>``). ``--logger wandb`` logs the same to Weights & Biases when the
package is installed (its own conventions hold: ``WANDB_MODE=offline``, ``WANDB_PROJECT``, ...).
Logging is not part of the run's configuration: a resumed run may log or not.
"""
from __future__ import annotations

import hashlib
import math
import os
from typing import Optional

import numpy as np

from ..errors import DataError

LOGGERS = ("none", "tensorboard", "wandb")


class Logger:
    def __init__(self, kind: str, run_dir: str, config: Optional[dict] = None):
        self.kind, self.w = kind, None
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional: the tensorboard package
            except ImportError:
                raise DataError("--logger tensorboard needs the tensorboard package (pip install tensorboard)") from None
            self.w = SummaryWriter(log_dir=os.path.join(run_dir, "tensorboard"))
        elif kind == "wandb":
            try:
                import wandb  # optional: the wandb package
            except ImportError:
                raise DataError("--logger wandb needs the wandb package (pip install wandb)") from None
            # one W&B run per run folder: a resumed loop continues it (the id is the folder's)
            rid = hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:16]
            self.w = wandb.init(project=os.environ.get("WANDB_PROJECT", "fastsel"), dir=run_dir, id=rid,
                                name=os.path.basename(os.path.abspath(run_dir)), config=config or {},
                                resume="allow")
        elif kind != "none":
            raise DataError(f"unknown logger {kind!r}: {', '.join(LOGGERS)}")

    def scalar(self, tag: str, value, step: int) -> None:
        if self.w is None or value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        if not math.isfinite(float(value)):
            return
        if self.kind == "tensorboard":
            self.w.add_scalar(tag, float(value), int(step))
        else:
            self.w.log({tag: float(value), f"{tag.split('/')[0]}_step": int(step)})

    def images(self, tag: str, images: np.ndarray, step: int) -> None:
        """A square grid of uint8 NHWC images."""
        if self.w is None or len(images) == 0:
            return
        k = int(math.ceil(math.sqrt(len(images))))
        n, H, W, C = images.shape
        grid = np.zeros((k * H, k * W, C), np.uint8)
        for i, im in enumerate(images):
            grid[(i // k) * H:(i // k + 1) * H, (i % k) * W:(i % k + 1) * W] = im
        if self.kind == "tensorboard":
            self.w.add_image(tag, grid, int(step), dataformats="HWC")
        else:
            import wandb  # optional: the wandb package (present: __init__ imported it)
            self.w.log({tag: wandb.Image(grid[..., 0] if C == 1 else grid)})

    def close(self) -> None:
        if self.w is not None:
            if self.kind == "tensorboard":
                self.w.close()
            else:
                self.w.finish()
            self.w = None
