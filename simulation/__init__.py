"""Simulation adapters (installed as ``topoae.simulation``).

Write a bathymetry as input for ExaHyPE (1 and 2), GeoClaw and ANUGA, and run a real
shallow-water check (ANUGA or GeoClaw) of reconstructed against original bathymetry.

Modules: :mod:`.projection` (local metric grids), :mod:`.asagi` (ASAGI NetCDF),
:mod:`.exahype`, :mod:`.geoclaw`, :mod:`.anuga_export` (writers), :mod:`.sources`
(Gaussian hump, Okada faults), :mod:`.base` (the engine interface, its settings and
result), :mod:`.engines` (engines by name), :mod:`.engine` (ANUGA runs),
:mod:`.geoclaw_engine` (GeoClaw runs), :mod:`.gauges` (metrics, quantile bands),
:mod:`.check` (the comparison), :mod:`.figures`.
The names below are imported lazily so ``import topoae.simulation`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ExahypeConfig": "exahype",
    "export_exahype": "exahype",
    "check_export": "exahype",
    "export_geoclaw": "geoclaw",
    "export_anuga": "anuga_export",
    "GaussianSource": "sources",
    "OkadaSource": "sources",
    "Subfault": "sources",
    "load_subfaults": "sources",
    "Engine": "base",
    "EngineConfig": "base",
    "GaugeRun": "base",
    "get_engine": "engines",
    "run_anuga": "engine",
    "run_geoclaw": "geoclaw_engine",
    "CheckConfig": "check",
    "shallow_water_check": "check",
    "write_check": "check",
    "load_ensemble": "check",
    "compare_series": "gauges",
    "quantile_bands": "gauges",
    "read_exahype_probe": "gauges",
    "resample_exahype_probes": "gauges",
    "to_local_grid": "projection",
    "to_geographic": "projection",
    "align_displacement": "sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"topoae.simulation.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'topoae.simulation' has no attribute {name!r}")
