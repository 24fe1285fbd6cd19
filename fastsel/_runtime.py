"""How fastsel runs on this machine, in one private module: the allocator setting training wants and
the physical-memory bound a command checks before any work. The CLI, the loop's sweeps and the
benchmarks all read these rules from here (never from ``fastsel.cli``)."""
from __future__ import annotations

import ctypes
import os


def keep_freed_memory() -> None:
    """glibc hands large freed blocks back to the kernel, so every training step page-faults its
    activations in again (2-2.5x slower forwards on CPU). Keep them: the same as running with
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>. No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)            # M_MMAP_MAX
        libc.mallopt(-1, 2 ** 30)      # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def memory_total():
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_problem(nbytes: float, what: str):
    """Why ``what`` (needing ``nbytes``) cannot run here: more than this machine's physical memory."""
    total = memory_total()
    if total is not None and nbytes > total:
        return f"{what}: {nbytes / 2 ** 30:.3g} GiB needed; this machine has {total / 2 ** 30:.3g} GiB"
    return None
