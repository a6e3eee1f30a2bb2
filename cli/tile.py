"""``topoae tile``: cut grids into normalised patches in a Zarr store."""

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


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option(
    "--out", required=True, type=click.Path(), help="Zarr store to create (patches.zarr)."
)
@click.option("--patch", default=96, show_default=True, help="Patch edge in cells.")
@click.option(
    "--stride",
    default=None,
    type=int,
    help="Step between patches in cells (<= patch) [default: the patch size].",
)
@bbox_option
@var_option
@units_option(what="the input grids")
@click.option(
    "--split",
    default="0.9,0.05,0.05",
    show_default=True,
    help="train,val,test fractions (by spatial blocks).",
)
@click.option("--block", default=4, show_default=True, help="Split block edge, in patches.")
@click.option(
    "--split-by-file",
    "split_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON mapping train/val/test to lists of input file stems (as benchmarks/rd_split.json): "
    "every patch of an input goes to its file's split (instead of --split/--block).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--normalise", type=click.Choice(["global", "patch"]), default="global", show_default=True
)
@click.option(
    "--nan",
    "nan_mode",
    type=click.Choice(["drop", "flag"]),
    default="drop",
    show_default=True,
    help="Patches containing NaN: drop them, or keep them flagged (NaN stays NaN).",
)
@click.option(
    "--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="W,S,E,N",
    help="Drop patches touching this box (repeatable).",
)
@click.option("--scheduler", "sched", default="threads", show_default=True, help=SCHEDULER_HELP)
@click.option("--overwrite", is_flag=True, help="Replace an existing output store.")
def tile(
    inputs,
    out,
    patch,
    stride,
    bbox,
    var,
    units,
    split,
    block,
    split_file,
    seed,
    normalise,
    nan_mode,
    dtype,
    exclude,
    sched,
    overwrite,
):
    """Cut INPUTS (GEBCO NetCDF, GeoTIFF, ASCII, Zarr...) into patches stored in Zarr.

    Rotations/reflections are applied on the fly by the training dataset, not stored.
    """
    from click.core import ParameterSource

    from topoae._atomic import check_output
    from topoae.data.splits import parse_fractions, read_split_file
    from topoae.data.tiling import TileConfig, file_splits
    from topoae.data.tiling import tile as run_tile
    from topoae.errors import ConfigError
    from topoae.io import open_grid, parse_bbox

    check_output(out, overwrite=overwrite)
    stride = patch if stride is None else stride
    ctx = click.get_current_context()
    explicit = [
        f"--{n}"
        for n in ("split", "block")
        if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    ]
    if split_file is not None and explicit:
        raise ConfigError(f"--split-by-file and {' / '.join(explicit)} exclude each other")
    by_file = read_split_file(split_file) if split_file is not None else ()
    cfg = TileConfig(
        patch=patch,
        stride=stride,
        normalise=normalise,
        split=parse_fractions(split),
        block=block,
        seed=seed,
        nan=nan_mode,
        dtype=dtype,
        exclude=tuple(parse_bbox(e) for e in exclude),
        split_by_file=by_file,
    )
    box = parse_bbox(bbox) if bbox else None
    grids = [open_grid(p, var=var, bbox=box, units=units) for p in inputs]
    if by_file:  # refuse unlisted or overlapping inputs before any progress is shown
        file_splits(grids, by_file)
    total = sum(cfg.layout(g.shape).n_rows for g in grids)
    with scheduler(sched), progress(total, "tiling") as bar:
        summary = run_tile(grids, out, cfg, overwrite=overwrite, progress=bar.update)
    click.echo(summary.line())
