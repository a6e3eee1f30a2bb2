"""``topoae train``: train an AE / VAE / DFC-VAE / VAE-GAN on a patch store."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.termui import ProgressBar

# Options that define the model; they cannot change when a run is resumed.
_FIXED_ON_RESUME = (
    "model",
    "config",
    "batch",
    "lr",
    "seed",
    "latent_dim",
    "kl_max",
    "feature_net",
    "clip_norm",
)


class _Progress:
    """Per-epoch click progress bar on stderr, fed by the trainer's callback."""

    def __init__(self, epochs: int, quiet: bool) -> None:
        self.epochs, self.quiet = epochs, quiet
        self.bar: ProgressBar[int] | None = None

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        if event == "epoch_start":
            self._close()
            self.bar = click.progressbar(
                length=info["steps"],
                label=f"epoch {info['epoch']}/{self.epochs}",
                file=sys.stderr,  # click.get_text_stream is deprecated (click 8.5)
                show_pos=True,
            )
            self.bar.__enter__()
            self.bar.update(info["start"])
        elif event == "step" and self.bar is not None:
            self.bar.update(1)
        elif event == "epoch_end":
            self._close()
            row = info["row"]
            line = f"epoch {row['epoch']}: train loss {row.get('train_loss', float('nan')):.5g}"
            if "val_rmse_m" in row:
                line += f", val RMSE {row['val_rmse_m']:.2f} m, PSNR {row['val_psnr_db']:.2f} dB"
            click.echo(line + (" *" if row.get("best") else ""), err=True)
        elif event == "stopped":
            self._close()


def _preset_for_store(attrs: dict[str, Any], model: str) -> str:
    """The preset whose normalisation is the store's: ``thesis`` for global, ``default`` for patch.

    ``topoae tile`` normalises globally by default and the ``default`` preset wants
    per-patch normalisation, so a fixed default would refuse tile's own output.
    """
    from topoae.training import PRESETS, preset

    mode = attrs.get("normalise", {}).get("mode")
    # an unknown mode keeps "default", whose check then names the mismatch
    return next((name for name in PRESETS if preset(model, name).normalise == mode), "default")


def _store_patch(attrs: dict[str, Any]) -> int:
    """The store's patch edge: the patch models are built for any multiple of 16."""
    from topoae.errors import ConfigError

    patch = int(attrs["patch"])
    if patch < 16 or patch % 16:
        raise ConfigError(f"the store has {patch}x{patch} patches; the patch models take a "
                          "multiple of 16 (re-tile with --patch 32, 64, 96, ...)")
    return patch


@click.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder: config.json, metrics.csv, last.pt, best.pt.",
)
@click.option(
    "--model",
    type=click.Choice(["ae", "vae", "dfc-vae", "vae-gan"]),
    default="vae",
    show_default=True,
)
@click.option(
    "--config",
    "preset_name",
    type=click.Choice(["thesis", "default"]),
    default=None,
    help="thesis: the 2020 thesis' setup (global normalisation); default: topoae's improved one "
    "(per-patch normalisation). [default: the one matching STORE's normalisation]",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: the preset's)."
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=None,
    help="Global batch size (default: the preset's).",
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate."
)
@click.option(
    "--latent-dim", type=click.IntRange(min=1), default=None, help="Latent size (default 100)."
)
@click.option(
    "--kl-max",
    type=click.FloatRange(min=0),
    default=None,
    help="Final KL weight of the annealing schedule (default 1; lower keeps more detail).",
)
@click.option(
    "--clip-norm",
    type=click.FloatRange(min=0),
    default=None,
    help="Per-tensor gradient-norm clipping threshold (Keras clipnorm; default: the preset's, 1); "
    "0 turns clipping off.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Random seed (default 0); same seed, same weights on CPU.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the model trains; auto: cuda when available, else cpu.",
)
@click.option(
    "--num-workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="DataLoader worker processes.",
)
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop cleanly after this wall-clock budget (resumable checkpoint kept).",
)
@click.option(
    "--checkpoint-minutes",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Also checkpoint mid-epoch at this interval (0: per epoch only).",
)
@click.option(
    "--feature-net",
    type=click.Choice(["terrain", "vgg19-random", "vgg19-imagenet"]),
    default=None,
    help="DFC-VAE perceptual network (default: the preset's).",
)
@click.option(
    "--perceptual-weights",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Weights file of the feature network (torchvision vgg19-*.pth for vgg19-imagenet).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
@click.pass_context
def train(
    ctx: click.Context,
    store,
    out,
    model,
    preset_name,
    epochs,
    batch,
    lr,
    latent_dim,
    kl_max,
    clip_norm,
    seed,
    device,
    num_workers,
    max_minutes,
    checkpoint_minutes,
    feature_net,
    perceptual_weights,
    threads,
    resume,
    overwrite,
    quiet,
):
    """Train a model on the train split of STORE (a `topoae tile` output), validating on its val split.

    Every epoch appends losses, val RMSE (m) and PSNR to RUN/metrics.csv and
    writes RUN/last.pt; RUN/best.pt keeps the lowest val RMSE. Multi-GPU:
    torchrun --nproc_per_node=N -m topoae.cli.main train ...
    """
    import torch

    from topoae.errors import ConfigError
    from topoae.training import preset
    from topoae.training import train as run_train

    if threads:
        torch.set_num_threads(threads)
    given = {
        name
        for name in _FIXED_ON_RESUME
        if ctx.get_parameter_source("preset_name" if name == "config" else name)
        == click.core.ParameterSource.COMMANDLINE
    }
    if resume:
        if given:
            raise ConfigError(
                "cannot change "
                + ", ".join(f"--{n.replace('_', '-')}" for n in sorted(given))
                + " when resuming (only --epochs and runtime options may change)"
            )
        config = None
    else:
        overrides: dict[str, Any] = {}
        for key, value in (("epochs", epochs), ("batch_size", batch), ("lr", lr), ("seed", seed)):
            if value is not None:
                overrides[key] = value
        if clip_norm is not None:
            overrides.update(clip_norm=clip_norm, clip="tensor" if clip_norm > 0 else "none")
        from topoae.data.tiling import open_store

        attrs = open_store(store)[1]  # the store's metadata, read once for both choices
        overrides["model"] = {"patch_size": _store_patch(attrs)}
        if latent_dim is not None:
            overrides["model"]["latent_dim"] = latent_dim
        loss: dict[str, Any] = {}
        if kl_max is not None:
            if model == "ae":
                raise ConfigError("--kl-max applies to variational models only")
            loss["kl_max"] = kl_max
        if feature_net is not None:
            if model != "dfc-vae":
                raise ConfigError("--feature-net applies to --model dfc-vae only")
            loss["feature_net"] = feature_net
        if loss:
            overrides["loss"] = loss
        if preset_name is None:
            preset_name = _preset_for_store(attrs, model)
            if not quiet:
                click.echo(
                    f"config: {preset_name} (matches the store's normalisation; --config to choose)",
                    err=True,
                )
        config = preset(model, preset_name, **overrides)

    progress = _Progress(epochs or (config.epochs if config else 0), quiet)
    try:
        result = run_train(
            store,
            out,
            config,
            resume=resume,
            overwrite=overwrite,
            epochs=epochs if resume else None,
            device=device,
            num_workers=num_workers,
            max_minutes=max_minutes,
            checkpoint_minutes=checkpoint_minutes or None,
            perceptual_weights=perceptual_weights,
            callback=progress,
        )
    finally:
        progress._close()
    if not result.completed:
        click.echo(
            f"stopped after --max-minutes at epoch {result.epochs_done + 1}; continue with: "
            f"topoae train {store} --out {out} --resume",
            err=True,
        )
    if result.best_epoch is not None:
        rmse = (
            f", val RMSE {result.best_val_rmse_m:.2f} m"
            if result.best_val_rmse_m is not None
            else ""
        )
        click.echo(
            f"best: {result.best_path} (epoch {result.best_epoch}{rmse}); last: {result.last_path}"
        )
    else:
        click.echo(f"no epoch finished yet; checkpoint: {result.last_path}")
