"""The extractor interface, on its own so that extractor modules (``lenet``) and the registry
(``fastsel.features``) both import it at module level without a cycle."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Extractor:
    """``prepare`` turns a uint8 NHWC batch into the model's input; ``model`` maps it to (B, dim)."""

    def __init__(self, name: str, model: Callable, prepare: Callable, dim: Optional[int], device: torch.device):
        self.name, self.model, self.prepare, self.dim, self.device = name, model, prepare, dim, device

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.model(self.prepare(images)).float().cpu().numpy()
