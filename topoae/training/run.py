"""Train a model on a patch store: the library entry point behind ``topoae train``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from topoae.checkpoint import read_checkpoint
from topoae.data.normalise import Normalisation
from topoae.errors import CheckpointError, ConfigError, OutputExistsError
from topoae.training.config import TrainConfig
from topoae.training.trainer import BEST, CONFIG, LAST, METRICS, Callback, Trainer, TrainResult


def _prepare_out(out: Path, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the run folder; return the checkpoint payload to resume from, if any."""
    if resume:
        payload, _ = read_checkpoint(out / LAST)
        if payload.get("state") is None:
            raise CheckpointError(f"{out / LAST} holds no training state to resume from")
        return payload
    if out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"{out} exists and is not a run folder")
        content = {p.name for p in out.iterdir()}
        if content and not overwrite:
            raise OutputExistsError(
                f"{out} exists (pass --resume to continue it or --overwrite to replace it)"
            )
        if content - {LAST, BEST, METRICS, CONFIG}:
            raise OutputExistsError(
                f"{out} holds other files than a topoae run; refusing to overwrite it"
            )
        for name in content:
            (out / name).unlink()
    return None


def fit(
    config: TrainConfig | None,
    train_ds: Dataset,
    val_ds: Dataset | None,
    out: str | os.PathLike,
    *,
    normalise: Normalisation,
    resume: bool = False,
    overwrite: bool = False,
    epochs: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train on in-memory or store-backed datasets; see :func:`topoae.training.train`.

    Datasets yield dicts with ``x`` ``(1, P, P)`` float32, ``offset`` and
    ``scale`` (metres = x * scale + offset). With ``resume=True``, ``config``
    may be ``None`` (the run's own is used) or must equal it except for
    ``epochs``.
    """
    out = Path(out)
    payload = _prepare_out(out, resume=resume, overwrite=overwrite)
    state = None
    if payload is not None:
        saved = TrainConfig.from_dict(payload["config"])
        if config is not None and config.replace(epochs=saved.epochs) != saved:
            raise ConfigError(
                "the options differ from the run being resumed (only --epochs may change)"
            )
        config = saved
        if Normalisation.from_dict(payload["normalise"]) != normalise:
            raise ConfigError("the patch store's normalisation differs from the run being resumed")
        state = payload["state"]
    if config is None:
        raise ConfigError("a training configuration is needed")
    if epochs is not None:
        config = config.replace(epochs=epochs)
    if config.normalise is not None and normalise.mode != config.normalise:
        raise ConfigError(
            f"the {config.preset} config expects a store with {config.normalise} normalisation, "
            f"this one has {normalise.mode} (re-tile with --normalise {config.normalise})"
        )
    patch = getattr(train_ds, "patch_size", config.model.patch_size)
    if patch != config.model.patch_size:
        raise ConfigError(
            f"the store has {patch}x{patch} patches, the model expects {config.model.patch_size}"
        )
    trainer = Trainer(
        config,
        train_ds,
        val_ds,
        out,
        normalise=normalise,
        state=state,
        model_state=payload["model"] if payload is not None else None,
        **options,
    )
    if trainer.info.main:
        out.mkdir(parents=True, exist_ok=True)
    trainer.write_config()
    return trainer.run()


def train(
    store: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    epochs: int | None = None,
    device: str = "auto",
    num_workers: int = 0,
    max_minutes: float | None = None,
    checkpoint_minutes: float | None = 10.0,
    perceptual_weights: str | os.PathLike | None = None,
    channels_last: bool = True,
    amp: bool | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Train ``config`` on the train split of ``store``, validating on its val split.

    Parameters
    ----------
    store
        Patch store written by ``topoae tile``; its ``attrs["topoae"]["normalise"]``
        goes into every checkpoint.
    out
        Run folder (``config.json``, ``metrics.csv``, ``last.pt``, ``best.pt``).
    config
        The training configuration (see :func:`topoae.training.preset`); may be
        ``None`` when resuming.
    resume
        Continue the run in ``out`` from ``out/last.pt`` (bit-for-bit on CPU).
    overwrite
        Replace an existing run folder.
    epochs
        Override ``config.epochs`` (also to extend a finished run with ``resume``).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``; under ``torchrun`` each rank takes
        ``cuda:LOCAL_RANK``.
    num_workers
        DataLoader worker processes (results do not depend on it).
    max_minutes
        Wall-clock budget: stop cleanly after it, with a resumable checkpoint.
    checkpoint_minutes
        Also checkpoint mid-epoch at this interval (``None``: only per epoch).
    perceptual_weights
        Weights file of the feature network (torchvision VGG19 state dict for
        ``vgg19-imagenet``, or another terrain network file).
    channels_last, amp
        Memory format (channels-last is faster on CPU and GPU) and bfloat16
        autocast (default: on for CUDA only).
    callback
        ``callback(event, info)`` for progress: events ``epoch_start``,
        ``step``, ``epoch_end`` and ``stopped`` (rank 0 only).
    """
    from topoae.data.dataset import PatchDataset

    seed = config.seed if config is not None else 0
    if resume:
        payload, _ = read_checkpoint(Path(out) / "last.pt")
        seed = TrainConfig.from_dict(payload["config"]).seed
        augment = payload["config"]["augment"]
    else:
        augment = config.augment if config is not None else "random"
    train_ds = PatchDataset(store, split="train", augment=augment, seed=seed)
    val_ds = PatchDataset(store, split="val", augment="none")
    options: dict[str, Any] = dict(
        device=device,
        num_workers=num_workers,
        max_minutes=max_minutes,
        checkpoint_minutes=checkpoint_minutes,
        perceptual_weights=perceptual_weights,
        channels_last=channels_last,
        amp=amp,
        callback=callback,
        store=str(Path(store).resolve()),
    )
    return fit(
        config,
        train_ds,
        val_ds,
        out,
        normalise=train_ds.normalise,
        resume=resume,
        overwrite=overwrite,
        epochs=epochs,
        **options,
    )
