"""The model zoo: the models that ship inside the package, and how commands find one.

A registry from name to weights file and card (``<file>.card.json``: training data,
recipe, measured figures, and the SHA-256 of the weights). ``--model`` is optional
everywhere: without it, commands use :data:`DEFAULT`; ``--model NAME`` picks a
registered model and ``--model PATH`` any checkpoint. Weights loaded through the zoo
are checked against the digest in their card. ``topoae models`` lists the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from topoae.errors import CheckpointError
from topoae.regions import DEMO_REGION

__all__ = ["DEFAULT", "DEMO_REGION", "PATCH_DEFAULT", "REGISTRY", "default_model_path", "resolve_model"]

WEIGHTS = Path(__file__).resolve().parent / "weights"
ASSETS = Path(__file__).resolve().parent / "assets"

#: name -> weights file in :data:`WEIGHTS` (its card is the same name with ``.card.json``)
REGISTRY: dict[str, str] = {
    "hyperprior-gebco15": "topoae-hyperprior-gebco15.pt",
    "vae-default": "topoae-vae-default.pt",
}
#: What ``topoae encode`` / ``decode`` / ``sample`` / ``demo`` use without ``--model``.
DEFAULT = "hyperprior-gebco15"
#: The thesis-family patch model that ``topoae evaluate`` and the patch codec default to.
PATCH_DEFAULT = "vae-default"
#: File name of the shipped patch model (kept for the patch codec's callers).
SHIPPED = REGISTRY[PATCH_DEFAULT]
#: The earlier demo region (ETOPO5 5′ crop of the Japan trench), still used by the patch-model tests.
ETOPO5_REGION = ASSETS / "japan_trench_etopo5.nc"


def card_path(name: str) -> Path:
    return WEIGHTS / REGISTRY[name].replace(".pt", ".card.json")


def card(name: str) -> dict[str, Any]:
    p = card_path(name)
    return json.loads(p.read_text()) if p.is_file() else {}


def model_path(name: str) -> Path:
    """Weights file of a registered model, checked against its card's SHA-256."""
    if name not in REGISTRY:
        raise CheckpointError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    path = WEIGHTS / REGISTRY[name]
    if not path.is_file():
        raise CheckpointError(f"model {name!r} is not installed ({path} missing); pass --model CKPT")
    want = card(name).get("model_id")
    if want:
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise CheckpointError(f"{path} does not match the digest in its card (damaged or replaced)")
    return path


def default_model_path() -> Path:
    """Path of the default model (raises :class:`CheckpointError` if this install lacks it)."""
    return model_path(DEFAULT)


def resolve_model(path: str | os.PathLike | None, *, default: str = DEFAULT) -> Path:
    """A registered name, a checkpoint path, or (``None``) the default model."""
    if path is None:
        return model_path(default)
    if str(path) in REGISTRY:
        return model_path(str(path))
    return Path(path)


def installed() -> list[dict[str, Any]]:
    """One row per registered model: name, file, installed, default, and its card summary."""
    rows = []
    for name, file in REGISTRY.items():
        c = card(name)
        rows.append({"name": name, "file": file, "installed": (WEIGHTS / file).is_file(),
                     "default": name == DEFAULT, "kind": c.get("kind", c.get("config", {}).get("model", {}).get("kind")),
                     "model_id": c.get("model_id", "")[:16], "summary": c.get("summary", "")})
    return rows
