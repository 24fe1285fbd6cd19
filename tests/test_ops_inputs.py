"""The ops' input checks (fastsel.ops._inputs): loose numbers, seeds, meta / complex / sparse tensors
(moved here from the reliability files; their issue/item names kept)."""
import numpy as np
import pytest
import torch

import fastsel


# ------------------------------------------------------------------ 7. loose Python arguments

def test_item7_python_api_refuses_loose_numbers(rng):
    X = rng.standard_normal((20, 3))
    cases = [(lambda: fastsel.greedy(X, 2.5), ValueError, "n"),
             (lambda: fastsel.greedy(X, 3, start=2.7), ValueError, "start"),
             (lambda: fastsel.greedy(X, 3, start=np.float64(1.9)), ValueError, "start"),
             (lambda: fastsel.greedy(X, True), TypeError, "n"),
             (lambda: fastsel.greedy(X, "3"), TypeError, "n"),
             (lambda: fastsel.greedy(X, 3, start=False), TypeError, "start"),
             (lambda: fastsel.threshold_decay(X, 5, tau="1.0"), TypeError, "tau"),
             (lambda: fastsel.threshold_decay(X, 5, alpha="0.9"), TypeError, "alpha"),
             (lambda: fastsel.threshold_decay(X, 2.5), ValueError, "n"),
             (lambda: fastsel.nn(X, k=1.5), ValueError, "k"),
             (lambda: fastsel.nn(X, k=True), TypeError, "k"),
             (lambda: fastsel.select(X, 2.5, method="random"), ValueError, "n"),
             (lambda: fastsel.select(X, True, method="random"), TypeError, "n"),
             (lambda: fastsel.select(X, 3, method="greedy", start=1.5), ValueError, "start")]
    for f, exc, name in cases:
        with pytest.raises(exc, match=rf"^{name}\b"):
            f()
    # integers of every kind are still numbers
    ref = fastsel.greedy(X, 3, 1).indices.tolist()
    assert fastsel.greedy(X, np.int64(3), np.int32(1)).indices.tolist() == ref
    assert fastsel.greedy(X, torch.tensor(3), start=np.uint8(1)).indices.tolist() == ref
    assert fastsel.threshold_decay(X, np.int16(4), 0, tau=np.float32(0.5), alpha=np.float64(0.5)).indices.numel() == 4
    assert fastsel.select(X, np.int64(3), method="random").numel() == 3


def test_item8_seed_range_in_the_python_api(rng):
    X = rng.standard_normal((20, 3))
    for f in (lambda s: fastsel.greedy(X, 3, seed=s), lambda s: fastsel.threshold_decay(X, 3, seed=s),
              lambda s: fastsel.select(X, 3, method="random", seed=s), lambda s: fastsel.scan_order(20, s),
              lambda s: fastsel.default_tau(X, seed=s)):
        for bad, exc in ((2 ** 70, ValueError), (2 ** 32, ValueError), (-1, ValueError), (None, TypeError),
                         (1.5, ValueError), ("1", TypeError)):
            with pytest.raises(exc, match="seed"):
                f(bad)
    assert fastsel.greedy(X, 3, seed=2 ** 32 - 1).indices.numel() == 3
    assert fastsel.greedy(X, 3, seed=np.uint32(7)).indices.tolist() == fastsel.greedy(X, 3, seed=7).indices.tolist()


# ------------------------------------------------------------------ 18. tensors without values, complex tensors

def test_item18_meta_complex_and_sparse_tensors(rng):
    X = torch.from_numpy(rng.standard_normal((20, 3)))
    for f, name in ((lambda x: fastsel.greedy(x, 3), "x"), (lambda x: fastsel.threshold_decay(x, 3), "x"),
                    (lambda x: fastsel.nn(x), "query"), (lambda x: fastsel.select(x, 3, method="random"), "x")):
        with pytest.raises(ValueError, match=f"^{name} is a meta tensor"):
            f(torch.empty(20, 3, device="meta"))
        with pytest.raises(TypeError, match=f"^{name} must hold real numbers"):
            f(X.to(torch.complex64))
        with pytest.raises(ValueError, match=f"^{name} is a torch.sparse_coo tensor"):
            f(X.to_sparse())
    with pytest.raises(ValueError, match="^query is a meta tensor"):
        fastsel.nn(torch.empty(4, 3, device="meta"), X)
    with pytest.raises(TypeError, match="^ref must hold real numbers"):
        fastsel.nn(X, X.to(torch.complex128))


def test_sweep_fps_ratio_string_is_a_type_error():
    with pytest.raises(TypeError, match="^ratio"):
        fastsel.fps(torch.randn(6, 2), ratio="0.5")
    with pytest.raises(TypeError, match="^ratio"):
        fastsel.fps(torch.randn(6, 2), ratio=True)
    assert fastsel.fps(torch.randn(6, 2), ratio=np.float32(0.5)).numel() == 3
