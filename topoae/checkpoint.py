"""Checkpoints: save atomically, load safely (``weights_only=True``), reject anything odd.

A checkpoint is a ``torch.save`` file holding only tensors and builtins:

- ``format`` (``"topoae-checkpoint"``) and ``version``;
- ``config``: the :class:`~topoae.training.config.TrainConfig` as a nested dict;
- ``normalise``: the patch store's normalisation (``mode``, ``zmin``, ``zrange``);
- ``feature_net``: id of the perceptual feature network (``None`` without one);
- ``model``: the model's state dict (CPU tensors);
- ``state``: optional training state for ``--resume`` (optimiser, epoch, RNG);
- ``extra``: optional record (epoch, validation metrics, ...);
- ``digest``: SHA-256 over all of the above, so an edited file is detected.

The model id used across topoae is the SHA-256 of the whole file.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from topoae._atomic import atomic_path
from topoae.errors import CheckpointError, ConfigError

FORMAT = "topoae-checkpoint"
VERSION = 1


def _digest_update(h: Any, obj: Any) -> None:
    """Feed a canonical byte form of ``obj`` (nested dicts/lists/tensors/builtins) to ``h``."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(repr(str(key)).encode() + b":")
            _digest_update(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _digest_update(h, v)
            h.update(b",")
        h.update(b"]")
    elif obj is None or isinstance(obj, bool | int | float | str):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise CheckpointError(
            f"cannot store an object of type {type(obj).__name__} in a checkpoint"
        )


def content_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of every entry of ``payload`` except ``digest`` itself."""
    h = hashlib.sha256()
    _digest_update(h, {k: v for k, v in payload.items() if k != "digest"})
    return h.hexdigest()


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, Mapping):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside a DistributedDataParallel wrapper (or ``model`` itself)."""
    return getattr(model, "module", model)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: Any,
    *,
    normalise: Mapping[str, Any],
    feature_net: str | None = None,
    state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file then rename); returns its path.

    ``config`` is a :class:`TrainConfig`; ``state`` and ``extra`` may hold
    tensors, dicts, lists and builtins only (they must load with
    ``weights_only=True``).
    """
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        "normalise": dict(normalise),
        "feature_net": feature_net,
        "model": _cpu(unwrap(model).state_dict()),
        "state": _cpu(dict(state)) if state is not None else None,
        "extra": dict(extra) if extra is not None else {},
    }
    payload["digest"] = content_digest(payload)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu"
) -> tuple[dict[str, Any], str]:
    """Load and verify a checkpoint file; returns ``(payload, model_id)``.

    Raises
    ------
    CheckpointError
        Missing, unreadable, truncated, pickled-code, foreign, newer-version or
        tampered files, each with a one-line reason.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found")
    data = p.read_bytes()
    model_id = hashlib.sha256(data).hexdigest()
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text suggests loading with weights_only=False, i.e. running the
        # file's code: never pass it on; name the offending object only.
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{p} is not a topoae checkpoint: it holds objects other than tensors and plain "
            f"data{what}, which topoae never loads"
        ) from None
    except Exception as exc:  # truncated zip, random bytes, wrong file type
        raise CheckpointError(
            f"{p} is not a readable checkpoint (corrupted or truncated): {type(exc).__name__}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a topoae checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{p} has checkpoint version {payload.get('version')}, this topoae reads {VERSION}"
        )
    if payload.get("digest") != content_digest(payload):
        raise CheckpointError(f"{p} does not match its digest: the file was modified or damaged")
    return payload, model_id


@dataclass
class LoadedModel:
    """A model restored from a checkpoint, with what is needed to use it.

    Attributes
    ----------
    model
        The network in eval mode (protocol of ``docs/ARCHITECTURE.md``).
    config
        The frozen :class:`~topoae.training.config.TrainConfig` it was trained with
        (``config.model`` is its :class:`~topoae.models.ModelConfig`).
    normalise
        Normalisation of the patches it was trained on: ``{"mode", "zmin", "zrange"}``.
    model_id
        SHA-256 (hex) of the checkpoint file.
    feature_net
        Id of the perceptual feature network used in training, or ``None``.
    path
        Where it was loaded from.
    extra
        The record saved with it (epoch, validation metrics).
    """

    model: nn.Module
    config: Any
    normalise: dict[str, Any]
    model_id: str
    feature_net: str | None
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_config(self) -> Any:
        """The model's own config (``config.model`` for a patch model's TrainConfig)."""
        return getattr(self.config, "model", self.config)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> LoadedModel:
    """Rebuild the model of a checkpoint and load its weights (``weights_only=True``).

    Raises :class:`~topoae.errors.CheckpointError` for anything that is not an
    intact topoae checkpoint whose weights fit its own configuration.
    """
    payload, model_id = read_checkpoint(path, map_location)
    model_cfg = payload.get("config", {}).get("model", {}) if isinstance(payload.get("config"), dict) else {}
    if isinstance(model_cfg, dict) and model_cfg.get("kind") == "hyperprior":
        return _load_hyperprior(payload, model_id, path, map_location)
    from topoae.models import build_model
    from topoae.training.config import TrainConfig

    try:
        config = TrainConfig.from_dict(payload["config"])
        model = build_model(config.model)
    except (ConfigError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path} has an invalid configuration: {exc}") from None
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit its configuration: {str(exc).splitlines()[0]}"
        ) from None
    model.to(map_location if isinstance(map_location, str | torch.device) else "cpu")
    return LoadedModel(
        model=model.eval(),
        config=config,
        normalise=dict(payload["normalise"]),
        model_id=model_id,
        feature_net=payload.get("feature_net"),
        path=Path(path),
        extra=dict(payload.get("extra") or {}),
    )


def _load_hyperprior(payload: dict[str, Any], model_id: str, path: str | os.PathLike,
                     map_location: Any) -> LoadedModel:
    """A learned-codec checkpoint: the model config travels on its own (no training import)."""
    from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel

    try:
        config = HyperpriorConfig.from_dict(payload["config"]["model"])
        model = HyperpriorModel(config)
        model.load_state_dict(payload["model"], strict=True)
    except (TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid configuration: {exc}") from None
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit its configuration: {str(exc).splitlines()[0]}"
        ) from None
    return LoadedModel(
        model=model.eval(),
        config=config,
        normalise=dict(payload.get("normalise") or {}),
        model_id=model_id,
        feature_net=None,
        path=Path(path),
        extra=dict(payload.get("extra") or {}),
    )
