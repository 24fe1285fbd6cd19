"""Every fastsel benchmark, one module each, run through ``fastsel bench <name>`` (bench/README.md).

``common``: the one timing routine and the baselines (plain PyTorch, the authors' procedures);
``select``: greedy / threshold / nn / sets beside anchors and the memory floor; ``gpu``: the CUDA
kernels; ``prune``, ``scaling``, ``tau``, ``contention``, ``distributed``, ``embed``, ``loop``,
``frontier``: see each module's docstring.
"""
