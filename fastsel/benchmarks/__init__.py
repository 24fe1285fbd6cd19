"""Every fastsel benchmark, one module each, run through ``fastsel bench <name>`` (bench/README.md).

``common``: the one timing routine and the baselines (plain PyTorch, the authors' procedures);
``select``: greedy / threshold / nn / sets beside anchors and the memory floor; ``gpu``: the CUDA
kernels; ``prune``, ``scaling``, ``tau``, ``contention``, ``distributed``, ``embed``, ``loop``,
``frontier``, ``selectors``, ``curate_scale``, ``compat``, ``check``: see each module's docstring.
Three run on their own, each in its own process (``python -m fastsel.benchmarks.<name>``): ``gpu_sets``
(the CUDA batched-sets kernel; bench/gpu_check.sh runs it), ``gpu_million`` (pools of 10^6 rows on one
GPU) and ``threshold_memory`` (the threshold filter's peak memory: one process per mode).

This package is the one home of benchmark code (it ships in the wheel, so ``fastsel bench`` works from
an install); every benchmark times with ``common.timed`` (``timed_result`` where the result is kept).
bench/ holds what is not a benchmark module: its README, the regression baseline, results, and the
GPU device check (gpu_check.sh and the pipeline it runs).
"""
