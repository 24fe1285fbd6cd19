import numpy as np
import pytest
import torch

import fastsel
from fastsel import streaming as S
from fastsel.errors import FastselError
from _helpers import BACKENDS, int_pool


def _sorted_clusters(rng, N=6000, d=16, k=64):
    c = rng.standard_normal((k, d)) * 10
    lab = np.sort(rng.integers(k, size=N))  # stored cluster by cluster
    return (c[lab] + 0.05 * rng.standard_normal((N, d))).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_equals_in_memory_and_skips_chunks(backend, rng, tmp_path):
    x = _sorted_clusters(rng)
    np.save(tmp_path / "p.npy", x)
    pool = np.load(tmp_path / "p.npy", mmap_mode="r")
    st = {}
    a = S.greedy(pool, 800, 3, chunk_rows=96, backend=backend, stats=st)  # ~one cluster per chunk
    b = fastsel.greedy(x, 800, 3, backend=backend)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
    assert st["skip_rate"] >= 0.5, st


def test_streaming_random_order_and_ties(rng):
    x = int_pool(rng, 2000, 5, -2, 3).astype(np.float32)
    st = {}
    a = S.greedy(x, 2000, 0, chunk_rows=300, stats=st)
    assert torch.equal(a.indices, fastsel.greedy(x, 2000, 0).indices)
    assert st["chunk_reads"] + st["chunk_skips"] == 2000 * 7


def test_streaming_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        S.greedy(np.zeros(5, dtype=np.float32), 2)
    with pytest.raises(ValueError, match="NaN"):
        S.greedy(np.array([[0.0, np.nan], [1.0, 1.0]], dtype=np.float32), 1)


def test_readme_form_works_after_import_fastsel_and_chunk_rows_is_checked(tmp_path):
    """`fastsel.streaming.greedy` as the README writes it, in a fresh interpreter after `import fastsel`
    (was AttributeError); chunk_rows = 0 is one line (was "range() arg 3 must not be zero")."""
    import subprocess
    import sys
    code = ("import numpy as np, fastsel; x = np.random.default_rng(0).standard_normal((50, 4)).astype('float32');"
            "print(fastsel.streaming.greedy(x, 5, 0, chunk_rows=16).indices.tolist())")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    x = np.random.default_rng(0).standard_normal((50, 4)).astype("float32")
    for bad in (0, -3, 2.5):
        with pytest.raises(FastselError, match="chunk_rows"):
            S.greedy(x, 5, 0, chunk_rows=bad)


# ------------------------------------------------------------------ moved here from test_reliability3.py

@pytest.mark.parametrize("exp", [70, -80, -140])
def test_sweep_streaming_extreme_magnitudes_as_unscaled(exp, rng):
    """Found in the sweep: fastsel.streaming.greedy did not scale extreme magnitudes (pow2_scale)."""
    from fastsel import streaming
    y = rng.standard_normal((300, 5)).astype(np.float32)
    x = y * np.float32(2.0 ** exp)
    g = fastsel.greedy(x, 20, 0)
    s = streaming.greedy(x, 20, 0, chunk_rows=64)
    assert s.indices.tolist() == g.indices.tolist()
    assert torch.allclose(s.distances[1:].double(), g.distances[1:].double(), rtol=1e-6)
