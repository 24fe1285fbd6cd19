"""torchrun / accelerate set-up in one place (as edm's torch_utils/distributed.py): the CLI
commands, the loop's driver and its training read the process group only through these."""
from __future__ import annotations

import contextlib
import os


def launched() -> bool:
    """Started by torchrun / accelerate launch with more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialized() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple:
    """(rank, world size) of the default group; (0, 1) without one."""
    if not initialized():
        return 0, 1
    import torch.distributed as dist
    return dist.get_rank(), dist.get_world_size()


def multi() -> bool:
    """A process group of more than one process is up."""
    return rank_world()[1] > 1


def is_main() -> bool:
    return rank_world()[0] == 0


def barrier() -> None:
    if multi():
        import torch.distributed as dist
        dist.barrier()


def init(device: str = "cpu") -> tuple:
    """Under a launcher, start the default group if none is up: nccl for cuda devices (each process
    on its LOCAL_RANK device; the device string it should use is returned), gloo otherwise.
    Returns (created, device)."""
    if not launched() or initialized():
        return False, device
    import torch
    import torch.distributed as dist
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return True, f"cuda:{local}"
    dist.init_process_group("nccl" if device == "auto" and torch.cuda.is_available() else "gloo")
    return True, device


@contextlib.contextmanager
def group(device: str = "cpu"):
    """init() for the length of a block; a group this started is destroyed after it."""
    created, dev = init(device)
    try:
        yield dev
    finally:
        if created:
            import torch.distributed as dist
            dist.destroy_process_group()
