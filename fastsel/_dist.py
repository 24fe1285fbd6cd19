"""torchrun / accelerate set-up in one place (as edm's torch_utils/distributed.py): the CLI
commands, the loop's driver and its training read the process group only through these."""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Optional

import torch
import torch.distributed as dist


def launched() -> bool:
    """Started by torchrun / accelerate launch with more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple:
    """(rank, world size) of the default group; (0, 1) without one."""
    if not initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def multi() -> bool:
    """A process group of more than one process is up."""
    return rank_world()[1] > 1


def is_main() -> bool:
    return rank_world()[0] == 0


def barrier() -> None:
    if multi():
        dist.barrier()


def init(device: str = "cpu", timeout_s: Optional[float] = None) -> tuple:
    """Under a launcher, start the default group if none is up: nccl for cuda devices (each process
    on its LOCAL_RANK device; the device string it should use is returned), gloo otherwise.
    ``timeout_s``: how long a collective may wait for the slowest rank (torch's default, 30 min, when
    None). Returns (created, device)."""
    if not launched() or initialized():
        return False, device
    kw = {} if timeout_s is None else {"timeout": datetime.timedelta(seconds=timeout_s)}
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", **kw)
        return True, f"cuda:{local}"
    dist.init_process_group("nccl" if device == "auto" and torch.cuda.is_available() else "gloo", **kw)
    return True, device


def wait_limit(default_s: float) -> float:
    """Seconds a collective may wait: FASTSEL_DIST_TIMEOUT when set, else ``default_s``."""
    v = os.environ.get("FASTSEL_DIST_TIMEOUT")
    return float(v) if v else default_s


@contextlib.contextmanager
def group(device: str = "cpu", timeout_s: Optional[float] = None):
    """init() for the length of a block; a group this started is destroyed after it."""
    created, dev = init(device, timeout_s)
    try:
        yield dev
    finally:
        if created:
            dist.destroy_process_group()
