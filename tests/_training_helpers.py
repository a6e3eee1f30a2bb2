"""Tiny real-format patch stores and tiny model configs for the training tests."""

from __future__ import annotations

from pathlib import Path

import torch

TINY_MODEL = {
    "patch_size": 32,
    "enc_filters": (4, 8, 8, 8),
    "dec_filters": (8, 8, 4),
    "hidden_dim": 16,
    "latent_dim": 8,
}


def make_store(path: Path, *, normalise: str = "patch", seed: int = 3) -> Path:
    """A Zarr patch store of 32x32 patches cut from a synthetic GEBCO-like grid."""
    from topoae.data.tiling import TileConfig, tile
    from topoae.io.synthetic import synthetic_grid

    grid = synthetic_grid(256, 320, seed=seed)
    cfg = TileConfig(
        patch=32, stride=32, split=(0.6, 0.2, 0.2), block=2, chunk=16, normalise=normalise
    )
    tile([grid], path, cfg)
    return path


def tiny(kind: str = "vae", preset_name: str = "default", **overrides):
    """A preset shrunk to a tiny network on 32x32 patches."""
    from topoae.training import preset

    model = dict(TINY_MODEL, **overrides.pop("model", {}))
    if kind == "ae" and preset_name == "thesis":
        model["latent_dim"] = None
    overrides.setdefault("batch_size", 8)
    overrides.setdefault("epochs", 2)
    return preset(kind, preset_name, model=model, **overrides)


def state_of(path: Path) -> dict[str, torch.Tensor]:
    """The model weights in a checkpoint file."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
