"""``topoae encode`` / ``decode`` / ``sample``: a thin layer over :mod:`topoae.codec`.

Heavy libraries (torch, xarray, dask) are imported inside the commands only.
"""

from __future__ import annotations

import click

from topoae.cli._common import (
    SCHEDULER_HELP,
    bbox_option,
    progress,
    scheduler,
    units_option,
    var_option,
)
from topoae.constants import WINDOWS as _WINDOWS  # topoae.codec.blending's, without numpy


def _device_option(f):
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Where a patch model runs: auto (cuda when available, else cpu), cpu, cuda, cuda:N.",
    )(f)


def _model_option(f):
    return click.option(
        "--model",
        "model_path",
        default=None,
        type=click.Path(dir_okay=False),
        help="A registered model name (see `topoae models`) or a checkpoint (.pt) [the default "
        "model: hyperprior-gebco15].",
    )(f)


def _patch_only(ctx: click.Context, *names: str) -> None:
    """Refuse the patch models' options when given to the learned codec (they would be ignored)."""
    given = [p for p in ctx.command.params
             if p.name in names and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        from topoae.errors import ConfigError

        opts = ", ".join(p.opts[0] for p in given)
        raise ConfigError(f"{opts}: for the thesis patch models only; the learned codec does not take "
                          f"{'it' if len(given) == 1 else 'them'}")


def _load(model_path: str | None, *, patch: bool = False):
    """The model asked for, else the default (``patch``: the default patch model, for latent
    files of the patch codec)."""
    from topoae.checkpoint import load_checkpoint
    from topoae.zoo import DEFAULT, PATCH_DEFAULT, resolve_model

    return load_checkpoint(resolve_model(model_path, default=PATCH_DEFAULT if patch else DEFAULT),
                           map_location="cpu")  # the codec moves it to --device


@click.command()
@click.argument("region", type=click.Path(dir_okay=True))
@_model_option
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="File to create: .tae (learned codec) or, for the thesis patch models, .zarr / .nc.",
)
@bbox_option
@var_option
@units_option
@click.option(
    "--quality", type=float, default=None,
    help="Learned codec: quality level (0 = smallest file; steps of 1/8 between the trained "
    "levels, e.g. 3.5, interpolate them)."
)
@click.option(
    "--ratio",
    type=float,
    default=None,
    help="Learned codec: best quality (in steps of 1/8 of a level) whose whole file is at least "
    "this many times smaller than the float32 grid [the best level reaching 100x on the "
    "validation tiles; with --max-error, the level giving the smallest file].",
)
@click.option("--no-attrs", is_flag=True, help="Learned codec: drop the grid's attributes (tiny regions).")
@click.option(
    "--relative-error",
    type=float,
    default=None,
    metavar="R",
    help="Learned codec, with --max-error E: every cell within min(E, max(FLOOR, R*|z|)) of the "
    "original z (depth at sea, height on land), in every output dtype.",
)
@click.option("--floor", type=float, default=0.5, show_default=True, metavar="METRES",
              help="Smallest bound of --relative-error (near the coastline).")
@click.option(
    "--coastline",
    type=click.Choice(["off", "exact"]),
    default="off",
    show_default=True,
    help="Learned codec: exact keeps the sign of every cell (land > 0, sea < 0, 0 stays 0) in the "
    "written dtype, with a small lossless correction stream.",
)
@click.option(
    "--refine",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    metavar="STEPS",
    help="Learned codec: gradient steps per tile on the latents before coding (~16 s per "
    "512x512 tile per core for 60 steps, 0 = off). The shipped model's encoder was trained "
    "against the codec: refining gains it nothing measurable (see the README).",
)
@click.option("--stride", type=int, default=None, help="Patch models: spacing in cells [patch - patch/8].")
@click.option(
    "--quantize",
    type=click.Choice(["none", "8bit"]),
    default="8bit",
    show_default=True,
    help="Patch models: 8bit stores uint8 latents with per-channel scale/offset (half the bytes, "
    "same error).",
)
@click.option(
    "--max-error",
    type=float,
    default=None,
    metavar="METRES",
    help="Store a residual so that every cell is decoded within this error (learned codec "
    "without --quality/--ratio: at the level whose whole file is smallest).",
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
    units,
    quality,
    ratio,
    no_attrs,
    relative_error,
    floor,
    coastline,
    refine,
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
    """Encode REGION (any grid topoae reads) into one compact file."""
    from pathlib import Path

    from topoae import codec
    from topoae._atomic import check_output
    from topoae.codec import files as codec_io
    from topoae.codec import learned
    from topoae.errors import ConfigError
    from topoae.io import open_grid, parse_bbox
    from topoae.layout import PatchLayout

    loaded = _load(model_path)
    if learned.is_rd_model(loaded):
        if Path(out).suffix.lower() not in (".tae", ".zarr"):
            raise ConfigError(f"output {out} must end in .tae (or .zarr, with the latents) for the "
                              "learned codec")
        _patch_only(click.get_current_context(), "stride", "quantize", "keep_logvar", "window",
                    "device", "batch", "band_rows", "sched")
        if relative_error is None and click.get_current_context().get_parameter_source("floor") \
                == click.core.ParameterSource.COMMANDLINE:
            raise ConfigError("--floor is the smallest bound of --relative-error; give both")
        check_output(out, overwrite=overwrite)
        _encode_learned(loaded, region, out, bbox, var, quality, ratio, no_attrs, max_error,
                        overwrite, coastline, relative_error, floor, units, refine)
        return
    if (quality is not None or ratio is not None or coastline != "off" or relative_error is not None
            or refine):
        raise ConfigError("--quality / --ratio / --coastline / --relative-error / --refine need a "
                          "learned-codec model; this is a patch model")
    codec_io.latent_format(out)
    check_output(out, overwrite=overwrite)
    grid = open_grid(region, var=var, bbox=parse_bbox(bbox) if bbox else None, units=units)
    cm = codec.as_codec_model(loaded)
    s = codec.default_stride(cm.patch) if stride is None else stride
    lay = PatchLayout(grid.shape[0], grid.shape[1], cm.patch, s)
    total = lay.n_rows * lay.n_cols
    with (
        scheduler(sched),
        progress(total, "encoding") as bar,
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


def _encode_learned(loaded, region, out, bbox, var, quality, ratio, no_attrs, max_error, overwrite,
                    coastline, relative_error, floor, units=None, refine=0):
    from pathlib import Path

    from topoae.codec import learned
    from topoae.errors import ConfigError
    from topoae.io import open_grid, parse_bbox

    suffix = Path(out).suffix.lower()  # .tae or .zarr: encode checked it before any work
    if quality is not None and ratio is not None:
        raise ConfigError("give --quality or --ratio, not both")
    grid = open_grid(region, var=var, bbox=parse_bbox(bbox) if bbox else None, units=units)
    rd = learned.as_rd_model(loaded)
    kw = {"max_error": max_error, "keep_attrs": not no_attrs,
          "coastline": None if coastline == "off" else coastline,
          "relative_error": relative_error, "floor": floor, "refine": refine}
    if ratio is not None:
        header, streams, reached = learned.encode_to_ratio(grid, rd, ratio, **kw)
        if not reached:
            click.echo(f"Warning: no quality reaches {ratio:g}x; wrote the smallest file tried "
                       f"(quality {header['codec']['level']})", err=True)
    else:
        header, streams = learned.encode(grid, rd, level=quality, **kw)
    if suffix == ".zarr":
        from topoae.codec import latent_store

        latent_store.save(out, header, streams, rd, overwrite=overwrite)
        n = len(learned.to_bytes(header, streams))
        click.echo(f"{out}: Zarr store with the streams and the integer latents; the same "
                   f"region as a .tae file is {n:,} bytes")
    else:
        n = learned.write(out, header, streams, overwrite=overwrite)
    h, w = grid.shape
    lev = header["codec"]["level"]
    bound = f", every cell within {max_error:g} m" if max_error else ""
    if relative_error is not None:
        bound = (f", every cell within min({max_error:g}, max({floor:g}, {relative_error:g}*|z|)) m")
    coast = sum(len(v) for k, v in streams.items() if k.startswith("coast:"))
    if coastline == "exact":
        bound += f", coastline exact ({coast:,} bytes of sign corrections)"
    if refine:
        bound += f", latents refined ({refine} steps per tile)"
    where = "as a .tae file" if suffix == ".zarr" else "on disk"  # a store holds the latents too
    click.echo(f"{out}: {h}x{w} cells -> {n:,} bytes {where} (CR {h * w * 4 / n:.1f}x of float32), "
               f"quality {lev}{bound}")


@click.command()
@click.argument("latents", type=click.Path(dir_okay=True))
@_model_option
@click.option("--out", required=True, type=click.Path(), help="Grid to create (.nc or .tif).")
@click.option(
    "--dtype",
    type=click.Choice(["int16", "float32"]),
    default=None,
    help="int16 rounds to whole metres like GEBCO [the input's: int16 for integer-valued "
    "input such as GEBCO, else float32].",
)
@click.option("--force", is_flag=True, help="Decode latents made by another model anyway.")
@_device_option
@click.option("--batch", default=None, type=int, help="Patches per forward pass [as encoded].")
@click.option("--scheduler", "sched", default="threads", show_default=True, help=SCHEDULER_HELP)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def decode(latents, model_path, out, dtype, force, device, batch, sched, overwrite):
    """Decode LATENTS back onto the original grid (same shape, coordinates, attributes)."""

    from topoae import codec
    from topoae._atomic import check_output
    from topoae.codec import container, latent_store
    from topoae.codec import files as codec_io

    codec_io.grid_format(out)
    check_output(out, overwrite=overwrite)
    tae = container.is_tae(latents)
    if tae or latent_store.is_store(latents):
        from topoae.codec import learned

        _patch_only(click.get_current_context(), "device", "batch", "sched")
        header, streams = learned.read(latents) if tae else latent_store.load(latents)
        grid = learned.decode(header, streams, _load(model_path), force=force, dtype=dtype,
                              lazy=True)  # written tile row by tile row: bounded memory
        dtype = grid.encoding["dtype"]
        with scheduler("synchronous"):  # rows in order, on this thread: the encoder's numbers
            path = codec_io.save_grid(grid, out, dtype=dtype, overwrite=overwrite)
        h, w = grid.shape
        click.echo(f"{path}: {h}x{w} {dtype} grid '{grid.name}' decoded from {latents}")
        return
    dtype = dtype or codec_io.stored_dtype(latents)
    ds = codec_io.open_latents(latents)
    grid = codec.decode(ds, _load(model_path, patch=True), force=force, device=device, batch=batch,
                        lazy=True)
    with scheduler(sched):
        path = codec_io.save_grid(grid, out, dtype=dtype, overwrite=overwrite)
    h, w = grid.shape
    click.echo(f"{path}: {h}x{w} {dtype} grid '{grid.name}' decoded from {latents}")


@click.command()
@click.argument("latents", type=click.Path(dir_okay=True))
@_model_option
@click.option("--n", "n", default=None, type=int,
              help="Ensemble members [16 for a .tae file, the number its spread is calibrated for; "
                   "32 for patch latents].")
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

    from topoae._atomic import check_output
    from topoae.codec import container, latent_store
    from topoae.codec import files as codec_io
    from topoae.errors import ConfigError
    from topoae.sampling import sample as run_sample

    codec_io.check_ensemble_path(out)
    check_output(out, overwrite=overwrite)
    tae = container.is_tae(latents)
    if tae or latent_store.is_store(latents):
        from topoae.codec import ensemble, learned

        if prior:
            raise ConfigError("--prior applies to the patch models; a .tae file samples its posterior")
        _patch_only(click.get_current_context(), "device", "batch", "sched")
        header, streams = learned.read(latents) if tae else latent_store.load(latents)
        n = ensemble.MEMBERS if n is None else n
        ens = ensemble.sample(header, streams, _load(model_path), n=n, seed=seed,
                              temperature=temperature, force=force)
        path = codec_io.save_ensemble(ens, out, overwrite=overwrite)
        click.echo(f"{path}: {ens.attrs['topoae_ensemble']}; with mean, standard deviation and "
                   "5/95 % quantiles")
        return
    ds = codec_io.open_latents(latents)
    n = 32 if n is None else n
    ens = run_sample(
        ds,
        _load(model_path, patch=True),
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
