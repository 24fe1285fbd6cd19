"""Live oracles from PyPI (the ``compat`` extra; skipped with the reason where they are not installed):
fpsample 's vanilla FPS (its start set too) and torch-quickfps's bucket FPS, against fastsel.greedy and
fastsel.greedy_from on tie-free float64 pools (random Gaussian rows: no two distances tie)."""
import numpy as np
import pytest
import torch

import fastsel


def test_fpsample_vanilla_equals_greedy(rng):
    fpsample = pytest.importorskip("fpsample", reason="fpsample is not installed (pip install -e '.[compat]')")
    x = rng.standard_normal((3000, 3))
    start = int(rng.integers(3000))
    want = fpsample.fps_sampling(x, 200, start_idx=start)
    got = fastsel.greedy(torch.from_numpy(x), 200, start).indices.numpy()
    assert got.tolist() == np.asarray(want).tolist()


def test_fpsample_start_set_equals_greedy_from(rng):
    fpsample = pytest.importorskip("fpsample", reason="fpsample is not installed (pip install -e '.[compat]')")
    x = rng.standard_normal((2000, 3))
    init = rng.choice(2000, size=5, replace=False).tolist()
    want = np.asarray(fpsample.fps_sampling(x, 105, start_idx=init)).tolist()
    assert sorted(want[:5]) == sorted(init)  # its start set comes first, in its own order
    got = fastsel.greedy_from(torch.from_numpy(x), 100, init).indices.tolist()
    assert got == want[5:]


def test_torch_quickfps_equals_greedy(rng):
    q = pytest.importorskip("torch_quickfps", reason="torch-quickfps is not installed (pip install -e '.[compat]')")
    x = torch.from_numpy(rng.standard_normal((4, 1024, 3)))
    want = q.sample_idx(x, 128, start_idx=0)
    got = fastsel.greedy(x, 128, 0).indices
    assert torch.equal(got, want.to(torch.int64))
