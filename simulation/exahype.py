"""Write a bathymetry (and a source) as input for ExaHyPE's shallow-water tsunami solver.

What is written, in one folder (facts from ExaHyPE's public Tohoku scenario):

- ``bathymetry.nc`` and, with a source, ``displacement.nc``: ASAGI NetCDF grids
  (:mod:`topoae.simulation.asagi`) in metres of a local projection around the origin.
- ``data_gmt.yaml``: the easi material file. An ``!AffineMap`` turns the solver's km
  mesh coordinates into metres; ``!ASAGI`` readers give ``b`` (bathymetry) and ``d``
  (displacement) from variable ``z``, scaled by 0.001 because the solver runs in km;
  ``d`` is 0 outside the displacement grid.
- ``inputs.txt``: the two source-offset parameters the scenario reads (``0``, ``0``).
- ``SWE_topoae.exahype2``: the ExaHyPE 1 specification for the Limiting-ADER-DG solver
  (variables h, hu, hv, b) of the ExaHyPE-Tsunami application ``SWE_asagi_limited_l1``: a
  square domain in km (Peano's grid is a square; see :func:`choose_domain`), a maximum mesh
  size that makes ExaHyPE build exactly the cell count reported (see :func:`mesh_cells_for`),
  end time, one ``probe::ascii`` plotter per probe.
- ``exahype2/bath.nc``, ``exahype2/displ.nc``, ``exahype2/domain.json``: the same grids
  for ExaHyPE 2's shallow-water ``TopologyParser`` (variable ``z``, coordinates ``x``/``y``),
  which maps the simulation domain ``[0, width]`` onto the grid's coordinate range.
- ``README.md``: how to run it; ``topoae.json``: the configuration and provenance.

Everything written is read back (netCDF4, YAML, JSON) before the folder is renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae._version import __version__
from topoae.errors import ConfigError, InputError, RegionError
from topoae.simulation.asagi import check_asagi, write_asagi
from topoae.simulation.projection import (
    LocalProjection,
    is_geographic,
    local_points,
    to_local_grid,
)
from topoae.simulation.sources import (
    OkadaSource,
    align_displacement,
    check_displacement,
    source_on_grid,
)

SPEC_NAME = "SWE_topoae.exahype2"
#: The ExaHyPE-Tsunami application the spec is written for (reads ``data_gmt.yaml``, g = 9.81e-3).
APP_NAME = "SWE_asagi_limited_l1"
#: Largest request accepted: 3^9 - 2 = 19681 cells per side (~390 million cells).
MAX_MESH_CELLS = 3**9 - 2
#: Relative margin of ``maximum_mesh_size`` above ``width / cells``: ExaHyPE compares the mesh
#: size it computes (a few roundings of ``width / cells``) with it, so it must be safely above,
#: and far below the next coarser count's ``width / (3^(k-1) - 2)`` (a factor ~3 away).
MESH_SIZE_MARGIN = 1e-6
#: Distance, as a fraction of the domain's side, kept between probes and the domain's edges
#: when the grid leaves room (see :func:`choose_domain`).
PROBE_MARGIN = 0.1
#: How far (fraction of its size, at least one grid cell) a ``domain`` box may reach past the
#: grid and be clipped to it rather than refused.
BOX_SLACK = 0.05


@dataclass(frozen=True)
class ExahypeConfig:
    """How to build the ExaHyPE input (saved into ``topoae.json`` and the NetCDF attributes).

    ``probes`` are ``(lon, lat)`` for geographic grids or ``(x, y)`` in the grid's metres;
    ``origin`` likewise (default: grid centre). ``spacing`` (m) and ``max_cells`` control the
    resampled bathymetry. ``mesh_cells`` is the requested number of coarsest ExaHyPE cells
    across the domain; ExaHyPE can only build 3^k - 2 of them (1, 7, 25, 79, 241, ...), so the
    smallest such count not below the request is used (:func:`mesh_cells_for`). ``domain`` is
    ``(W, S, E, N)`` in the grid's coordinates: the simulated square is the smallest one that
    covers it; without it, the largest square in the grid placed to cover every probe
    (:func:`choose_domain`).
    """

    end_time: float = 7500.0
    probe_every: float = 5.0
    probes: tuple[tuple[float, float], ...] = ()
    origin: tuple[float, float] | None = None
    spacing: float | None = None
    max_cells: int | None = None
    order: int = 2
    mesh_cells: int = 25
    domain: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if not self.end_time > 0 or not self.probe_every > 0:
            raise ConfigError("end time and probe interval must be > 0 s")
        if isinstance(self.mesh_cells, bool) or int(self.mesh_cells) != self.mesh_cells:
            raise ConfigError(f"mesh_cells must be a whole number, got {self.mesh_cells}")
        if not 1 <= self.mesh_cells <= MAX_MESH_CELLS:
            raise ConfigError(
                f"mesh_cells must be in 1..{MAX_MESH_CELLS} (ExaHyPE builds 1, 7, 25, 79, 241, "
                f"... cells per side), got {self.mesh_cells}"
            )
        if self.domain is not None:
            if len(self.domain) != 4 or not np.all(np.isfinite(self.domain)):
                raise ConfigError(f"domain must be four numbers W,S,E,N, got {self.domain}")
            if self.domain[1] >= self.domain[3]:
                raise ConfigError(f"domain {self.domain}: south must be below north")
        if not 1 <= self.order <= 9:
            raise ConfigError(f"ADER-DG order must be in 1..9, got {self.order}")


@dataclass(frozen=True)
class ExahypeExport:
    """What :func:`export_exahype` wrote.

    ``mesh_cells`` is the number of coarsest cells per side ExaHyPE will build for the spec's
    ``maximum_mesh_size`` (``mesh_size_km``, slightly above the cell edge ``cell_km``);
    ``requested_cells`` is what the configuration asked for.
    """

    out_dir: Path
    files: dict[str, Path]
    domain_offset_km: tuple[float, float]
    domain_width_km: tuple[float, float]
    probes_km: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    mesh_cells: int = 0
    requested_cells: int = 0
    mesh_size_km: float = 0.0
    cell_km: float = 0.0


def _displacement_grid(displacement: xr.DataArray, bathy: xr.DataArray) -> xr.DataArray:
    """Displacement on its own footprint, in the bathymetry's local frame; NaN → 0."""
    if is_geographic(displacement):
        if "origin_lon" not in bathy.attrs:
            raise ConfigError("a geographic displacement needs a geographic bathymetry")
        origin = (bathy.attrs["origin_lon"], bathy.attrs["origin_lat"])
    else:
        if "origin_lon" in bathy.attrs:
            raise ConfigError(
                "a projected (x/y) displacement needs a projected bathymetry in the same frame"
            )
        origin = (bathy.attrs.get("origin_x", 0.0), bathy.attrs.get("origin_y", 0.0))
    d = to_local_grid(displacement, origin=origin, fill=False)
    d = d.fillna(0.0)
    d.attrs["long_name"] = "vertical sea-floor displacement"
    return d


def mesh_cells_for(requested: int) -> int:
    """The cell count per side ExaHyPE 1 can build that is nearest to ``requested``, not below.

    ExaHyPE 1 scales Peano's bounding box so that one coarsest cell lies outside the domain on
    each side (spec defaults ``outside_cells: 2``, ``outside_cells_left: 1``): a level with 3^k
    cells has 3^k - 2 inside the domain, so only 1, 7, 25, 79, 241, ... can be built. The rule
    is "not below" so the run resolves at least what was asked for (25 → 25, 26 → 79).
    """
    if requested < 1:
        raise ConfigError(f"mesh cells must be >= 1, got {requested}")
    k = 1
    while 3**k - 2 < requested:
        k += 1
    return 3**k - 2


def exahype_inside_cells(width_km: float, maximum_mesh_size: float) -> int:
    """Cells per side inside a square domain of ``width_km`` that ExaHyPE 1 builds.

    The rule of ``exahype::runners::Runner::createRepository`` with the spec's default
    bounding-box scaling (two outside cells, one on the left): start at the coarsest Peano level
    whose cells are no larger than ``maximum_mesh_size`` (level 1 is one cell), then refine until
    ``width / (3^(level-1) - 2)`` is no larger than it; the domain holds ``3^(level-1) - 2``.
    """
    h, width = float(maximum_mesh_size), float(width_km)
    level, size = 1, np.inf  # Solver::computeCoarsestMeshSizeAndLevel
    while size > h:
        size = width / 3 ** (level - 1)
        level += 1
    level -= 1
    mesh = -1.0
    while mesh < 0 or mesh > h:
        cells = 3 ** (level - 1)
        mesh = cells / (cells - 2) * width / cells  # negative on level 1 (one cell): go on
        level += 1
    return 3 ** (level - 2) - 2


def mesh_size_for(width_km: float, cells: int) -> float:
    """``maximum_mesh_size`` (km) for which ExaHyPE builds exactly ``cells`` (3^k - 2) per side."""
    h = float(width_km) / cells * (1.0 + MESH_SIZE_MARGIN)
    built = exahype_inside_cells(width_km, h)
    if built != cells:  # the margin is far inside the gap between counts: never expected
        raise ConfigError(f"cannot make ExaHyPE build {cells} cells (it would build {built})")
    return h


def _grid_box_km(grid: xr.DataArray) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` of the grid's sample extent in km."""
    x, y = grid["x"].values, grid["y"].values
    return float(x[0]) / 1e3, float(x[-1]) / 1e3, float(y[0]) / 1e3, float(y[-1]) / 1e3


def _box_km(domain: tuple[float, float, float, float], grid: xr.DataArray):
    """The ``(W, S, E, N)`` box in the grid's local km: ``(x0, x1, y0, y1)`` that covers it."""
    w, s, e, n = (float(v) for v in domain)
    if "origin_lon" in grid.attrs:
        if e <= w:  # crosses the antimeridian: 170,...,-170 is 170..190
            e += 360.0
        k = 65  # meridians converge: sample the edges, not only the corners
        lons, lats = np.linspace(w, e, k), np.linspace(s, n, k)
        lon = np.concatenate([lons, lons, np.full(k, w), np.full(k, e)])
        lat = np.concatenate([np.full(k, s), np.full(k, n), lats, lats])
        proj = LocalProjection(grid.attrs["origin_lon"], grid.attrs["origin_lat"])
        x, y = proj.forward(lon, lat)
    else:
        if e <= w:
            raise RegionError(f"domain {w:g},{s:g},{e:g},{n:g}: west must be left of east")
        x = np.array([w, e]) - grid.attrs.get("origin_x", 0.0)
        y = np.array([s, n]) - grid.attrs.get("origin_y", 0.0)
    return float(x.min()) / 1e3, float(x.max()) / 1e3, float(y.min()) / 1e3, float(y.max()) / 1e3


def _label(point) -> str:
    return f"{point[0]:g},{point[1]:g}"


def choose_domain(
    grid: xr.DataArray,
    probes_km=(),
    probe_labels=(),
    domain: tuple[float, float, float, float] | None = None,
) -> tuple[tuple[float, float], float]:
    """The square ExaHyPE domain ``((x0, y0), side)`` in km inside ``grid``'s sample extent.

    With ``domain`` (W, S, E, N in the grid's coordinates) the side is that of the smallest
    square covering the box (clipped to the grid where it reaches past it by at most
    ``BOX_SLACK`` of its size or one grid cell); without it, the grid's shorter extent (the
    largest square).
    The square is placed as near the box's (or the grid's) centre as it can be while staying
    inside the grid and covering the box and every probe; ExaHyPE writes a probe only from the
    cell that holds it, so a probe must lie in ``[x0, x0 + side)`` (and likewise in y). Where
    the grid allows, probes are kept ``PROBE_MARGIN`` of the side away from the domain's edges
    (the application's boundaries are walls); otherwise as far inside as they can be.
    Raises :class:`RegionError`, naming the probe, when no square covers them all.
    """
    gx0, gx1, gy0, gy1 = _grid_box_km(grid)
    labels = list(probe_labels) or [f"{px:.3f},{py:.3f} km" for px, py in probes_km]
    for (px, py), label in zip(probes_km, labels, strict=True):
        if not (gx0 <= px <= gx1 and gy0 <= py <= gy1):
            raise RegionError(f"probe {label} lies outside the bathymetry grid")
    tol = 1e-9 * max(gx1 - gx0, gy1 - gy0)
    grid_side = min(gx1 - gx0, gy1 - gy0)
    if domain is None:
        side = grid_side
        box = None
    else:
        bx0, bx1, by0, by1 = _box_km(domain, grid)
        # the local grid is the box inscribed in the projected footprint of a geographic grid,
        # so a box drawn at the grid's own edges pokes out a little: clip that much
        slack = max(float(grid.attrs.get("spacing_m", 0.0)) / 1e3, BOX_SLACK * (bx1 - bx0))
        slack = max(slack, BOX_SLACK * (by1 - by0))
        over = max(gx0 - bx0, bx1 - gx1, gy0 - by0, by1 - gy1)
        if over > slack + tol:
            raise RegionError(
                f"domain {_label(domain[:2])},{_label(domain[2:])} reaches {over:.1f} km "
                f"outside the bathymetry grid; choose a box inside it"
            )
        box = (max(bx0, gx0), min(bx1, gx1), max(by0, gy0), min(by1, gy1))
        side = max(box[1] - box[0], box[3] - box[2])
        if side > grid_side + tol:
            raise RegionError(
                f"domain {_label(domain[:2])},{_label(domain[2:])} needs a {side:.1f} km square "
                f"but the bathymetry grid is {gx1 - gx0:.1f} x {gy1 - gy0:.1f} km"
            )
        side = min(side, grid_side)
    offset = []
    for axis, (lo, hi) in enumerate(((gx0, gx1), (gy0, gy1))):
        a, b = lo, max(hi - side, lo)  # offsets that keep the square inside the grid
        a_by = b_by = None  # the probe that set each bound (for the error message)
        if box is None:
            centre = (lo + hi) / 2.0
        else:
            blo, bhi = box[2 * axis], box[2 * axis + 1]
            a, b = max(a, bhi - side), min(b, blo)
            centre = (blo + bhi) / 2.0
            b = max(b, a) if b > a - tol else b
        for p, label in zip(probes_km, labels, strict=True):
            v = p[axis]
            if v - side + tol > a:
                a, a_by = v - side + tol, label
            if v < b:
                b, b_by = v, label
            if a > b:
                other = b_by if a_by == label else a_by
                if box is not None:
                    raise RegionError(
                        f"probe {label} lies outside the ExaHyPE domain (a {side:.1f} km square "
                        "covering --domain); widen --domain or move the probe"
                    )
                if other is None:
                    raise RegionError(f"probe {label} lies on the grid's edge, outside every cell")
                raise RegionError(
                    f"probe {label} cannot share a square ExaHyPE domain ({side:.1f} km, the "
                    f"grid's shorter side) with probe {other}; pass --domain or drop a probe"
                )
        o = float(np.clip(centre - side / 2.0, a, b))
        if probes_km:  # keep probes off the walls: PROBE_MARGIN of the side, or the most there is
            vmin, vmax = min(p[axis] for p in probes_km), max(p[axis] for p in probes_km)
            m = PROBE_MARGIN * side
            a2, b2 = max(a, vmax - side + m), min(b, vmin - m)
            if a2 <= b2:
                o = float(np.clip(o, a2, b2))
            else:
                o = float(np.clip((vmin + vmax - side) / 2.0, a, b))
        offset.append(o)
    return (offset[0], offset[1]), float(side)


def material_yaml(
    bathy_file: str,
    displ_file: str | None,
    displ_limits: tuple[tuple[float, float], tuple[float, float]] | None,
) -> str:
    """The easi ``data_gmt.yaml`` text (mesh in km → metres; values m → km)."""
    lines = [
        "!AffineMap",
        "matrix:",
        "  x: [1000.0, 0.0, 0.0]",
        "  y: [0.0, 1000.0, 0.0]",
        "translation:",
        "  x: 0.0",
        "  y: 0.0",
        "components:",
        "  !Switch",
        "  [b]:",
        "    !ASAGI",
        f"    file: {bathy_file}",
        "    parameters: [b]",
        "    var: z",
        "    interpolation: linear",
        "    components:",
        "      !AffineMap",
        "      matrix:",
        "        b: [0.001]",
        "      translation:",
        "        b: 0.0",
        "  [d]:",
    ]
    if displ_file is None:
        lines += ["    !ConstantMap", "    map:", "      d: 0.0"]
    else:
        if displ_limits is None:
            raise ConfigError("a displacement file needs its limits")
        (x0, x1), (y0, y1) = displ_limits
        lines += [
            "    !Any",
            "    components:",
            "      - !AxisAlignedCuboidalDomainFilter",
            "        limits:",
            f"          x: [{x0!r}, {x1!r}]",
            f"          y: [{y0!r}, {y1!r}]",
            "        components:",
            "          !ASAGI",
            f"          file: {displ_file}",
            "          parameters: [d]",
            "          var: z",
            "          interpolation: linear",
            "          components:",
            "            !AffineMap",
            "            matrix:",
            "              d: [0.001]",
            "            translation:",
            "              d: 0.0",
            "      - !ConstantMap",
            "        map:",
            "          d: 0.0",
        ]
    return "\n".join(lines) + "\n"


def spec_json(
    cfg: ExahypeConfig,
    offset_km: tuple[float, float],
    width_km: float,
    probes_km: list[tuple[float, float]],
    mesh_size_km: float | None = None,
) -> dict:
    """The ExaHyPE 1 specification (``.exahype2`` JSON) as a dict.

    ``mesh_size_km`` defaults to :func:`mesh_size_for` the cell count chosen for
    ``cfg.mesh_cells``. ``output_directory`` is the ``SWE_asagi_limited_l1`` application, so
    the toolkit adds this spec's probe writers there and keeps its solver code.
    """
    if mesh_size_km is None:
        mesh_size_km = mesh_size_for(width_km, mesh_cells_for(cfg.mesh_cells))
    plotters = [
        {
            "type": "probe::ascii",
            "name": f"ProbeWriter{i}",
            "time": 0.0,
            "repeat": float(cfg.probe_every),
            "output": f"./Probes/probe{i}",
            "variables": 4,
            "select": {"x": float(px), "y": float(py)},
        }
        for i, (px, py) in enumerate(probes_km)
    ]
    return {
        "project_name": "SWE",
        "paths": {
            "peano_kernel_path": "Peano",
            "exahype_path": "ExaHyPE",
            "output_directory": f"ApplicationExamples/SWE/{APP_NAME}",
            "log_file": "mylogfile.log",
        },
        "architecture": "noarch",
        "computational_domain": {
            "dimension": 2,
            "end_time": float(cfg.end_time),
            "offset": [float(offset_km[0]), float(offset_km[1])],
            "width": [float(width_km), float(width_km)],
        },
        "shared_memory": {
            "cores": 2,
            "properties_file": "sharedmemory.properties",
            "autotuning_strategy": "dummy",
            "background_job_consumers": 1,
        },
        "solvers": [
            {
                "type": "Limiting-ADER-DG",
                "name": "MySWESolver",
                "order": int(cfg.order),
                # just above width/cells: ExaHyPE builds exactly that many cells per side
                "maximum_mesh_size": float(mesh_size_km),
                "maximum_mesh_depth": 0,
                "time_stepping": "globalfixed",
                "aderdg_kernel": {
                    "language": "C",
                    "nonlinear": True,
                    "terms": ["flux", "ncp"],
                    "space_time_predictor": {},
                    "optimised_terms": [],
                    "optimised_kernel_debugging": [],
                    "implementation": "generic",
                },
                "point_sources": 0,
                "limiter": {
                    "dmp_observables": 1,
                    "dmp_relaxation_parameter": 10000.0,
                    "dmp_difference_scaling": 10000.0,
                    "implementation": "generic",
                },
                "fv_kernel": {
                    "language": "C",
                    "terms": ["flux"],
                    "scheme": "godunov",
                    "implementation": "generic",
                },
                "variables": [{"name": n, "multiplicity": 1} for n in ("h", "hu", "hv", "b")],
                "plotters": plotters,
            }
        ],
    }


def _yaml_tolerant_load(text: str):
    """Parse easi YAML, turning its ``!Tag`` nodes into plain mappings/lists."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _mapping(loader, node, tag=None):
        out: dict[Any, Any] = {} if tag is None else {"__tag__": tag}
        for k, v in node.value:
            key = loader.construct_object(k, deep=True)
            out[tuple(key) if isinstance(key, list) else key] = loader.construct_object(
                v, deep=True
            )
        return out

    def _any_tag(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return _mapping(loader, node, suffix)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    _Loader.add_multi_constructor("!", _any_tag)
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass


def _asagi_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        if node.get("__tag__") == "ASAGI":
            found.append(node["file"])
        for v in node.values():
            found += _asagi_files(v)
    elif isinstance(node, list):
        for v in node:
            found += _asagi_files(v)
    return found


def check_export(out_dir: str | os.PathLike) -> dict:
    """Validate an ExaHyPE folder: NetCDF layouts, YAML/JSON parse, referenced files exist."""
    d = Path(out_dir)
    material = _yaml_tolerant_load((d / "data_gmt.yaml").read_text())
    files = _asagi_files(material)
    if not files:
        raise InputError(f"{d / 'data_gmt.yaml'} names no ASAGI file")
    grids = {}
    for f in files:
        if not (d / f).is_file():
            raise InputError(f"data_gmt.yaml names {f}, which is not in {d}")
        grids[f] = check_asagi(d / f)
    spec = json.loads((d / SPEC_NAME).read_text())
    inputs = (d / "inputs.txt").read_text().split()
    if len(inputs) != 2:
        raise InputError("inputs.txt must hold two numbers")
    dom = spec["computational_domain"]
    bx = grids[files[0]]
    (ox, oy), (wx, wy) = dom["offset"], dom["width"]
    if (
        ox * 1000 < bx["x"][0] - 1e-6
        or (ox + wx) * 1000 > bx["x"][1] + 1e-6
        or oy * 1000 < bx["y"][0] - 1e-6
        or (oy + wy) * 1000 > bx["y"][1] + 1e-6
    ):
        raise InputError("the bathymetry does not cover the computational domain")
    for e2 in ("bath.nc", "displ.nc"):
        if (d / "exahype2" / e2).exists():
            check_asagi(d / "exahype2" / e2)
    return {"grids": grids, "spec": spec, "material_files": files}


def _readme(
    cfg: ExahypeConfig,
    offset_km,
    width_km,
    probes_km,
    has_displ: bool,
    e2: dict,
    mesh: dict,
    spec: dict,
) -> str:
    probes = (
        "\n".join(f"| probe{i} | {px:.3f} | {py:.3f} |" for i, (px, py) in enumerate(probes_km))
        or "| (none) | | |"
    )
    src = (
        "`displacement.nc` holds the initial sea-floor uplift `d`."
        if has_displ
        else "No source was given: `d` is 0 everywhere; add one with `--displacement` or "
        "`--okada`, or edit `data_gmt.yaml`."
    )
    grids = "`bathymetry.nc`" + (", `displacement.nc`" if has_displ else "")
    n, asked = mesh["cells"], mesh["requested_cells"]
    why = "as asked" if n == asked else f"asked for {asked}: the nearest count not below it"
    cores = spec["shared_memory"]["cores"]
    app = f"ApplicationExamples/SWE/{APP_NAME}"
    return f"""# ExaHyPE input written by topoae {__version__}

Shallow-water (h, hu, hv, b) tsunami setup. Grids are ASAGI NetCDF (`NETCDF3_CLASSIC`,
`z(y, x)` float metres, `x`/`y` double metres of a local projection, no fill value, no NaN).
{src}

## ExaHyPE 1: application `{APP_NAME}` (Limiting-ADER-DG, `{SPEC_NAME}`)
The spec is for ExaHyPE-Tsunami's `{app}`: its `InitialData` reads `data_gmt.yaml`
through easi/ASAGI, it works in km and s (g = 9.81e-3 km/s^2) and it reads the two source-offset
parameters (km, here `0 0`) from `$SHARED_DIR/inputs.txt`.

Domain `[{offset_km[0]:.3f}, {offset_km[0] + width_km:.3f}] x [{offset_km[1]:.3f}, \
{offset_km[1] + width_km:.3f}]` km: **{n} x {n} coarsest cells** of {mesh["cell_km"]:.3f} km ({why}),
order {cfg.order}, end time {cfg.end_time:g} s. ExaHyPE puts one extra cell outside each side of the
domain, so it can only build 3^k - 2 cells per side (1, 7, 25, 79, 241, ...);
`maximum_mesh_size` {mesh["maximum_mesh_size_km"]!r} km makes it build exactly {n}.

1. Copy `{SPEC_NAME}` into `ApplicationExamples/SWE/` and run
   `./Toolkit/toolkit.sh ApplicationExamples/SWE/{SPEC_NAME}` from the ExaHyPE root. Its
   `output_directory` is `{app}`: the toolkit adds one probe writer per probe
   (`ProbeWriter0`, ...; by default they write h, hu, hv, b) and regenerates the glue code; it does
   not overwrite the application's solver files.
2. Build in `{app}`: `export COMPILER=GNU PROJECT_CFLAGS=-DUSE_ASAGI`, then `make`.
   **TBB**: the spec's `shared_memory` block makes the generated Makefile default to
   `SHAREDMEM=TBB` (set `TBB_INC` and `TBB_SHLIB` to TBB's include flag and library). To build
   without TBB, run `make SHAREDMEM=None` (or `export SHAREDMEM=None` first): the block is then not
   used and the run is single-threaded. The block is kept so that a TBB build runs on {cores}
   threads; delete it from the spec and rerun the toolkit to make a serial build the default.
3. Copy `data_gmt.yaml`, {grids} and `inputs.txt` into the run folder (the application folder):
   `data_gmt.yaml` and the grids it names are opened relative to it.
4. In the run folder, create the probe folder (`mkdir Probes`): ExaHyPE drops probe output
   silently when it is missing. Set `SHARED_DIR` to the folder holding `inputs.txt`, with a
   trailing `/` (the application reads `$SHARED_DIR` + `inputs.txt`; unset, `/tmp/inputs.txt`):

   ```sh
   mkdir -p Probes
   export SHARED_DIR="$PWD/"
   ./ExaHyPE-SWE ../{SPEC_NAME}
   ```

Probes write `h, hu, hv, b` (km, km^2/s) at the first time step at or after each multiple of
{cfg.probe_every:g} s, so the times differ from run to run. A non-MPI build writes
`Probes/probeN.probe`; an MPI build `Probes/probeN-rank-0.probe` (`-rank-R` from the rank that
holds the probe). Columns: `plot-time, real-time, Q0..Q3` (h, hu, hv, b), 6 significant digits.
Sea-surface height in metres is `(h + b) * 1000`, which steps in 1 cm at 6 km depth.
`topoae.simulation.gauges.read_exahype_probe` reads a file; `resample_exahype_probes` puts the
probes of several runs on one time axis.

Check the application's `MySWESolver_ADERDG.cpp`: some versions hard-code the Tohoku setup (the
domain edges -499 / -949 km and width 1798 km in `isPhysicallyAdmissible`, the range of accepted
source offsets); they must match this domain.

| probe | x (km) | y (km) |
|---|---|---|
{probes}

## ExaHyPE 2 (`exahype2/`)
`bath.nc` (and `displ.nc` with a source) are the same grids for the shallow-water `TopologyParser`
(variable `z`, coordinates `x`, `y`). It maps the domain `[0, width]` onto the grids' coordinate
range, so use offset `[0, 0]` and width `[{e2["width_m"][0]:.1f}, {e2["width_m"][1]:.1f}]` m; end time {cfg.end_time:g} s
(see `exahype2/domain.json`, which also gives the probes in that frame).
"""


def export_exahype(
    bathymetry: xr.DataArray,
    out_dir: str | os.PathLike,
    *,
    config: ExahypeConfig | None = None,
    displacement: xr.DataArray | None = None,
    okada: OkadaSource | None = None,
    provenance: dict | None = None,
    overwrite: bool = False,
) -> ExahypeExport:
    """Write ExaHyPE 1 and 2 input files for ``bathymetry`` into ``out_dir`` (atomically).

    Parameters
    ----------
    bathymetry
        Canonical grid from :func:`topoae.io.open_grid` (metres, positive up; NaN is filled
        with the nearest value).
    out_dir
        Output folder; must not exist unless ``overwrite``.
    config
        :class:`ExahypeConfig` (end time, probes, origin, spacing, mesh cells, domain).
    displacement
        Optional sea-floor displacement grid: geographic; or projected, in a projected
        bathymetry's frame or, on a geographic one, reprojected from the CRS it carries
        (see :func:`~topoae.simulation.sources.align_displacement`).
    okada
        Optional :class:`~topoae.simulation.sources.OkadaSource`, evaluated on the bathymetry cells.
    provenance
        Extra facts recorded in ``topoae.json`` (e.g. the input file, the model id).
    """
    cfg = config or ExahypeConfig()
    if displacement is not None and okada is not None:
        raise ConfigError("give either a displacement grid or Okada faults, not both")
    if displacement is not None:
        displacement = align_displacement(displacement, bathymetry)
        check_displacement(displacement, bathymetry, wrap_lon=True)
    bathy = to_local_grid(
        bathymetry, origin=cfg.origin, spacing=cfg.spacing, max_cells=cfg.max_cells
    )
    if float(bathy.min()) >= 0:
        raise RegionError("the bathymetry has no cell below sea level")
    displ = None
    if displacement is not None:
        displ = _displacement_grid(displacement, bathy)
    elif okada is not None:
        displ = source_on_grid(okada, bathy)
    probes_m = local_points(cfg.probes, bathy)
    probes_km = [(x / 1000.0, y / 1000.0) for x, y in probes_m]
    offset_km, width_km = choose_domain(
        bathy, probes_km, [_label(p) for p in cfg.probes], domain=cfg.domain
    )
    cells = mesh_cells_for(cfg.mesh_cells)
    mesh_size_km = mesh_size_for(width_km, cells)
    mesh = {
        "requested_cells": int(cfg.mesh_cells),
        "cells": cells,
        "cell_km": width_km / cells,
        "maximum_mesh_size_km": mesh_size_km,
    }
    x, y = bathy["x"].values, bathy["y"].values
    e2 = {
        "offset_m": [0.0, 0.0],
        "width_m": [float(x[-1] - x[0]), float(y[-1] - y[0])],
        "end_time": float(cfg.end_time),
        "probes_m": [[px - float(x[0]), py - float(y[0])] for px, py in probes_m],
        "files": {
            "bathymetry": "bath.nc",
            "displacement": "displ.nc" if displ is not None else None,
        },
    }
    record = {
        "topoae_version": __version__,
        "config": asdict(cfg),
        "origin": {k: v for k, v in bathy.attrs.items() if k.startswith("origin")},
        "projection": bathy.attrs.get("projection"),
        "spacing_m": bathy.attrs.get("spacing_m"),
        "filled_cells": bathy.attrs.get("filled_cells"),
        "source": bathymetry.attrs.get("source"),
        "okada": okada.describe() if okada is not None else None,
        "exahype_domain": {
            "offset_km": list(offset_km),
            "width_km": width_km,
            "probes_km": [list(p) for p in probes_km],
            **mesh,
        },
        "provenance": provenance or {},
    }
    nc_attrs = {
        "history": f"written by topoae {__version__} (topoae export exahype)",
        "topoae": json.dumps(record, default=str),
    }
    out = Path(out_dir)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        write_asagi(tmp / "bathymetry.nc", bathy, title="bathymetry", attrs=nc_attrs)
        limits = None
        if displ is not None:
            write_asagi(tmp / "displacement.nc", displ, title="displacement", attrs=nc_attrs)
            dx, dy = displ["x"].values, displ["y"].values
            limits = ((float(dx[0]), float(dx[-1])), (float(dy[0]), float(dy[-1])))
        (tmp / "data_gmt.yaml").write_text(
            material_yaml("bathymetry.nc", "displacement.nc" if displ is not None else None, limits)
        )
        (tmp / "inputs.txt").write_text("0\n0\n")
        spec = spec_json(cfg, offset_km, width_km, probes_km, mesh_size_km)
        (tmp / SPEC_NAME).write_text(json.dumps(spec, indent=2) + "\n")
        (tmp / "exahype2").mkdir()
        shutil.copyfile(tmp / "bathymetry.nc", tmp / "exahype2" / "bath.nc")
        if displ is not None:
            shutil.copyfile(tmp / "displacement.nc", tmp / "exahype2" / "displ.nc")
        (tmp / "exahype2" / "domain.json").write_text(json.dumps(e2, indent=2) + "\n")
        (tmp / "README.md").write_text(
            _readme(cfg, offset_km, width_km, probes_km, displ is not None, e2, mesh, spec)
        )
        (tmp / "topoae.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        check_export(tmp)
    files = {str(p.relative_to(out)): p for p in sorted(out.rglob("*")) if p.is_file()}
    return ExahypeExport(
        out_dir=out,
        files=files,
        domain_offset_km=offset_km,
        domain_width_km=(width_km, width_km),
        probes_km=tuple(probes_km),
        mesh_cells=cells,
        requested_cells=int(cfg.mesh_cells),
        mesh_size_km=mesh_size_km,
        cell_km=width_km / cells,
    )
