"""Drop-in replacements for the functions people already call (docs/compat.md).

Each submodule copies one peer library's signature, defaults, return types and edge-case behaviour
(how pick counts are rounded, empty sets, K larger than a set, padding), so that switching is one
changed import::

    from torch_cluster import fps            ->  from fastsel.compat.torch_cluster import fps
    from pytorch3d.ops import sample_farthest_points
                                             ->  from fastsel.compat.pytorch3d import sample_farthest_points
    from apricot import FacilityLocationSelection
                                             ->  from fastsel.compat.apricot import FacilityLocationSelection
    from vendi_score import vendi            ->  from fastsel.compat import vendi
    from dpp import dpp, dpp_sw  (fast-map-dpp)  ->  from fastsel.compat.dpp import dpp, dpp_sw

torch_cluster and pytorch3d's drop-ins call fastsel's exact kernels; apricot's, vendi-score's and
fast-map-dpp's are float64 NumPy reproductions of the peers' rules (their tie orders and weightings
are part of what they return).

Where fastsel cannot equal the peer exactly (the peer computes in half precision, or breaks ties
in another order) docs/compat.md says so in one table. The submodules are imported on first use.
"""
import importlib as _importlib

__all__ = ["torch_cluster", "pytorch3d", "apricot", "vendi", "dpp"]


def __getattr__(name):
    if name in __all__:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
