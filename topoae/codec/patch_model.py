"""The model as the codec sees it: a network, its normalisation and its id.

:func:`as_codec_model` accepts a ``LoadedModel`` (from
:func:`topoae.checkpoint.load_checkpoint`) or any ``nn.Module`` that follows the
model protocol of ``docs/ARCHITECTURE.md`` (``encode``, ``decode``,
``latent_dim``, ``patch_size``). The helpers here run it in batches on a device,
with inputs copied to torch-allocated memory so results depend on values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from topoae._json import jsonable  # also imported from here by topoae.codec.learned
from topoae.data.normalise import Normalisation
from topoae.errors import ConfigError, ModelMismatchError


@dataclass(frozen=True)
class CodecModel:
    """A network plus what the codec needs to know about it."""

    net: Any
    normalise: Normalisation
    model_id: str
    config: dict
    patch: int
    latent_dim: int


def _state_id(net: Any) -> str:
    """Id of a bare module: sha256 of its state dict (names and tensor bytes)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return "state-sha256:" + h.hexdigest()


def as_codec_model(
    model: Any, *, normalise: Normalisation | None = None, model_id: str | None = None
) -> CodecModel:
    """Wrap a ``LoadedModel`` (from :func:`topoae.checkpoint.load_checkpoint`) or a bare module.

    A bare ``nn.Module`` must follow the model protocol (``encode``, ``decode``,
    ``latent_dim``, ``patch_size``); its normalisation defaults to the global
    GEBCO one and its id to a sha256 of its state dict. ``normalise`` (given)
    overrides the checkpoint's.
    """
    if isinstance(model, CodecModel):
        return model
    net, config = model, {}
    if hasattr(model, "model") and hasattr(model, "normalise"):  # LoadedModel
        net = model.model
        if normalise is None and model.normalise:  # the checkpoint's dict
            normalise = Normalisation.from_dict(model.normalise)
        model_id = model_id or str(model.model_id)
        config = jsonable(getattr(model, "config", {}) or {})
    for attr in ("encode", "decode", "latent_dim", "patch_size"):
        if not hasattr(net, attr):
            raise ConfigError(
                f"model lacks {attr!r}; it does not follow the codec's model protocol"
            )
    if normalise is not None and not isinstance(normalise, Normalisation):
        raise ConfigError(f"normalise must be a Normalisation, not {type(normalise).__name__}")
    net.eval()
    return CodecModel(
        net=net,
        normalise=normalise or Normalisation(),
        model_id=model_id or _state_id(net),
        config=config,
        patch=int(net.patch_size),
        latent_dim=int(net.latent_dim),
    )


def torch_device(device: str):
    """``torch.device`` for ``cpu``, ``cuda``, ``cuda:N`` or ``auto``; :class:`ConfigError` if unusable."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available")
    return dev


def to_tensor(a: np.ndarray, dev):
    """A float32 copy of ``a`` in torch-allocated (64-byte aligned) memory on ``dev``.

    CPU kernels may take different code paths for differently aligned inputs, and
    then differ in the last bits; copying makes a forward pass depend on the values only.
    """
    import torch

    return torch.tensor(np.asarray(a, dtype=np.float32), device=dev)


def run_encoder(
    cm: CodecModel, x: np.ndarray, batch: int, dev
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mu, logvar or None)`` as float32 ``(N, L)`` for normalised patches ``x`` ``(N, P, P)``."""
    import torch

    mus, lvs = [], []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            t = to_tensor(x[i : i + batch, None], dev)
            mu, logvar = cm.net.encode(t)
            mus.append(mu.reshape(mu.shape[0], -1).float().cpu().numpy())
            if logvar is not None:
                lvs.append(logvar.reshape(logvar.shape[0], -1).float().cpu().numpy())
    mu = np.concatenate(mus)
    if mu.shape[1] != cm.latent_dim:
        raise ConfigError(
            f"encoder gave {mu.shape[1]} latents per patch, model says {cm.latent_dim}"
        )
    return mu, (np.concatenate(lvs) if lvs else None)


def check_model(meta: dict, cm: CodecModel, *, force: bool = False) -> None:
    """Refuse latents made by another model (or another patch/latent size), unless ``force``."""
    if (cm.patch, cm.latent_dim) != (meta["patch"], meta["latent_dim"]):
        raise ModelMismatchError(
            f"model has patch {cm.patch} and {cm.latent_dim} latents; the latents were made with "
            f"patch {meta['patch']} and {meta['latent_dim']} latents"
        )
    if cm.model_id != meta["model_id"] and not force:
        raise ModelMismatchError(
            f"latents were made by model {meta['model_id'][:16]}…, not {cm.model_id[:16]}… "
            "(pass --force to decode anyway)"
        )
