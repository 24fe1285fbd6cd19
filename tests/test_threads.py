"""fastsel._threads: the core governor and the OpenMP wait policy (moved here from the reliability
files)."""
import os
import subprocess
import sys

import pytest
import torch


# ------------------------------------------------------------------ 11. a busy machine

def test_core_governor_follows_the_free_cores(monkeypatch):
    from fastsel import _threads as T
    monkeypatch.setattr(T.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda k: calls.append(k))
    readings = iter([(0, 0, 0),        # start
                     (200, 0, 100),    # both CPUs busy, half of it ours: another process holds a core
                     (400, 200, 200),  # one CPU idle, the other ours: free again
                     ])
    monkeypatch.setattr(T, "_read", lambda: next(readings))
    monkeypatch.setattr(T, "_cpus", lambda: 2)
    g = T.CoreGovernor(every=3, first=1, enabled=True)
    g.step()                                  # first look: a competitor -> 1 thread
    assert calls == [1]
    g.step(), g.step()                        # third step: free again -> 2 threads
    assert calls == [1, 2]
    assert g.others((0, 0, 0), (200, 100, 100)) == 0.0  # only this process was busy


@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_the_wait_policy_does_not_reach_child_processes(user):
    """fastsel sets OMP_WAIT_POLICY only for the runtime it loads with ``_C``, then takes it back out:
    a child process (a --jobs worker, a benchmark's run) started torch's runtime passive when it leaked,
    and 2-thread training ran 2x slower. A policy the user set stays."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "FASTSEL_OMP_WAIT_POLICY")}
    if user:
        env["OMP_WAIT_POLICY"] = user
    code = ("import os, subprocess, sys, fastsel; print(os.environ.get('OMP_WAIT_POLICY')); "
            "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"OMP_WAIT_POLICY\"))'], "
            "capture_output=True, text=True).stdout.strip())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(user)] * 2
