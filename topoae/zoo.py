"""The model that ships inside the package, and how commands find a model.

``--model`` is optional everywhere: without it, topoae uses the shipped
checkpoint in ``topoae/weights`` (its model card is ``topoae/weights/MODEL_CARD.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

from topoae.errors import CheckpointError

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: File name of the shipped default model.
SHIPPED = "topoae-vae-default.pt"
#: Bundled demo region (ETOPO5 crop, see ``topoae/data/PROVENANCE.md``).
DEMO_REGION = Path(__file__).resolve().parent / "data" / "japan_trench_etopo5.nc"


def default_model_path() -> Path:
    """Path of the shipped checkpoint (raises :class:`CheckpointError` if this install lacks it)."""
    path = WEIGHTS / SHIPPED
    if not path.is_file():
        raise CheckpointError(f"no shipped model at {path}; pass --model CKPT")
    return path


def resolve_model(path: str | os.PathLike | None) -> Path:
    """``path`` if given, else the shipped model."""
    return Path(path) if path is not None else default_model_path()
