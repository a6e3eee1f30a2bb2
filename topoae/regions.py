"""The held-out regions: the one place that says which ground topoae never learns from.

Two boxes, ``(W, S, E, N)`` in degrees east / north, and the demo's bundled region:

:data:`TOHOKU_BOX` (139–147°E, 34–42°N)
    The *evaluation* region: the Tohoku 2011 source area. Benchmarks score the codec
    there, and anything fitted on a grid that reaches it (the PCA baseline of
    :mod:`topoae.evaluation`, the benchmark models) masks it out first.
:data:`TRAINING_EXCLUSION_BOX` (135–150°E, 30–45°N)
    The *training* exclusion: every patch touching it is left out of the training
    stores of the shipped models (``benchmarks/make_training_stores.py``). It is wider
    than the evaluation box so that it also holds the Suruga Bay 15″ GEBCO tile
    (138.14–138.97°E, 34.62–35.46°N, just west of the Tohoku box) and both bundled
    regions, so every figure measured on them is measured on held-out ground;
    ``topoae/assets/japan_trench_etopo5.nc`` is the ETOPO5 crop of exactly this box.
:data:`DEMO_REGION`
    The region ``topoae demo`` runs on: the bundled GEBCO 15″ Suruga Bay tile
    (``topoae/assets/gebco15s_suruga_bay.nc``, see ``topoae/assets/PROVENANCE.md``), inside
    :data:`TRAINING_EXCLUSION_BOX`.

This module imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The evaluation region (W, S, E, N): the Tohoku 2011 source area, never used to fit anything.
TOHOKU_BOX = (139.0, 34.0, 147.0, 42.0)
#: The training exclusion (W, S, E, N): no training patch of a shipped model touches it.
#: Contains :data:`TOHOKU_BOX`, the Suruga Bay tile and :data:`DEMO_REGION`.
TRAINING_EXCLUSION_BOX = (135.0, 30.0, 150.0, 45.0)
#: The bundled demo region: the real GEBCO 15″ Suruga Bay tile.
DEMO_REGION = Path(__file__).resolve().parent / "assets" / "gebco15s_suruga_bay.nc"


def in_box(box: tuple[float, float, float, float], lat: Any, lon: Any) -> Any:
    """Whether each point ``(lat, lon)`` lies in ``box`` (edges included).

    Works elementwise on floats, numpy arrays (broadcast) and xarray objects; longitudes
    are taken modulo 360, so grids on −180–180 and 0–360 both work (for a box with
    0 ≤ W ≤ E < 360, as the boxes here are).
    """
    w, s, e, n = box
    lon = lon % 360.0
    return (lat >= s) & (lat <= n) & (lon >= w) & (lon <= e)
