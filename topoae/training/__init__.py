"""Training: the patch models' configs, presets, trainer and store evaluation
(:mod:`~topoae.training.run`), and the learned codec's rate–distortion trainer
(:mod:`~topoae.training.rd`).

>>> from topoae.training import preset, train
>>> cfg = preset("vae", "default", epochs=20)          # doctest: +SKIP
>>> train("patches.zarr", "runs/vae", cfg)              # doctest: +SKIP

Names are imported on first use, so ``python -m topoae.training.rd`` needs only
torch and numpy (it runs on a GPU machine without zarr or dask).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PRESETS": "topoae.training.config",
    "TrainConfig": "topoae.training.config",
    "preset": "topoae.training.config",
    "evaluate_store": "topoae.training.evaluate",
    "fit": "topoae.training.run",
    "train": "topoae.training.run",
    "TrainResult": "topoae.training.trainer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'topoae.training' has no attribute {name!r}")
