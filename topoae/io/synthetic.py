"""Deterministic GEBCO-like synthetic grids for tests, CI, demos and benchmarks.

The terrain is built from analytic large-scale structure (a land mass with
relief, a wavy coastline, continental shelf and slope, an abyssal plain, a
trench, seamounts) plus multi-scale fractal roughness from seeded lattice
("value") noise. Every cell depends only on its (row, col) and the seed, so
any band of rows can be generated on its own: grids of any size are written
in bands with bounded memory, and a band equals the same rows of a full grid.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic GEBCO-like grid (saved in the file's attributes)."""

    rows: int
    cols: int
    seed: int = 0
    resolution_deg: float = 15.0 / 3600.0  # GEBCO 15 arc-seconds
    lon0: float = -30.0  # west edge
    lat0: float = -40.0  # south edge
    roughness_hurst: float = 0.8
    n_seamounts: int = 6


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Uniform values in [-1, 1) from integer lattice indices (splitmix64 mixing)."""
    with np.errstate(over="ignore"):
        x = (
            i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ j.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        ) & _M64
        x ^= x >> np.uint64(30)
        x = (x * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        x ^= x >> np.uint64(27)
        x = (x * np.uint64(0x94D049BB133111EB)) & _M64
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 52) - 1.0


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def value_noise(rows: np.ndarray, cols: np.ndarray, spacing: float, salt: int) -> np.ndarray:
    """Smooth lattice noise in [-1, 1] at cell positions ``rows`` × ``cols`` (1-D arrays)."""
    y = rows / spacing
    x = cols / spacing
    j0 = np.floor(y).astype(np.int64)
    i0 = np.floor(x).astype(np.int64)
    fy = _smooth(y - j0)[:, None]
    fx = _smooth(x - i0)[None, :]
    jl = np.arange(j0.min(), j0.max() + 2)
    il = np.arange(i0.min(), i0.max() + 2)
    lattice = _hash(il[None, :], jl[:, None], salt)  # (nj, ni), small
    # separable interpolation: along x on the lattice rows, then along y
    ci = i0 - il[0]
    along_x = lattice[:, ci] * (1 - fx) + lattice[:, ci + 1] * fx  # (nj, ncols)
    cj = j0 - jl[0]
    return along_x[cj] * (1 - fy) + along_x[cj + 1] * fy


def fractal_noise(
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    largest: float,
    hurst: float,
    salt: int,
    smallest: float = 2.0,
) -> np.ndarray:
    """Sum of octaves of value noise from ``largest`` down to ``smallest`` cells.

    Octave amplitudes scale as spacing**hurst (fBm-like); result normalised to ~unit std.
    """
    out = np.zeros((rows.size, cols.size))
    spacing, total, k = float(largest), 0.0, 0
    while spacing >= smallest:
        amp = (spacing / largest) ** hurst
        out += amp * value_noise(rows, cols, spacing, salt * 1009 + k)
        total += amp * amp
        spacing /= 2.0
        k += 1
    return out / max(np.sqrt(total) * 0.35, 1e-12)


def synthetic_block(cfg: SyntheticConfig, row0: int, row1: int) -> np.ndarray:
    """Elevation in metres (float32) of rows ``row0:row1`` (south to north) of the grid."""
    rows = np.arange(row0, row1, dtype=np.float64)
    cols = np.arange(cfg.cols, dtype=np.float64)
    scale = float(max(cfg.rows, cfg.cols))
    u = cols[None, :] / scale  # fractional position, same scale on both axes
    v = rows[:, None] / scale
    rng = np.random.default_rng(cfg.seed)
    s = cfg.seed

    # Coastline: a wavy north-south line; distance offshore (fraction of the domain).
    wiggle = 0.06 * fractal_noise(
        rows, np.zeros(1), largest=scale / 2, hurst=0.9, salt=s + 1, smallest=8
    )
    coast_u = 0.32 + wiggle + 0.04 * np.sin(2 * np.pi * v * 1.3 + rng.uniform(0, 6.3))
    d = u - coast_u
    width = cfg.cols / scale

    land = 80.0 + 2600.0 * (1.0 - np.exp(d / (0.12 * width)))  # rises inland
    shelf_edge, slope_w = 0.07 * width, 0.06 * width
    shelf = -140.0 * np.clip(d / shelf_edge, 0, 1)
    slope = -3700.0 * 0.5 * (1 + np.tanh((d - shelf_edge - slope_w / 2) / (slope_w / 4)))
    abyss = -600.0 * np.clip((d - 0.2 * width) / (0.6 * width), 0, 1)
    sea = shelf + slope + abyss

    # Trench: a curved trough parallel to the coast, far offshore.
    trench_u = coast_u + 0.45 * width + 0.03 * np.sin(2 * np.pi * v * 0.8)
    trench = -4500.0 * np.exp(-(((u - trench_u) / (0.025 * width)) ** 2))
    outer_rise = 300.0 * np.exp(-(((u - trench_u - 0.06 * width) / (0.03 * width)) ** 2))
    sea = sea + np.where(d > 0, trench + outer_rise, 0.0)

    # Seamounts on the plain.
    mounts = np.zeros_like(d)
    for _ in range(cfg.n_seamounts):
        cu = rng.uniform(0.55, 0.95) * width
        cv = rng.uniform(0.05, 0.95) * cfg.rows / scale
        r = rng.uniform(0.01, 0.03)
        h = rng.uniform(1200.0, 3500.0)
        mounts += h * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * r * r))
    sea = sea + mounts * (d > 0.1 * width)

    rough = fractal_noise(rows, cols, largest=scale / 4, hurst=cfg.roughness_hurst, salt=s + 2)
    hills = fractal_noise(rows, cols, largest=scale / 32, hurst=0.6, salt=s + 3)
    blend = 0.5 * (1 + np.tanh(-d / (0.01 * width)))  # 1 on land, 0 at sea, smooth coastline
    seafloor = sea + np.where(d < shelf_edge, 25.0, 120.0) * hills + 40.0 * rough
    z = blend * (land + 450.0 * rough) + (1 - blend) * seafloor
    return np.clip(z, -10500, 8000).astype(np.float32)


def synthetic_grid(rows: int, cols: int, *, seed: int = 0, **kw) -> xr.DataArray:
    """A synthetic elevation grid in memory, as a canonical (lat, lon) float32 DataArray."""
    cfg = SyntheticConfig(rows=rows, cols=cols, seed=seed, **kw)
    z = synthetic_block(cfg, 0, rows)
    lat, lon = _coords(cfg)
    return xr.DataArray(
        z,
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        name="elevation",
        attrs={"units": "m", "synthetic": 1, **_cfg_attrs(cfg)},
    )


def _coords(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    d = cfg.resolution_deg
    lat = cfg.lat0 + d * (np.arange(cfg.rows) + 0.5)
    lon = cfg.lon0 + d * (np.arange(cfg.cols) + 0.5)
    return lat, lon


def _cfg_attrs(cfg: SyntheticConfig) -> dict:
    return {f"synthetic_{k}": v for k, v in asdict(cfg).items()}


def write_synthetic_gebco(
    path: str | os.PathLike,
    rows: int,
    cols: int,
    *,
    seed: int = 0,
    band_rows: int = 512,
    overwrite: bool = False,
    **kw,
) -> Path:
    """Write a GEBCO-format NetCDF (``elevation(lat, lon)`` int16, CF-1.6) in row bands.

    Memory stays bounded by ``band_rows × cols`` whatever the grid size. Returns the path.
    """
    import netCDF4

    cfg = SyntheticConfig(rows=rows, cols=cols, seed=seed, **kw)
    lat, lon = _coords(cfg)
    with (
        atomic_path(path, overwrite=overwrite) as tmp,
        netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc,
    ):
        nc.Conventions = "CF-1.6"
        nc.title = "Synthetic GEBCO-like grid (topoae)"
        nc.institution = "topoae"
        nc.source = "topoae.io.synthetic: seeded analytic structure + fractal value noise"
        nc.comment = "Not real data. Structure: land, coastline, shelf, slope, abyssal plain, trench, seamounts."
        for k, v in _cfg_attrs(cfg).items():
            setattr(nc, k, v)
        nc.createDimension("lat", rows)
        nc.createDimension("lon", cols)
        vlat = nc.createVariable("lat", "f8", ("lat",))
        vlat.standard_name, vlat.long_name, vlat.units, vlat.axis = (
            "latitude",
            "latitude",
            "degrees_north",
            "Y",
        )
        vlon = nc.createVariable("lon", "f8", ("lon",))
        vlon.standard_name, vlon.long_name, vlon.units, vlon.axis = (
            "longitude",
            "longitude",
            "degrees_east",
            "X",
        )
        vlat[:] = lat
        vlon[:] = lon
        chunk = (min(rows, 256), min(cols, 256))
        ve = nc.createVariable(
            "elevation", "i2", ("lat", "lon"), zlib=True, complevel=1, chunksizes=chunk
        )
        ve.standard_name = "height_above_mean_sea_level"
        ve.long_name = "Elevation relative to sea level"
        ve.units = "m"
        for r0 in range(0, rows, band_rows):
            r1 = min(rows, r0 + band_rows)
            ve[r0:r1, :] = np.round(synthetic_block(cfg, r0, r1)).astype(np.int16)
    return Path(path)
