"""Following the cores a busy machine leaves free.

torch's intra-op threads spin at their barriers; when another process holds one of the cores,
a 2-thread training step waits on the descheduled thread (measured: 1.9x slower than one thread).
:class:`CoreGovernor` looks, every few steps, at how much CPU *other* processes used since its last
look (``/proc/stat`` minus this process's own time) and sets torch's thread count to the cores
left free (at least 1, at most what the process started with). On systems without /proc it does
nothing.
"""
from __future__ import annotations

import os

import torch


def _read():
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        mine = int(fields[11]) + int(fields[12])  # utime + stime of this process (all threads)
    except (OSError, ValueError, IndexError):
        return None
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
    return sum(cpu), idle, mine


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class CoreGovernor:
    """Call :meth:`step` once per training step; after ``first`` steps and then every ``every``
    steps the thread count follows the cores other processes leave free."""

    def __init__(self, every: int = 20, first: int = 2, enabled: bool | None = None):
        self.every, self.first, self.count = every, first, 0
        self.max_threads = torch.get_num_threads()
        self.cpus = _cpus()
        self.enabled = (os.environ.get("FASTSEL_FOLLOW_CORES", "1") != "0") if enabled is None else enabled
        self.enabled = self.enabled and self.max_threads > 1
        self.last = _read() if self.enabled else None
        self.threads = self.max_threads

    def others(self, a, b) -> float:
        """Cores other processes used between two readings."""
        total, idle, mine = (y - x for x, y in zip(a, b))
        if total <= 0:
            return 0.0
        per_cpu = total / (os.cpu_count() or 1)  # /proc/stat counts every CPU of the machine
        return max(0.0, (total - idle - mine) / per_cpu)

    def step(self) -> None:
        if not self.enabled:
            return
        self.count += 1
        if self.count != self.first and self.count % self.every:
            return
        now = _read()
        if now is None or self.last is None:
            self.enabled = False
            return
        others = self.others(self.last, now)
        self.last = now
        free = max(1, min(self.max_threads, int(self.cpus - others + 0.35)))
        if free != self.threads:
            torch.set_num_threads(free)
            self.threads = free

    def close(self) -> None:
        if self.enabled and self.threads != self.max_threads:
            torch.set_num_threads(self.max_threads)
