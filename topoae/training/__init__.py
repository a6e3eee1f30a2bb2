"""Training: configs and presets, the trainer, and evaluation on a patch store.

>>> from topoae.training import preset, train
>>> cfg = preset("vae", "default", epochs=20)          # doctest: +SKIP
>>> train("patches.zarr", "runs/vae", cfg)              # doctest: +SKIP
"""

from __future__ import annotations

from topoae.training.config import PRESETS, TrainConfig, preset
from topoae.training.evaluate import evaluate_store
from topoae.training.run import fit, train
from topoae.training.trainer import TrainResult

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "evaluate_store", "fit", "preset", "train"]
