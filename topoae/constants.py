"""Constants that both the library and the CLI need; importing this module imports nothing
(the CLI reads them at start-up, before any numpy or torch is loaded)."""

from __future__ import annotations

#: Blending windows of the patch codec (:mod:`topoae.codec.blending`): ``cosine`` (sin^2 ramps
#: over the overlap, the default), ``uniform`` (plain mean of the overlapping patches) and
#: ``nearest`` (each cell taken from the patch whose centre zone holds it: hard seams, no
#: blending).
WINDOWS = ("cosine", "uniform", "nearest")

#: Shallow-water engines that ``topoae simulate`` runs, by registry name (the implementations
#: are in :data:`topoae.simulation.engines.REGISTRY`, which must list exactly these).
ENGINES = ("anuga", "geoclaw")
#: The engine ``topoae simulate`` runs when not told otherwise.
DEFAULT_ENGINE = "anuga"
