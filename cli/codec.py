"""``topoae encode`` / ``decode`` / ``sample``: a thin layer over :mod:`topoae.codec`.

Heavy libraries (torch, xarray, dask) are imported inside the commands only.
"""

from __future__ import annotations

import sys

import click

from topoae.cli._common import SCHEDULER_HELP, bbox_option, scheduler, var_option

_WINDOWS = ["cosine", "uniform", "nearest"]  # topoae.blending.WINDOWS, without importing numpy


def _device_option(f):
    return click.option(
        "--device",
        default="cpu",
        show_default=True,
        help="Where the model runs: cpu, cuda, cuda:N or auto.",
    )(f)


def _model_option(f):
    return click.option(
        "--model",
        "model_path",
        default=None,
        type=click.Path(dir_okay=False),
        help="Checkpoint (.pt) of the model [the shipped model].",
    )(f)


def _load(model_path: str | None):
    from topoae.checkpoint import load_checkpoint
    from topoae.zoo import resolve_model

    return load_checkpoint(resolve_model(model_path), map_location="cpu")  # the codec moves it to --device


@click.command()
@click.argument("region", type=click.Path(dir_okay=True))
@_model_option
@click.option(
    "--out", required=True, type=click.Path(), help="Latent file to create (.zarr or .nc)."
)
@bbox_option
@var_option
@click.option("--stride", type=int, default=None, help="Patch spacing in cells [patch - patch/8].")
@click.option(
    "--quantize",
    type=click.Choice(["none", "8bit"]),
    default="none",
    show_default=True,
    help="8bit: uint8 latents with per-channel scale/offset.",
)
@click.option(
    "--max-error",
    type=float,
    default=None,
    metavar="METRES",
    help="Store a residual so that every cell is decoded within this error.",
)
@click.option(
    "--keep-logvar", is_flag=True, help="Also store logvar (needed by `topoae sample` from q(z|x))."
)
@click.option(
    "--window", type=click.Choice(_WINDOWS), default="cosine", show_default=True, help="Blending."
)
@_device_option
@click.option("--batch", default=64, show_default=True, help="Patches per forward pass.")
@click.option(
    "--band-rows", default=4, show_default=True, help="Patch rows read and encoded at a time."
)
@click.option("--scheduler", "sched", default="threads", show_default=True, help=SCHEDULER_HELP)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def encode(
    region,
    model_path,
    out,
    bbox,
    var,
    stride,
    quantize,
    max_error,
    keep_logvar,
    window,
    device,
    batch,
    band_rows,
    sched,
    overwrite,
):
    """Encode REGION (any grid topoae reads) into a latent grid."""
    from topoae import codec, codec_io
    from topoae._atomic import check_output
    from topoae.blending import Layout
    from topoae.io import open_grid, parse_bbox

    check_output(out, overwrite=overwrite)
    codec_io.latent_format(out)
    grid = open_grid(region, var=var, bbox=parse_bbox(bbox) if bbox else None)
    cm = codec.as_codec_model(_load(model_path))
    s = codec.default_stride(cm.patch) if stride is None else stride
    lay = Layout(grid.shape[0], grid.shape[1], cm.patch, s)
    total = lay.n_rows * lay.n_cols
    with (
        scheduler(sched),
        click.progressbar(length=total, label="encoding", file=sys.stderr) as bar,
    ):
        ds = codec.encode(
            grid,
            cm,
            stride=s,
            quantize=quantize,
            max_error=max_error,
            keep_logvar=keep_logvar,
            window=window,
            batch=batch,
            band_rows=band_rows,
            device=device,
            progress=bar.update,
        )
    path = codec_io.save_latents(ds, out, overwrite=overwrite)
    click.echo(f"{path}: " + codec_io.summary_line(codec_io.summary(ds, path)))


@click.command()
@click.argument("latents", type=click.Path(dir_okay=True))
@_model_option
@click.option("--out", required=True, type=click.Path(), help="Grid to create (.nc or .tif).")
@click.option(
    "--dtype",
    type=click.Choice(["int16", "float32"]),
    default="float32",
    show_default=True,
    help="int16 rounds to whole metres like GEBCO.",
)
@click.option("--force", is_flag=True, help="Decode latents made by another model anyway.")
@_device_option
@click.option("--batch", default=None, type=int, help="Patches per forward pass [as encoded].")
@click.option("--scheduler", "sched", default="threads", show_default=True, help=SCHEDULER_HELP)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def decode(latents, model_path, out, dtype, force, device, batch, sched, overwrite):
    """Decode LATENTS back onto the original grid (same shape, coordinates, attributes)."""
    from topoae import codec, codec_io
    from topoae._atomic import check_output

    check_output(out, overwrite=overwrite)
    ds = codec_io.open_latents(latents)
    grid = codec.decode(ds, _load(model_path), force=force, device=device, batch=batch, lazy=True)
    with scheduler(sched):
        path = codec_io.save_grid(grid, out, dtype=dtype, overwrite=overwrite)
    h, w = grid.shape
    click.echo(f"{path}: {h}x{w} {dtype} grid '{grid.name}' decoded from {latents}")


@click.command()
@click.argument("latents", type=click.Path(dir_okay=True))
@_model_option
@click.option("--n", "n", default=32, show_default=True, help="Ensemble members.")
@click.option("--out", required=True, type=click.Path(), help="Ensemble to create (.nc or .zarr).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same ensemble.")
@click.option("--temperature", default=1.0, show_default=True, help="Scale of the latent noise.")
@click.option("--prior", is_flag=True, help="Sample the prior N(0, I) instead of q(z|x).")
@click.option("--force", is_flag=True, help="Use latents made by another model anyway.")
@_device_option
@click.option("--batch", default=None, type=int, help="Patches per forward pass [as encoded].")
@click.option("--scheduler", "sched", default="threads", show_default=True, help=SCHEDULER_HELP)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def sample(
    latents, model_path, n, out, seed, temperature, prior, force, device, batch, sched, overwrite
):
    """Draw an ensemble of N plausible grids from LATENTS, with mean and standard deviation."""
    from topoae import codec_io
    from topoae._atomic import check_output
    from topoae.sampling import sample as run_sample

    check_output(out, overwrite=overwrite)
    ds = codec_io.open_latents(latents)
    ens = run_sample(
        ds,
        _load(model_path),
        n=n,
        seed=seed,
        temperature=temperature,
        prior=prior,
        force=force,
        device=device,
        batch=batch,
        lazy=True,
    )
    with scheduler(sched):
        path = codec_io.save_ensemble(ens, out, overwrite=overwrite)
    click.echo(
        f"{path}: {n} members (seed {seed}, temperature {temperature:g}, "
        f"{'prior' if prior else 'q(z|x)'}) with mean and standard deviation"
    )
