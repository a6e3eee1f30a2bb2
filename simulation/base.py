"""What a shallow-water engine is to topoae: its settings, its result and its interface.

An engine (:class:`Engine`) runs one bathymetry from rest with an initial sea-surface
displacement and samples the water surface at gauges; ``topoae simulate`` and
:func:`topoae.simulation.check.shallow_water_check` know engines only through this
interface, and find them by name in :mod:`topoae.simulation.engines`. The runners live
in their own modules (:mod:`.engine` for ANUGA, :mod:`.geoclaw_engine` for GeoClaw).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from topoae.errors import ConfigError, RegionError

FLOW_ALGORITHMS = ("DE0", "DE1", "DE2")


@dataclass(frozen=True)
class EngineConfig:
    """Run settings of ANUGA and GeoClaw (recorded in the outputs of ``topoae simulate``).

    ``duration`` and ``every`` (the gauge sampling interval) are seconds; ``friction`` is
    Manning's n; ``boundary`` is ``"reflective"`` or ``"transmissive"``.
    ``flow_algorithm`` is ANUGA's scheme (GeoClaw ignores it); ``threads`` is the OpenMP
    thread count.
    """

    duration: float = 7500.0
    every: float = 5.0
    flow_algorithm: str = "DE0"
    friction: float = 0.0
    boundary: str = "reflective"
    threads: int = 1

    def __post_init__(self) -> None:
        if not (self.duration > 0 and self.every > 0 and self.every <= self.duration):
            raise ConfigError("duration and sampling interval must be > 0 s, interval ≤ duration")
        if self.flow_algorithm not in FLOW_ALGORITHMS:
            raise ConfigError(f"flow algorithm must be one of {', '.join(FLOW_ALGORITHMS)}")
        if self.boundary not in ("reflective", "transmissive"):
            raise ConfigError("boundary must be 'reflective' or 'transmissive'")
        if self.friction < 0 or self.threads < 1:
            raise ConfigError("friction must be ≥ 0 and threads ≥ 1")


@dataclass(frozen=True)
class GaugeRun:
    """Water-surface elevation (m above still water) at gauges: ``eta[time, gauge]``.

    ``wall_s`` is the engine's wall time; ``triangles`` the size of ANUGA's mesh (0 for
    engines on cells).
    """

    time: np.ndarray
    eta: np.ndarray
    wall_s: float
    triangles: int


class Engine(ABC):
    """A shallow-water code that runs one bathymetry and samples gauges.

    Implementations are registered by :attr:`name` in :mod:`topoae.simulation.engines`;
    their modules import only numpy and xarray at import time, the engine's own
    libraries in :meth:`prepare` and :meth:`run`.
    """

    #: Registry key and ``topoae simulate --engine`` value.
    name: ClassVar[str]
    #: Human name, for messages.
    label: ClassVar[str]
    #: The frozen dataclass of run settings that :meth:`run` takes.
    config_class: ClassVar[type] = EngineConfig

    @abstractmethod
    def prepare(self, progress: Callable[[str], None] | None = None) -> None:
        """Check the engine can run here and make it ready (e.g. compile it once).

        Raises :class:`~topoae.errors.DependencyError` with a one-line message naming
        what is missing. ``progress(message)`` is told before any slow step.
        """

    def run(
        self,
        bathymetry: xr.DataArray,
        eta0: xr.DataArray | np.ndarray,
        gauges: Sequence[tuple[float, float]],
        config: Any = None,
    ) -> GaugeRun:
        """Run the engine on a metric grid and sample the water surface at ``gauges``.

        Parameters
        ----------
        bathymetry
            ``z(y, x)`` in metres, positive up, regular ``x``/``y`` in metres (no NaN), e.g.
            from :func:`topoae.simulation.projection.to_local_grid`.
        eta0
            Initial sea-surface displacement (m) on the same samples (applied over wet
            cells only).
        gauges
            ``(x, y)`` in the grid's metres; each must lie inside the grid.
        config
            An instance of :attr:`config_class` (default settings when None).

        Returns
        -------
        GaugeRun
            ``time`` (s, from 0 to the duration every sampling interval) and ``eta`` (m),
            shape (T, G); a gauge on dry land reads NaN while dry.

        Raises
        ------
        ConfigError, RegionError
            Inputs that do not fit (see :func:`engine_inputs`); RegionError also when the
            engine itself fails on them.
        DependencyError
            The engine cannot run here (as :meth:`prepare`).
        """
        cfg = config if config is not None else self.config_class()
        x, y, z, e0, pts = engine_inputs(bathymetry, eta0, gauges)
        return self._solve(x, y, z, e0, pts, cfg)

    @abstractmethod
    def _solve(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, eta0: np.ndarray,
               gauges: np.ndarray, config: Any) -> GaugeRun:
        """The engine's own work on checked float64 inputs (:func:`engine_inputs`) and its
        settings (an instance of :attr:`config_class`)."""

    def make_config(self, **settings: Any) -> Any:
        """This engine's settings from ``topoae simulate``'s options (``duration``, ``every``,
        ``friction``, ``boundary``, ``threads``, ``flow_algorithm``)."""
        return self.config_class(**settings)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def engine_inputs(
    bathymetry: xr.DataArray,
    eta0: xr.DataArray | np.ndarray,
    gauges: Sequence[tuple[float, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check an engine's inputs; returns ``x, y, z, eta0, gauges`` as float64 arrays."""
    x = np.asarray(bathymetry["x"].values, np.float64)
    y = np.asarray(bathymetry["y"].values, np.float64)
    z = np.asarray(bathymetry.values, np.float64)
    e0 = np.asarray(getattr(eta0, "values", eta0), np.float64)
    if e0.shape != z.shape:
        raise ConfigError(f"initial displacement shape {e0.shape} != bathymetry {z.shape}")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(e0))):
        raise RegionError("bathymetry and initial displacement must hold no NaN")
    if x.size < 3 or y.size < 3:
        raise RegionError("the simulation grid needs at least 3×3 samples")
    pts = np.asarray(gauges, np.float64).reshape(-1, 2)
    if pts.size == 0:
        raise ConfigError("give at least one gauge")
    inside = (pts[:, 0] >= x[0]) & (pts[:, 0] <= x[-1]) & (pts[:, 1] >= y[0]) & (pts[:, 1] <= y[-1])
    if not inside.all():
        raise RegionError(f"gauge {pts[~inside][0].tolist()} (m) lies outside the domain")
    return x, y, z, e0, pts
