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
  (variables h, hu, hv, b), domain offset/width in km (the largest square inside the
  bathymetry: Peano's grid is a square), end time, one ``probe::ascii`` plotter per probe.
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

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae._version import __version__
from topoae.errors import ConfigError, InputError, RegionError
from topoae.simulation.asagi import check_asagi, write_asagi
from topoae.simulation.projection import is_geographic, local_points, to_local_grid
from topoae.simulation.sources import OkadaSource, check_displacement, source_on_grid

SPEC_NAME = "SWE_topoae.exahype2"


@dataclass(frozen=True)
class ExahypeConfig:
    """How to build the ExaHyPE input (saved into ``topoae.json`` and the NetCDF attributes).

    ``probes`` are ``(lon, lat)`` for geographic grids or ``(x, y)`` in the grid's metres;
    ``origin`` likewise (default: grid centre). ``spacing`` (m) and ``max_cells`` control the
    resampled bathymetry; ``mesh_cells`` is the number of coarsest ExaHyPE cells across the
    domain (a power of 3).
    """

    end_time: float = 7500.0
    probe_every: float = 5.0
    probes: tuple[tuple[float, float], ...] = ()
    origin: tuple[float, float] | None = None
    spacing: float | None = None
    max_cells: int | None = None
    order: int = 2
    mesh_cells: int = 27

    def __post_init__(self) -> None:
        if not self.end_time > 0 or not self.probe_every > 0:
            raise ConfigError("end time and probe interval must be > 0 s")
        k = np.log(self.mesh_cells) / np.log(3.0) if self.mesh_cells > 0 else -1
        if self.mesh_cells < 3 or abs(k - round(k)) > 1e-9:
            raise ConfigError(
                f"mesh_cells must be a power of 3 (3, 9, 27, 81, ...), got {self.mesh_cells}"
            )
        if not 1 <= self.order <= 9:
            raise ConfigError(f"ADER-DG order must be in 1..9, got {self.order}")


@dataclass(frozen=True)
class ExahypeExport:
    """What :func:`export_exahype` wrote."""

    out_dir: Path
    files: dict[str, Path]
    domain_offset_km: tuple[float, float]
    domain_width_km: tuple[float, float]
    probes_km: tuple[tuple[float, float], ...] = field(default_factory=tuple)


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


def _square_domain(grid: xr.DataArray) -> tuple[tuple[float, float], float]:
    """Largest square (offset, side) in km inside the grid's sample extent."""
    x, y = grid["x"].values, grid["y"].values
    side = float(min(x[-1] - x[0], y[-1] - y[0]))
    cx, cy = (x[0] + x[-1]) / 2.0, (y[0] + y[-1]) / 2.0
    return (float(cx - side / 2.0) / 1000.0, float(cy - side / 2.0) / 1000.0), side / 1000.0


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
) -> dict:
    """The ExaHyPE 1 specification (``.exahype2`` JSON) as a dict."""
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
            "output_directory": "ApplicationExamples/SWE/SWE_topoae",
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
                # slightly above width/cells so Peano picks exactly `mesh_cells` cells per side
                "maximum_mesh_size": float(width_km / cfg.mesh_cells * 1.001),
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
        out = {} if tag is None else {"__tag__": tag}
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


def _readme(cfg: ExahypeConfig, offset_km, width_km, probes_km, has_displ: bool, e2: dict) -> str:
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
    return f"""# ExaHyPE input written by topoae {__version__}

Shallow-water (h, hu, hv, b) tsunami setup. Grids are ASAGI NetCDF (`NETCDF3_CLASSIC`,
`z(y, x)` float metres, `x`/`y` double metres of a local projection, no fill value, no NaN).
{src}

## ExaHyPE 1 (Limiting-ADER-DG, `{SPEC_NAME}`)
1. Copy this folder's files next to the application (e.g. `ApplicationExamples/SWE/SWE_topoae/`),
   whose `InitialData` reads `data_gmt.yaml` through easi/ASAGI and `inputs.txt` (source offset
   in km, here `0 0`).
2. `./Toolkit/toolkit.sh ApplicationExamples/SWE/{SPEC_NAME}`, then `make` in the application folder.
3. Run `./ExaHyPE-SWE ../{SPEC_NAME}` from the folder holding `data_gmt.yaml` and the `.nc` files.

The solver works in km: the mesh is `[{offset_km[0]:.3f}, {offset_km[0] + width_km:.3f}] x
[{offset_km[1]:.3f}, {offset_km[1] + width_km:.3f}]` km ({cfg.mesh_cells} cells per side, order
{cfg.order}), end time {cfg.end_time:g} s. Probes write `h, hu, hv, b` every {cfg.probe_every:g} s
to `./Probes/probeN-rank-0.probe`; sea-surface height in metres is `(h + b) * 1000`
(`topoae.simulation.gauges.read_exahype_probe` reads them).

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
        :class:`ExahypeConfig` (end time, probes, origin, spacing, mesh).
    displacement
        Optional sea-floor displacement grid (geographic, or projected in the same frame).
    okada
        Optional :class:`~topoae.simulation.sources.OkadaSource`, evaluated on the bathymetry cells.
    provenance
        Extra facts recorded in ``topoae.json`` (e.g. the input file, the model id).
    """
    cfg = config or ExahypeConfig()
    if displacement is not None and okada is not None:
        raise ConfigError("give either a displacement grid or Okada faults, not both")
    if displacement is not None:
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
    offset_km, width_km = _square_domain(bathy)
    probes_m = local_points(cfg.probes, bathy)
    probes_km = [(x / 1000.0, y / 1000.0) for x, y in probes_m]
    for (px, py), raw in zip(probes_km, cfg.probes, strict=True):
        if not (
            offset_km[0] <= px <= offset_km[0] + width_km
            and offset_km[1] <= py <= offset_km[1] + width_km
        ):
            raise RegionError(f"probe {raw[0]},{raw[1]} lies outside the ExaHyPE domain")
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
        (tmp / SPEC_NAME).write_text(
            json.dumps(spec_json(cfg, offset_km, width_km, probes_km), indent=2) + "\n"
        )
        (tmp / "exahype2").mkdir()
        shutil.copyfile(tmp / "bathymetry.nc", tmp / "exahype2" / "bath.nc")
        if displ is not None:
            shutil.copyfile(tmp / "displacement.nc", tmp / "exahype2" / "displ.nc")
        (tmp / "exahype2" / "domain.json").write_text(json.dumps(e2, indent=2) + "\n")
        (tmp / "README.md").write_text(
            _readme(cfg, offset_km, width_km, probes_km, displ is not None, e2)
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
    )
