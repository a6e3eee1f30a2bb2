"""``topoae simulate``: a shallow-water check of reconstructed bathymetry against the original."""

from __future__ import annotations

from pathlib import Path

import click

from topoae.cli._common import displacement_origin_option, units_option
from topoae.constants import DEFAULT_ENGINE, ENGINES  # the registry's names, no engine imported


@click.command()
@click.option(
    "--bathymetry",
    "original",
    required=True,
    type=click.Path(dir_okay=False),
    help="The original grid (NetCDF or any format topoae reads).",
)
@click.option(
    "--compare",
    "compares",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A reconstruction, or an ensemble from `topoae sample` (repeatable).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--source",
    type=click.Choice(["gaussian", "okada", "displacement"]),
    default="gaussian",
    show_default=True,
    help="Initial sea surface.",
)
@click.option(
    "--amplitude", type=float, default=1.0, show_default=True, help="Gaussian hump height (m)."
)
@click.option(
    "--radius",
    type=float,
    default=None,
    help="Gaussian hump radius (m); default 5 % of the domain.",
)
@click.option("--source-at", default=None, help="LON,LAT of the hump (default: origin).")
@click.option(
    "--okada",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON/YAML Okada subfaults (with --source okada).",
)
@click.option(
    "--displacement",
    type=click.Path(dir_okay=False),
    default=None,
    help="Displacement grid (with --source displacement).",
)
@click.option(
    "--displacement-var",
    default=None,
    help="Variable of the displacement grid (detected if omitted).",
)
@displacement_origin_option
@click.option(
    "--gauge",
    "gauges",
    multiple=True,
    help="LON,LAT of a gauge (repeatable; default: 3 in deep water).",
)
@click.option("--duration", type=float, default=7500.0, show_default=True, help="Seconds.")
@click.option(
    "--every", type=float, default=5.0, show_default=True, help="Gauge sampling interval (s)."
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=DEFAULT_ENGINE,
    show_default=True,
    help="Shallow-water engine (GeoClaw needs clawpack, gfortran and Clawpack's sources).",
)
@click.option("--origin", default=None, help="LON,LAT of the local projection's origin.")
@click.option("--spacing", type=float, default=None, help="Simulation grid spacing (m).")
@click.option(
    "--max-cells",
    type=int,
    default=150,
    show_default=True,
    help="Cap on grid samples per axis (run time grows with its square).",
)
@click.option("--no-flat", is_flag=True, help="Skip the flat-bathymetry baseline.")
@click.option("--friction", type=float, default=0.0, show_default=True, help="Manning's n.")
@click.option(
    "--boundary",
    type=click.Choice(["reflective", "transmissive"]),
    default="reflective",
    show_default=True,
)
@click.option(
    "--flow-algorithm",
    type=click.Choice(["DE0", "DE1", "DE2"]),
    default="DE0",
    show_default=True,
    help="ANUGA's scheme.",
)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="OpenMP threads for ANUGA (1 is fastest on small runs; GeoClaw runs serial).",
)
@click.option("--var", default=None, help="Elevation variable of the original.")
@click.option(
    "--bbox",
    default=None,
    metavar="W,S,E,N",
    help="Crop the original to W,S,E,N first, in the grid's coordinates (degrees, or metres "
    "on projected grids).",
)
@units_option(what="the original")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def simulate(
    original,
    compares,
    out,
    source,
    amplitude,
    radius,
    source_at,
    okada,
    displacement,
    displacement_var,
    displacement_origin,
    gauges,
    duration,
    every,
    engine,
    origin,
    spacing,
    max_cells,
    no_flat,
    friction,
    boundary,
    flow_algorithm,
    threads,
    var,
    bbox,
    units,
    overwrite,
) -> None:
    """Run a tsunami on the original, each --compare grid and a flat baseline; compare gauges."""
    from topoae._atomic import check_output
    from topoae.errors import ConfigError
    from topoae.io import open_grid, parse_bbox
    from topoae.simulation.check import CheckConfig, load_ensemble, shallow_water_check, write_check
    from topoae.simulation.engines import get_engine
    from topoae.simulation.projection import parse_point

    check_output(out, overwrite=overwrite)
    eng = get_engine(engine)
    # a missing engine fails before any grid is read
    eng.prepare(progress=lambda m: click.echo(f"  {m} ...", err=True))
    if (source == "okada") != (okada is not None):
        raise ConfigError("--source okada and --okada FILE go together")
    if (source == "displacement") != (displacement is not None):
        raise ConfigError("--source displacement and --displacement FILE go together")
    if displacement_origin and not displacement:
        raise ConfigError("--displacement-origin goes with --displacement")
    grid = open_grid(original, var=var, bbox=parse_bbox(bbox) if bbox else None, units=units)
    src = None
    if okada:
        from topoae.simulation.sources import OkadaSource, load_subfaults

        src = OkadaSource(tuple(load_subfaults(okada)))
    elif displacement:
        from topoae.simulation.sources import align_displacement

        src = open_grid(displacement, var=displacement_var, kind="displacement")
        d_origin = parse_point(displacement_origin) if displacement_origin else None
        src = align_displacement(src, grid, origin=d_origin)
    compared, ensembles = {}, {}
    for path in compares:
        name = Path(path).stem
        while name in compared or name in ensembles or name == "original":
            name += "'"
        members = load_ensemble(path)
        if members is None:
            compared[name] = open_grid(path)
        else:
            ensembles[name] = members
    cfg = CheckConfig(
        engine=eng.make_config(
            duration=duration,
            every=every,
            flow_algorithm=flow_algorithm,
            friction=friction,
            boundary=boundary,
            threads=threads,
        ),
        gauges=tuple(parse_point(g) for g in gauges),
        origin=parse_point(origin) if origin else None,
        spacing=spacing,
        max_cells=max_cells,
        flat=not no_flat,
        amplitude=amplitude,
        radius=radius,
        source_at=parse_point(source_at) if source_at else None,
        engine_name=engine,
    )
    result = shallow_water_check(
        grid,
        compared=compared,
        ensembles=ensembles,
        source=src,
        config=cfg,
        progress=lambda m: click.echo(f"  running {m} ...", err=True),
    )
    files = write_check(result, out, overwrite=overwrite)
    click.echo(
        f"Wrote {len(files)} files to {out} ({sum(result.wall_s.values()):.1f} s of simulation)."
    )
    for row in result.metrics:
        if "[" in row["run"]:
            continue  # ensemble members: see metrics.csv
        err = row["arrival_time_error"]
        arrival = f"{err:+.1f} s" if err == err else "n/a (no arrival above threshold)"
        click.echo(
            f"  {row['gauge']} {row['run']}: arrival error {arrival},"
            f" max error {row['max_amplitude_error']:+.3f} m, RMSE {row['rmse']:.3f} m,"
            f" r = {row['correlation']:.3f}"
        )
