"""Shared test fixtures: device, backend, rng (data makers and float64 checkers: tests/_helpers.py).

Devices: cpu always; cuda as a parameter that is skipped (not missing) without a GPU.
Backends: cpp (the compiled extension) and torch (the fallback / oracle). The cpp
backend is required unless the package was installed with FASTSEL_NO_EXTENSION=1.

Random data: every test taking the ``rng`` fixture draws a fresh seed on every run and prints it
(pytest shows it with a failure's captured output, e.g. ``FASTSEL_TEST_SEED=189219414``). Replay a
failure with that seed pinned::

    FASTSEL_TEST_SEED=189219414 python -m pytest tests/test_threshold.py -k default_tau

Kernels are checked against float64 references (conftest's check_* helpers, fastsel.reference)
on that fresh data and on fixed edge cases (ties on integer data, duplicates, tiny pools).
"""
import os

import numpy as np
import pytest

from _helpers import BACKENDS, DEVICES


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def rng():
    """A fresh seed per run unless FASTSEL_TEST_SEED pins one (printed on failure)."""
    seed = int(os.environ.get("FASTSEL_TEST_SEED", np.random.SeedSequence().entropy % (2**31)))
    print(f"FASTSEL_TEST_SEED={seed}")
    return np.random.default_rng(seed)


@pytest.fixture
def feats(tmp_path, rng):
    """A (200, 8) float32 feature file of fresh random rows."""
    p = tmp_path / "feats.npy"
    np.save(p, rng.standard_normal((200, 8)).astype(np.float32))
    return p
