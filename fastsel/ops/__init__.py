"""The typed Python ops, one module each, as the op libraries of this field keep them.

Modules: :mod:`fastsel.ops.greedy` (``greedy``, ``greedy_from``, ``GreedyResult``),
:mod:`fastsel.ops.threshold` (``threshold_decay``, ``default_tau``, ``scan_order``,
``ThresholdResult``), :mod:`fastsel.ops.nn` (``nn``, ``NNResult``), :mod:`fastsel.ops.sets`
(``greedy_sets``, ``fps``, ``SetsResult``); users call them from the package root
(``fastsel.greedy`` is :func:`fastsel.ops.greedy.greedy`). Private modules, imported by fastsel's
other modules from where each helper lives: ``_inputs`` (argument checks, seeds, the choice lists,
the power-of-two scaling), ``_dispatch`` (backend choice, progress, the mixed-scales triage),
``_fake`` (fake kernels for torch.compile).

``backend``: ``"cpp"`` (the compiled kernels; an error when they are missing),
``"torch"`` (the pure-PyTorch versions in :mod:`fastsel.reference`) or
``"auto"`` (compiled when available for the tensor's device, else the fallback,
saying once why).

This file re-exports nothing: ``import fastsel.ops.greedy`` is the module, never a function of
the same name.
"""

from . import _fake  # noqa: F401 -- registers the fake kernels
