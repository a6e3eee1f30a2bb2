"""topoae: compress topography and bathymetry grids with deep generative models.

Heavy libraries are imported lazily: ``import topoae`` stays cheap.
"""

from __future__ import annotations

from topoae._version import __version__
from topoae.errors import TopoAEError

__all__ = ["TopoAEError", "__version__", "decode", "encode", "sample"]

# name -> module holding it; imported on first access (keeps torch out of ``import topoae``)
_LAZY = {"encode": "topoae.codec", "decode": "topoae.codec", "sample": "topoae.sampling"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'topoae' has no attribute {name!r}")
