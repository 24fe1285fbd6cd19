"""Fake (meta) kernels of the compiled ops, so that torch.compile traces the wrappers without
graph breaks."""
from __future__ import annotations

import torch

from .. import _backend, reference

if _backend.loaded():
    def _acc(x):
        return reference.acc_dtype(x.dtype)

    @torch.library.register_fake("fastsel::greedy")
    def _greedy_fake(x, n, start, min_d2=None, mode="auto"):
        return x.new_empty(n, dtype=torch.int64), x.new_empty(n, dtype=_acc(x)), x.new_empty(x.shape[0], dtype=_acc(x))

    @torch.library.register_fake("fastsel::threshold_decay")
    def _threshold_fake(x, n, start, tau, alpha, every_pass, min_d2=None, state=None, mode="auto", order=None):
        return (x.new_empty(n, dtype=torch.int64), x.new_empty(n, dtype=_acc(x)), x.new_empty(n, dtype=torch.float64),
                x.new_empty(x.shape[0], dtype=_acc(x)), x.new_empty(4, dtype=torch.float64))

    @torch.library.register_fake("fastsel::nn")
    def _nn_fake(query, ref, k, exclude_self=False):
        return query.new_empty(query.shape[0], k, dtype=_acc(query)), query.new_empty(query.shape[0], k, dtype=torch.int64)

    @torch.library.register_fake("fastsel::update_min_d2")
    def _update_fake(x, min_d2, centres, thr, start_from):
        return x.new_empty(x.shape[0], dtype=_acc(x)), x.new_empty(3, dtype=torch.float64)

    @torch.library.register_fake("fastsel::greedy_sets")
    def _greedy_sets_fake(x, ptr, n, start, total, mode="auto"):
        return x.new_empty(total, dtype=torch.int64), x.new_empty(total, dtype=_acc(x))

    @torch.library.register_fake("fastsel::_greedy_stats")
    def _stats_fake():
        return torch.empty(4, dtype=torch.int64)

    @torch.library.register_fake("fastsel::_stream_read")
    def _stream_fake(x):
        return x.new_empty((), dtype=torch.float64)

    @torch.library.register_fake("fastsel::_facility_gains")
    def _facility_gains_fake(K, rows, cover, thr=None):
        return K.new_empty(rows.shape[0], 2, dtype=torch.float64)

    @torch.library.register_fake("fastsel::_facility_mirror")
    def _facility_mirror_fake(K, a, b):
        return None
