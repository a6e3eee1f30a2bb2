"""Initial sea-surface displacements: a Gaussian hump and Okada (1985) faults.

Both return the vertical displacement in metres on the cells of a local metric
grid (see :mod:`topoae.simulation.projection`); the tsunami starts from that
sea-surface shape at rest (the usual instantaneous-rupture assumption).

The Okada solution is the closed-form surface displacement of a rectangular
dislocation in an elastic half-space (Okada 1985, BSSA 75(4), eqs. 25–30, with
Chinnery's notation for the four corners). It is checked against the paper's
own test values in ``tests/test_simulate.py``.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import xarray as xr

from topoae.errors import ConfigError, InputError, RegionError
from topoae.simulation.projection import LocalProjection, grid_crs, is_geographic, to_geographic

#: Largest plausible vertical sea-floor displacement (m); larger values are not a source.
MAX_DISPLACEMENT = 100.0


@dataclass(frozen=True)
class GaussianSource:
    """A Gaussian hump of sea surface: ``amplitude * exp(-r² / (2 radius²))``.

    ``x``/``y`` are local metres (the grid's origin is 0, 0).
    """

    amplitude: float = 1.0
    radius: float = 20_000.0
    x: float = 0.0
    y: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.amplitude) and np.isfinite(self.radius) and self.radius > 0):
            raise ConfigError("gaussian source needs a finite amplitude and a radius > 0 m")

    def displacement(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Sea-surface displacement (m) at points ``x``, ``y`` (m)."""
        r2 = (np.asarray(x) - self.x) ** 2 + (np.asarray(y) - self.y) ** 2
        return self.amplitude * np.exp(-r2 / (2.0 * self.radius**2))


@dataclass(frozen=True)
class Subfault:
    """One rectangular fault patch.

    ``lon``/``lat`` (degrees) or ``x``/``y`` (local metres) place the reference point,
    which is the patch centroid (``reference="centroid"``) or the middle of its
    shallow edge (``"top_center"``, GeoClaw's default); ``depth`` (m, positive down) is
    that point's depth. ``strike`` is clockwise from north with the fault dipping to
    its right, ``dip`` from horizontal, ``rake`` the slip direction in the fault plane
    (90 = pure thrust); ``length`` along strike, ``width`` down dip, ``slip`` in metres.
    """

    strike: float
    dip: float
    rake: float
    slip: float
    length: float
    width: float
    depth: float
    lon: float | None = None
    lat: float | None = None
    x: float | None = None
    y: float | None = None
    reference: str = "centroid"

    def __post_init__(self) -> None:
        if self.reference not in ("centroid", "top_center"):
            raise ConfigError(
                f"subfault reference must be 'centroid' or 'top_center', not {self.reference!r}"
            )
        if not (0.0 < self.dip <= 90.0):
            raise ConfigError(f"dip must be in (0, 90] degrees, got {self.dip}")
        if self.length <= 0 or self.width <= 0:
            raise ConfigError("subfault length and width must be > 0 m")
        if (self.lon is None) == (self.x is None) or (self.lat is None) == (self.y is None):
            raise ConfigError("give a subfault either lon/lat or x/y")

    def centroid_depth(self) -> float:
        """Depth (m) of the patch centroid."""
        if self.reference == "centroid":
            return float(self.depth)
        return float(self.depth + 0.5 * self.width * np.sin(np.radians(self.dip)))


def load_subfaults(path: str | Path) -> list[Subfault]:
    """Read subfaults from a JSON or YAML file: a list, or ``{"subfaults": [...]}``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"fault file {p} not found")
    text = p.read_text()
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # parse errors of either format
        raise InputError(f"cannot parse fault file {p}: {exc}") from None
    if isinstance(data, dict):
        data = data.get("subfaults", data.get("faults"))
    if not isinstance(data, list) or not data:
        raise InputError(f"fault file {p} holds no list of subfaults")
    names = {f.name for f in fields(Subfault)}
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputError(f"subfault {i} in {p} is not a mapping")
        unknown = set(item) - names
        if unknown:
            raise InputError(f"subfault {i} in {p}: unknown keys {sorted(unknown)}")
        try:
            out.append(Subfault(**item))
        except TypeError as exc:
            raise InputError(f"subfault {i} in {p}: {exc}") from None
    return out


def okada_uz(
    xi: np.ndarray,
    yi: np.ndarray,
    *,
    depth: float,
    dip: float,
    length: float,
    width: float,
    strike_slip: float,
    dip_slip: float,
    mu_over_lambda_mu: float = 0.5,
) -> np.ndarray:
    """Okada (1985) vertical surface displacement in the fault's own frame.

    ``xi`` runs along strike from the deep-edge corner, ``yi`` perpendicular to it
    (positive towards the up-dip side); ``depth`` is the depth of the deep edge; all
    lengths in one unit, displacements in the unit of the slips. ``dip_slip > 0`` is
    thrust (hanging wall up). ``mu_over_lambda_mu`` = μ/(λ+μ), 0.5 for a Poisson solid.
    """
    d = np.radians(dip)
    cd, sd = np.cos(d), np.sin(d)
    vertical = abs(cd) < 1e-10
    if vertical:
        cd, sd = 0.0, 1.0
    xi = np.asarray(xi, dtype=np.float64)
    yi = np.asarray(yi, dtype=np.float64)
    p = yi * cd + depth * sd
    q = yi * sd - depth * cd
    m = mu_over_lambda_mu

    def corner(x: np.ndarray, eta: np.ndarray) -> np.ndarray:
        r = np.sqrt(x**2 + eta**2 + q**2)
        dt = eta * sd - q * cd
        with np.errstate(divide="ignore", invalid="ignore"):
            if vertical:
                i4 = -m * q / (r + dt)
                i5 = -m * x * sd / (r + dt)
            else:
                big_x = np.sqrt(x**2 + q**2)
                i4 = m / cd * (np.log(r + dt) - sd * np.log(r + eta))
                i5 = (
                    m
                    * 2.0
                    / cd
                    * np.arctan(
                        (eta * (big_x + q * cd) + big_x * (r + big_x) * sd) / (x * (r + big_x) * cd)
                    )
                )
                i5 = np.where(x == 0.0, 0.0, i5)
            theta = np.where(q == 0.0, 0.0, np.arctan(x * eta / (q * r)))
            ss = dt * q / (r * (r + eta)) + q * sd / (r + eta) + i4 * sd
            ds = dt * q / (r * (r + x)) + sd * theta - i5 * sd * cd
        return -(strike_slip * ss + dip_slip * ds) / (2.0 * np.pi)

    out = (
        corner(xi, p)
        - corner(xi, p - width)
        - corner(xi - length, p)
        + corner(xi - length, p - width)
    )
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass(frozen=True)
class OkadaSource:
    """Sum of Okada subfaults, evaluated on a local metric grid."""

    subfaults: tuple[Subfault, ...]

    def describe(self) -> list[dict]:
        """Plain-dict form for provenance attributes."""
        return [asdict(s) for s in self.subfaults]

    def displacement(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        origin_lon: float | None = None,
        origin_lat: float | None = None,
    ) -> np.ndarray:
        """Vertical displacement (m) at local points; lon/lat subfaults need the origin."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        total = np.zeros(np.broadcast(x, y).shape)
        for sf in self.subfaults:
            if sf.lon is not None:
                if origin_lon is None or origin_lat is None:
                    raise ConfigError("subfaults given in lon/lat need a geographic grid")
                from topoae.simulation.projection import LocalProjection

                cx, cy = LocalProjection(origin_lon, origin_lat).forward(sf.lon, sf.lat)
                cx, cy = float(cx), float(cy)
            elif sf.x is not None and sf.y is not None:
                cx, cy = float(sf.x), float(sf.y)
            else:
                raise ConfigError("give a subfault either lon/lat or x/y")
            phi, dip = np.radians(sf.strike), np.radians(sf.dip)
            along = np.array([np.sin(phi), np.cos(phi)])  # strike direction (east, north)
            updip = np.array([-np.cos(phi), np.sin(phi)])  # left of strike = up-dip side
            if sf.reference == "top_center":  # move to the centroid, down dip
                cx -= 0.5 * sf.width * np.cos(dip) * updip[0]
                cy -= 0.5 * sf.width * np.cos(dip) * updip[1]
            deep = sf.centroid_depth() + 0.5 * sf.width * np.sin(dip)
            ox = cx - 0.5 * sf.length * along[0] - 0.5 * sf.width * np.cos(dip) * updip[0]
            oy = cy - 0.5 * sf.length * along[1] - 0.5 * sf.width * np.cos(dip) * updip[1]
            if deep - sf.width * np.sin(dip) < -1e-6:
                raise ConfigError("a subfault reaches above the surface; check depth/width/dip")
            rx, ry = x - ox, y - oy
            rake = np.radians(sf.rake)
            total += okada_uz(
                rx * along[0] + ry * along[1],
                rx * updip[0] + ry * updip[1],
                depth=deep,
                dip=sf.dip,
                length=sf.length,
                width=sf.width,
                strike_slip=sf.slip * np.cos(rake),
                dip_slip=sf.slip * np.sin(rake),
            )
        return total


def _extent(da: xr.DataArray) -> dict[Hashable, tuple[float, float]]:
    return {d: (float(da[d].min()), float(da[d].max())) for d in da.dims}


def check_displacement(
    displacement: xr.DataArray, bathymetry: xr.DataArray, *, wrap_lon: bool = False
) -> np.ndarray:
    """The displacement's values (m), refusing one that cannot be a source on ``bathymetry``.

    :class:`RegionError` if it does not overlap the bathymetry (compared in their own
    coordinates, as GeoClaw does, when both are geographic or both x/y) or holds no
    finite value; :class:`InputError` if any value exceeds ±:data:`MAX_DISPLACEMENT` m
    (a bathymetry given as displacement, or a grid not in metres). ``wrap_lon``: the
    caller projects both grids, so longitudes 360° apart are the same place.
    """
    d_ext, b_ext = _extent(displacement), _extent(bathymetry)
    same_frame = is_geographic(displacement) == is_geographic(bathymetry)
    for dd, bd in zip(displacement.dims, bathymetry.dims, strict=True):
        (d0, d1), (b0, b1) = d_ext[dd], b_ext[bd]
        shifts = (-360.0, 0.0, 360.0) if wrap_lon and dd == "lon" else (0.0,)
        if same_frame and all(d1 + k < b0 or d0 + k > b1 for k in shifts):
            raise RegionError(
                f"the displacement grid ({dd} {d0:g} to {d1:g}) does not overlap the "
                f"bathymetry ({bd} {b0:g} to {b1:g})"
            )
    uz = np.asarray(displacement.values, np.float64)
    finite = np.isfinite(uz)
    if not finite.any():
        raise RegionError("the displacement grid holds no finite value")
    peak = float(np.abs(uz[finite]).max())
    if peak > MAX_DISPLACEMENT:
        raise InputError(
            f"the displacement grid reaches {peak:.0f} m; more than {MAX_DISPLACEMENT:g} m of "
            "sea-floor displacement is not plausible (is it a bathymetry, or not in metres?)"
        )
    return uz


def align_displacement(
    displacement: xr.DataArray,
    bathymetry: xr.DataArray,
    *,
    origin: tuple[float, float] | None = None,
) -> xr.DataArray:
    """The displacement in the bathymetry's kind of coordinates (the rule every source path uses).

    A projected (``y, x`` metres) displacement on a geographic bathymetry is put on a
    longitude/latitude grid (:func:`~topoae.simulation.projection.to_geographic`) in its
    frame: a transverse Mercator centred on ``origin`` (lon, lat; :class:`LocalProjection`)
    when given, else the CRS the grid carries; with neither, :class:`ConfigError`, since its
    x/y could be any frame's. Its longitudes then follow the bathymetry's convention
    (0–360 or ±180). Anything else is returned unchanged: a projected bathymetry is taken
    to share a projected displacement's frame, as before. ``origin`` with a geographic
    displacement or a projected bathymetry is a :class:`ConfigError` (it would be ignored).
    """
    if origin is not None and (is_geographic(displacement) or not is_geographic(bathymetry)):
        raise ConfigError(
            "a displacement origin (--displacement-origin) is only for a projected (x/y) "
            "displacement on a geographic bathymetry"
        )
    if is_geographic(displacement) or not is_geographic(bathymetry):
        return displacement
    frame = LocalProjection(*origin) if origin is not None else grid_crs(displacement)
    if frame is None:
        raise ConfigError(
            "the displacement's x/y are projected metres with no CRS and the bathymetry is "
            "geographic: give the frame's origin with --displacement-origin LON,LAT (x/y "
            "in metres of a transverse Mercator centred there) or a displacement with a CRS"
        )
    out = to_geographic(displacement, frame)
    shift = 360.0 * np.round((float(bathymetry["lon"].mean()) - float(out["lon"].mean())) / 360.0)
    if shift:
        out = out.assign_coords(lon=out["lon"].copy(data=out["lon"].values + shift))
    return out


def source_on_grid(source: GaussianSource | OkadaSource, grid: xr.DataArray) -> xr.DataArray:
    """Evaluate a source on the cells of a local grid (:func:`to_local_grid` output)."""
    gx, gy = np.meshgrid(grid["x"].values, grid["y"].values)
    if isinstance(source, OkadaSource):
        z = source.displacement(
            gx, gy, origin_lon=grid.attrs.get("origin_lon"), origin_lat=grid.attrs.get("origin_lat")
        )
    else:
        z = source.displacement(gx, gy)
    out = grid.copy(data=np.asarray(z, np.float64))
    out.name = "z"
    out.attrs = {
        k: v
        for k, v in grid.attrs.items()
        if k.startswith("origin") or k in ("projection", "spacing_m")
    }
    out.attrs.update(units="m", long_name="vertical sea-floor / sea-surface displacement")
    return out


def okada_from_dicts(items: Sequence[dict]) -> OkadaSource:
    """Build an :class:`OkadaSource` from plain dicts (e.g. a parsed JSON list)."""
    return OkadaSource(tuple(Subfault(**d) for d in items))
