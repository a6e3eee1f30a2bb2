"""The shallow-water engines topoae runs, by name.

>>> from topoae.simulation.engines import get_engine
>>> engine = get_engine("geoclaw")                                     # doctest: +SKIP
>>> engine.prepare()               # DependencyError if it cannot run   # doctest: +SKIP
>>> run = engine.run(grid, eta0, gauges, engine.make_config(duration=900.0))  # doctest: +SKIP

Each entry names the class implementing :class:`topoae.simulation.base.Engine`; it is
imported on first use, and the engine's own libraries (anuga, clawpack) only when it
prepares or runs. This module imports neither numpy nor xarray. The names are
:data:`topoae.constants.ENGINES` (what the CLI offers at start-up); adding an engine
(ExaHyPE, say) is one module implementing the interface, one entry here and its name
there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from topoae.constants import DEFAULT_ENGINE, ENGINES
from topoae.errors import ConfigError

if TYPE_CHECKING:
    from topoae.simulation.base import Engine

#: name -> ``"module:Class"`` of its :class:`~topoae.simulation.base.Engine`.
REGISTRY: dict[str, str] = {
    "anuga": "topoae.simulation.engine:AnugaEngine",
    "geoclaw": "topoae.simulation.geoclaw_engine:GeoClawEngine",
}

__all__ = ["DEFAULT_ENGINE", "ENGINES", "REGISTRY", "engine_class", "get_engine", "parse_engine"]


def parse_engine(name: str) -> str:
    """The registry name of ``name`` (case-insensitive); ConfigError naming the known ones."""
    key = str(name).strip().lower()
    if key not in REGISTRY:
        raise ConfigError(f"unknown engine {name!r}; known: {', '.join(REGISTRY)}")
    return key


def engine_class(name: str) -> type[Engine]:
    """The class registered as ``name`` (its module imported now)."""
    module, _, attr = REGISTRY[parse_engine(name)].partition(":")
    return getattr(importlib.import_module(module), attr)


def get_engine(name: str) -> Engine:
    """A new instance of the engine called ``name``."""
    return engine_class(name)()
