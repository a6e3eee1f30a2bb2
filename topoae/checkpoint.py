"""Checkpoints: save atomically, load safely (``weights_only=True``), reject anything odd.

A checkpoint is a ``torch.save`` file holding only tensors and builtins:

- ``format`` (``"topoae-checkpoint"``) and ``version``;
- ``config``: the training config as a nested dict (a patch model's
  ``TrainConfig``, the learned codec's ``RDTrainConfig``). Its ``model`` entry is
  the model config, complete on its own (``kind`` picks the class:
  :func:`topoae.models.model_config_from_dict`); the rest is read by the trainers
  only, when they resume;
- ``normalise``: the patch store's normalisation (``mode``, ``zmin``, ``zrange``);
- ``feature_net``: id of the perceptual feature network (``None`` without one);
- ``model``: the model's state dict (CPU tensors);
- ``state``: optional training state for ``--resume`` (optimiser, epoch, RNG);
- ``extra``: optional record (epoch, validation metrics, ...);
- ``digest``: SHA-256 over all of the above, so an edited file is detected.

Loading a checkpoint rebuilds the network from ``config["model"]`` with
:mod:`topoae.models` alone: this module never imports :mod:`topoae.training`
(nor, through it, the trainer and DDP). The model id used across topoae is the
SHA-256 of the whole file.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from topoae._atomic import atomic_path
from topoae.errors import CheckpointError, ConfigError
from topoae.models import build_model, model_config_from_dict

if TYPE_CHECKING:
    from topoae.models import HyperpriorConfig, HyperpriorModel, ModelConfig, PatchModel

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


def _config_dict(config: Any) -> dict[str, Any]:
    """``config`` as the dict a checkpoint stores: the training config with its ``model`` entry.

    ``config`` is a training config (``TrainConfig``, ``RDTrainConfig``: anything with
    ``to_dict()`` whose dict has a ``model`` entry), such a dict, or a bare model config
    (``ModelConfig``, ``HyperpriorConfig``), stored as ``{"model": ...}``.
    """
    d = config.to_dict() if hasattr(config, "to_dict") else config
    if not isinstance(d, Mapping):
        raise CheckpointError(
            "a checkpoint needs a training or model config (a dataclass or a dict), "
            f"got {type(config).__name__}"
        )
    d = dict(d)
    if "model" not in d and "kind" in d:  # a bare model config
        d = {"model": d}
    try:
        model_config_from_dict(d.get("model"))  # the loader must rebuild it on its own
    except ConfigError as exc:
        raise CheckpointError(
            f"cannot save a checkpoint without a valid model config: {exc}"
        ) from None
    return d


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

    ``config`` is the training config (``TrainConfig``, ``RDTrainConfig``) or a bare
    model config; either way the model config is stored as ``config["model"]``,
    complete on its own. ``state`` and ``extra`` may hold tensors, dicts, lists and
    builtins only (they must load with ``weights_only=True``).

    Raises
    ------
    CheckpointError
        ``config`` holds no model config that :func:`topoae.models.model_config_from_dict`
        reads, or an entry is not a tensor or plain data.
    """
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": _config_dict(config),
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


def _pickled_global(data: bytes) -> str | None:
    """The first class or function a plain pickle names (read, never run), or None when the
    bytes are not a readable pickle."""
    import pickletools

    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name == "GLOBAL":
                return str(arg).replace(" ", ".")
            if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:
        return None
    return None


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
        with warnings.catch_warnings():  # torch's warnings about foreign pickles name weights_only
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text suggests loading with weights_only=False, i.e. running the
        # file's code: never pass it on; name the offending object only.
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        name = found.group(1) if found else _pickled_global(data)
        if name is None:  # not a pickle at all (random bytes) or an unreadable one
            raise CheckpointError(f"{p} is not a readable checkpoint (corrupted or not a "
                                  "checkpoint)") from None
        raise CheckpointError(
            f"{p} is not a topoae checkpoint: it holds objects other than tensors and plain "
            f"data ({name}), which topoae never loads"
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
        The network in eval mode: a patch model (follows
        :class:`~topoae.models.PatchModel`) or a
        :class:`~topoae.models.HyperpriorModel`.
    config
        Its frozen model config: a :class:`~topoae.models.ModelConfig` or a
        :class:`~topoae.models.HyperpriorConfig`.
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
    train_config
        The training config it was saved with, as a plain dict (``model`` included);
        ``topoae.training.TrainConfig.from_dict(train_config)`` rebuilds a patch
        model's. Loading never parses it, so it never imports the trainer.
    """

    model: PatchModel | HyperpriorModel
    config: ModelConfig | HyperpriorConfig
    normalise: dict[str, Any]
    model_id: str
    feature_net: str | None
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)

    @property
    def model_config(self) -> ModelConfig | HyperpriorConfig:
        """The model's config (the same as :attr:`config`)."""
        return self.config


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> LoadedModel:
    """Rebuild the model of a checkpoint and load its weights (``weights_only=True``).

    The network is rebuilt from the model config the checkpoint carries
    (``config["model"]``) with :mod:`topoae.models` only; the training config is
    kept as a dict (:attr:`LoadedModel.train_config`). Every checkpoint topoae has
    written loads this way: patch models (``TrainConfig``) and the learned codec's
    hyperprior (``RDTrainConfig``) alike.

    Raises :class:`~topoae.errors.CheckpointError` for anything that is not an
    intact topoae checkpoint whose weights fit its own configuration.
    """
    payload, model_id = read_checkpoint(path, map_location)
    train_config = payload.get("config")
    if not isinstance(train_config, dict) or not isinstance(train_config.get("model"), dict):
        raise CheckpointError(f"{path} has an invalid configuration: no model config")
    try:
        config = model_config_from_dict(train_config["model"])
        model = build_model(config)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid configuration: {exc}") from None
    try:
        model.load_state_dict(payload["model"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path}: weights do not fit its configuration: "
            f"{(str(exc).splitlines() or [type(exc).__name__])[0]}"
        ) from None
    model.to(map_location if isinstance(map_location, str | torch.device) else "cpu")
    return LoadedModel(
        model=model.eval(),
        config=config,
        normalise=dict(payload.get("normalise") or {}),
        model_id=model_id,
        feature_net=payload.get("feature_net"),
        path=Path(path),
        extra=dict(payload.get("extra") or {}),
        train_config=train_config,
    )
