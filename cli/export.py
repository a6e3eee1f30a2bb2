"""``topoae export exahype|geoclaw|anuga``: write a bathymetry as input for a tsunami engine."""

from __future__ import annotations

import click

from topoae.cli._common import displacement_origin_option, units_option


def _points(values: tuple[str, ...]) -> tuple[tuple[float, float], ...]:
    from topoae.simulation.projection import parse_point

    return tuple(parse_point(v) for v in values)


def _domain(text: str | None) -> tuple[float, float, float, float] | None:
    from topoae.errors import ConfigError

    if not text:
        return None
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--domain {text!r} is not four numbers W,S,E,N") from None
    return w, s, e, n


def _open(
    path: str,
    var: str | None,
    bbox: str | None,
    out: str,
    overwrite: bool,
    units: str | None = None,
):
    from topoae._atomic import check_output
    from topoae.io import open_grid, parse_bbox

    check_output(out, overwrite=overwrite)  # fail before any work

    return open_grid(path, var=var, bbox=parse_bbox(bbox) if bbox else None, units=units)


def _source(
    grid,
    displacement: str | None,
    okada: str | None,
    displacement_var: str | None = None,
    displacement_origin: str | None = None,
):
    from topoae.errors import ConfigError

    if displacement and okada:
        raise ConfigError("give either --displacement or --okada, not both")
    if displacement_origin and not displacement:
        raise ConfigError("--displacement-origin goes with --displacement")
    displ = ok = None
    if displacement:
        from topoae.io import open_grid
        from topoae.simulation.projection import parse_point
        from topoae.simulation.sources import align_displacement

        displ = open_grid(displacement, var=displacement_var, kind="displacement")
        origin = parse_point(displacement_origin) if displacement_origin else None
        displ = align_displacement(displ, grid, origin=origin)
    if okada:
        from topoae.simulation.sources import OkadaSource, load_subfaults

        ok = OkadaSource(tuple(load_subfaults(okada)))
    return displ, ok


def _common(f):
    opts = [
        click.argument("bathymetry", type=click.Path(dir_okay=False)),
        click.option(
            "--out",
            "out",
            required=True,
            type=click.Path(file_okay=False),
            help="Output folder (must not exist).",
        ),
        click.option("--var", default=None, help="Elevation variable (detected if omitted)."),
        click.option(
            "--bbox",
            default=None,
            help="Crop to W,S,E,N first, in the grid's coordinates (degrees, or metres on "
            "projected grids).",
        ),
        units_option(what="the bathymetry"),
        click.option("--overwrite", is_flag=True, help="Replace an existing output folder."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _source_options(f):
    f = click.option(
        "--okada",
        type=click.Path(dir_okay=False),
        default=None,
        help="JSON/YAML list of Okada subfaults (lon, lat, depth, strike, dip, "
        "rake, slip, length, width; metres and degrees).",
    )(f)
    f = click.option(
        "--displacement",
        type=click.Path(dir_okay=False),
        default=None,
        help="Sea-floor displacement grid (NetCDF, metres of uplift).",
    )(f)
    f = click.option(
        "--displacement-var",
        default=None,
        help="Variable of the displacement grid (detected if omitted).",
    )(f)
    f = displacement_origin_option(f)
    return f


@click.group()
def export() -> None:
    """Write bathymetry as input for ExaHyPE, GeoClaw or ANUGA."""


@export.command("exahype")
@_common
@_source_options
@click.option(
    "--origin",
    default=None,
    help="LON,LAT of the local projection's origin (default: grid centre).",
)
@click.option("--end-time", type=float, default=7500.0, show_default=True, help="Seconds.")
@click.option("--probe", "probes", multiple=True, help="LON,LAT of a probe (repeatable).")
@click.option("--probe-every", type=float, default=5.0, show_default=True, help="Seconds.")
@click.option(
    "--spacing", type=float, default=None, help="Grid spacing in metres (default: the input's)."
)
@click.option("--max-cells", type=int, default=None, help="Cap on samples per axis.")
@click.option("--order", type=int, default=2, show_default=True, help="ADER-DG order.")
@click.option(
    "--mesh-cells",
    type=int,
    default=25,
    show_default=True,
    help="Coarsest ExaHyPE cells per side. ExaHyPE builds only 1, 7, 25, 79, 241, ... "
    "(3^k - 2); the smallest of these not below N is used and printed.",
)
@click.option(
    "--domain",
    default=None,
    help="W,S,E,N box (grid coordinates) the simulated square must cover (default: the "
    "largest square in the grid, placed to cover every probe).",
)
def exahype_cmd(
    bathymetry,
    out,
    var,
    bbox,
    units,
    overwrite,
    displacement,
    okada,
    displacement_var,
    displacement_origin,
    origin,
    end_time,
    probes,
    probe_every,
    spacing,
    max_cells,
    order,
    mesh_cells,
    domain,
) -> None:
    """Write ASAGI NetCDF, easi YAML and an ExaHyPE spec for BATHYMETRY into --out."""
    from topoae.simulation.exahype import ExahypeConfig, export_exahype
    from topoae.simulation.projection import parse_point

    grid = _open(bathymetry, var, bbox, out, overwrite, units)
    displ, ok = _source(grid, displacement, okada, displacement_var, displacement_origin)
    cfg = ExahypeConfig(
        end_time=end_time,
        probe_every=probe_every,
        probes=_points(probes),
        origin=parse_point(origin) if origin else None,
        spacing=spacing,
        max_cells=max_cells,
        order=order,
        mesh_cells=mesh_cells,
        domain=_domain(domain),
    )
    res = export_exahype(
        grid,
        out,
        config=cfg,
        displacement=displ,
        okada=ok,
        provenance={
            "bathymetry": bathymetry,
            "displacement": displacement,
            "displacement_origin": displacement_origin,
            "okada": okada,
        },
        overwrite=overwrite,
    )
    (ox, oy), (wx, _) = res.domain_offset_km, res.domain_width_km
    asked = "" if res.mesh_cells == res.requested_cells else f" (asked for {res.requested_cells})"
    click.echo(
        f"Wrote {len(res.files)} files to {res.out_dir}: domain offset "
        f"({ox:.3f}, {oy:.3f}) km, width {wx:.3f} km, ExaHyPE mesh {res.mesh_cells} x "
        f"{res.mesh_cells} cells of {res.cell_km:.3f} km{asked}, {len(res.probes_km)} probe(s)."
    )


@export.command("geoclaw")
@_common
@_source_options
def geoclaw_cmd(
    bathymetry,
    out,
    var,
    bbox,
    units,
    overwrite,
    displacement,
    okada,
    displacement_var,
    displacement_origin,
) -> None:
    """Write BATHYMETRY as a GeoClaw topotype-3 file (and a dtopo file with a source)."""
    from topoae.simulation.geoclaw import export_geoclaw

    grid = _open(bathymetry, var, bbox, out, overwrite, units)
    displ, ok = _source(grid, displacement, okada, displacement_var, displacement_origin)
    files = export_geoclaw(
        grid,
        out,
        displacement=displ,
        okada=ok,
        provenance={"bathymetry": bathymetry},
        overwrite=overwrite,
    )
    click.echo(f"Wrote {', '.join(files)} to {out}.")


@export.command("anuga")
@_common
@click.option("--origin", default=None, help="LON,LAT of the local projection's origin.")
@click.option("--spacing", type=float, default=None, help="Grid spacing in metres.")
@click.option("--max-cells", type=int, default=None, help="Cap on samples per axis.")
@click.option("--gauge", "gauges", multiple=True, help="LON,LAT of a gauge (repeatable).")
def anuga_cmd(
    bathymetry, out, var, bbox, units, overwrite, origin, spacing, max_cells, gauges
) -> None:
    """Write BATHYMETRY as an ESRI ASCII grid (.asc) in local metres for ANUGA."""
    from topoae.simulation.anuga_export import export_anuga
    from topoae.simulation.projection import parse_point

    grid = _open(bathymetry, var, bbox, out, overwrite, units)
    files = export_anuga(
        grid,
        out,
        origin=parse_point(origin) if origin else None,
        spacing=spacing,
        max_cells=max_cells,
        gauges=_points(gauges),
        provenance={"bathymetry": bathymetry},
        overwrite=overwrite,
    )
    click.echo(f"Wrote {', '.join(files)} to {out}.")
