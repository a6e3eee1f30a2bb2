"""Files of the codec: latent grids (Zarr or NetCDF), decoded grids and ensembles, sizes.

- :func:`save_latents` / :func:`open_latents`: the latent dataset of
  :func:`topoae.codec.encode`, as Zarr v3 (``.zarr``) or NetCDF-4 (``.nc``), chosen
  by extension, written atomically; :func:`read_meta` checks that a dataset is one.
- :func:`save_grid`: a decoded grid as GEBCO-style NetCDF (``elevation(lat, lon)``,
  int16 or float32) or as a Cloud-Optimised GeoTIFF (``.tif``), by extension.
- :func:`save_ensemble`: the dataset of :func:`topoae.sampling.sample` (NetCDF or Zarr).
- :func:`summary`: honest size accounting (cells, stored values, bytes, both ratios).

Lazy (dask-backed) grids are written block by block, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae.errors import ConfigError, StoreError
from topoae.io.grid import DESCENDING, file_attrs

KIND = "latents"
FORMAT_VERSION = 1
LATENT_SUFFIXES = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf"}
GRID_SUFFIXES = {".nc": "netcdf", ".nc4": "netcdf", ".tif": "cog", ".tiff": "cog"}
GRID_DTYPES = ("int16", "float32")
INT16_FILL = -32768


def read_meta(ds: xr.Dataset) -> dict:
    """The parsed ``attrs["topoae"]`` of a latent dataset; :class:`StoreError` if it is not one."""
    try:
        meta = json.loads(ds.attrs["topoae"])
    except (KeyError, TypeError, ValueError):
        raise StoreError("not a topoae latent file (no 'topoae' attribute)") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise StoreError(
            f"not a topoae latent file (kind {meta.get('kind') if isinstance(meta, dict) else None!r})"
        )
    if meta.get("version") != FORMAT_VERSION:
        raise StoreError(
            f"latent file format version {meta.get('version')} is not supported "
            f"(this topoae reads {FORMAT_VERSION})"
        )
    g = meta["grid"]
    nr, nc = meta["counts"]["patch_rows"], meta["counts"]["patch_cols"]
    packed = [f"grid_{d}" for d in g["dims"] if g["coords"][d]["kind"] == "packed"]
    need = ["mu", "nan_mask", "nan_mask_offsets", *packed]
    missing = [v for v in need if v not in ds.variables]
    if missing:
        raise StoreError(f"latent file lacks {', '.join(missing)}")
    if ds["mu"].shape != (nr, nc, meta["latent_dim"]):
        raise StoreError(
            f"latent file: mu has shape {ds['mu'].shape}, expected {(nr, nc, meta['latent_dim'])}"
        )
    return meta


#: Formulas a regular axis may have been computed with (``i`` = 0..n-1, ``r = ±1/per``,
#: ``per`` the whole number of cells per coordinate unit, e.g. 240 for 15″, ``k`` the
#: index of the first cell centre counted from ``origin``). Writers of gridded data use
#: one of them; the one that reproduces an axis best leaves the fewest ulps to store.
#: ``edge_end`` is ``edge`` counted from the last cell: the axis of a raster whose rows run the
#: other way (a north-up GeoTIFF's latitudes, ``top − (row + ½)·res``) read in this order; the
#: held-out GEBCO tiles' latitudes are such (26–62 bytes of ulps each before format 5).
LINE_FORMS = ("step", "div", "edge", "index", "origin_mul", "origin_div", "edge_end")
_ORIGINS = (-180.0, -90.0, 0.0)
#: the most cells a window's ``edge``/``edge_end`` line may skip of the axis it was cut from
#: (``.tae`` format 8; a 15″ global axis has 86,400)
SKIP_MAX = 1 << 17


def _line(entry: dict) -> np.ndarray:
    """The regular axis an entry describes (float64, computed the same way everywhere)."""
    n = int(entry["n"])
    kind = entry["kind"]
    if kind in ("linspace", "packed"):
        return np.linspace(entry["start"], entry["stop"], n)
    if kind not in LINE_FORMS:
        raise StoreError(f"unknown grid coordinate kind {kind!r}")
    skip = entry.get("skip", 0)
    if skip and not (kind in ("edge", "edge_end") and isinstance(skip, int) and not isinstance(skip, bool)
                     and 0 < skip <= SKIP_MAX):
        raise StoreError(f"grid coordinate entry has an invalid skip {entry['skip']!r}")
    per, sgn = float(entry["per"]), float(entry["sign"])
    i = np.arange(n, dtype=np.float64)
    r = sgn / per
    if kind in ("step", "div", "edge", "edge_end"):
        start = float(entry["start"])
        if kind == "step":
            return start + i * r
        if kind == "div":
            return start + i / per * sgn
        # ``skip`` (format 8): the axis is a window of a longer one that ``start`` begins
        # (edge) or ends (edge_end), ``skip`` cells before the window's first (last) cell
        if kind == "edge_end":  # ``start``: the last centre; rows counted from that end
            return (start + r / 2) - ((n - 1 - i + float(skip)) + 0.5) * r
        return (start - r / 2) + ((i + float(skip)) + 0.5) * r
    k = float(entry["k"]) + 0.5 + sgn * i  # cell-centre index (exact in float64)
    if kind == "index":
        return k / per
    origin = float(entry["origin"])
    return origin + (k * (1 / per) if kind == "origin_mul" else k / per)


def _candidates(v: np.ndarray, regular: bool) -> list[dict]:
    n = int(v.size)
    out = [{"kind": "linspace", "start": float(v[0]), "stop": float(v[-1]), "n": n}]
    if not regular or n < 3 or not np.all(np.isfinite(v)):
        return out
    d = (v[-1] - v[0]) / (n - 1)
    with np.errstate(divide="ignore", over="ignore"):
        inv = 1 / abs(d) if d != 0 else np.inf
    if not (np.isfinite(d) and np.isfinite(inv)):
        return out
    per = int(np.rint(inv))
    if per < 1 or per > 10**7 or abs(inv - per) > 1e-6 * per:
        return out
    base = {"n": n, "per": per, "sign": 1 if d > 0 else -1}
    out += [{"kind": f, "start": float(v[0]), **base} for f in ("step", "div", "edge")]
    out.append({"kind": "edge_end", "start": float(v[-1]), **base})
    out.append({"kind": "index", "k": int(np.rint(v[0] * per - 0.5)), **base})
    for o in _ORIGINS:
        k = int(np.rint((v[0] - o) * per - 0.5))
        out += [{"kind": f, "k": k, **base, "origin": o} for f in ("origin_mul", "origin_div")]
    return out


def pack_coord(values: np.ndarray, *, regular: bool = False) -> tuple[dict, np.ndarray | None]:
    """Losslessly compact a 1-D float64 coordinate: ``(meta entry, uint8 stream or None)``.

    The axis is stored as a regular line (in the metadata) plus, for each value, its
    distance from that line in units in the last place (the difference of the IEEE bit
    patterns): none for an exact line, a few units for a regular axis read from a file,
    so a few dozen bytes instead of 8 per value; any irregular axis is still restored
    bit for bit. The line is the ``linspace`` between the ends or, with ``regular``,
    whichever of :data:`LINE_FORMS` leaves the smallest stream (``"ulps": true`` in
    the entry when a stream follows; the ``linspace`` kinds keep their format-1 names
    ``"linspace"`` and ``"packed"``).
    """
    from topoae.codec import residual as _res

    v = np.ascontiguousarray(values, dtype=np.float64)
    best: tuple[int, dict, np.ndarray | None] | None = None
    cands = _candidates(v, regular)
    for entry in cands:
        line = _line(entry)
        # int64 arithmetic wraps; so does the inverse
        ulps: np.ndarray = v.view(np.int64) - line.view(np.int64)
        if not ulps.any():
            return entry, None
        if entry["kind"] == "linspace":
            if np.array_equal(v.astype(np.float32).astype(np.float64), v):  # float32 axis (GMT)
                entry["float32"] = True
                ulps = v.astype(np.float32).view(np.int32) - line.astype(np.float32).view(np.int32)
            entry["kind"] = "packed"
        else:
            entry["ulps"] = True
        blob = np.frombuffer(_res.encode_ints(ulps), dtype=np.uint8).copy()
        if best is None or blob.size < best[0]:
            best = (blob.size, entry, blob)
    if len(cands) > 1:  # a regular axis: perhaps a window of a longer one
        window = _window_line(v, int(cands[1]["per"]), int(cands[1]["sign"]))
        if window is not None:
            return window, None
    assert best is not None
    return best[1], best[2]


def _window_line(v: np.ndarray, per: int, sign: int) -> dict | None:
    """An exact ``edge`` or ``edge_end`` line with a ``skip`` for ``v``, or None.

    A window cut from an axis computed from its own first or last cell (a GeoTIFF's
    ``left + (col + ½)·res``) matches no line of its own: its values carry the rounding of
    the longer axis. For every skip up to :data:`SKIP_MAX` this takes the edge that gives the
    window's last (edge) or first (edge_end) value back, within two ulps, and keeps the skips
    whose line matches the window cell after cell (blocks of cells, the survivors only)."""
    n = int(v.size)
    r = sign / per
    skips = np.arange(SKIP_MAX + 1, dtype=np.float64)
    cells = np.arange(n, dtype=np.float64)
    for kind in ("edge", "edge_end"):
        if kind == "edge":  # v[i] = E + ((i + s) + 0.5)·r, E = start − r/2
            approx = v[-1] - (((n - 1) + skips) + 0.5) * r
        else:  # v[i] = F − ((n − 1 − i + s) + 0.5)·r, F = start + r/2
            approx = v[0] + (((n - 1) + skips) + 0.5) * r
        for du in (0, -1, 1, -2, 2):
            e = (approx.view(np.int64) + du).view(np.float64)
            alive = np.arange(skips.size)
            for lo, hi in zip([0, *range(4, n, 64)], [*range(4, n, 64), n], strict=True):
                i = cells[lo:hi]
                if kind == "edge":
                    vals = e[alive, None] + ((i[None, :] + skips[alive, None]) + 0.5) * r
                else:
                    vals = e[alive, None] - (((n - 1) - i[None, :] + skips[alive, None]) + 0.5) * r
                alive = alive[(vals == v[lo:hi][None, :]).all(1)]
                if not alive.size:
                    break
            for s in alive[:4]:
                start = _start_for(float(e[s]), r, kind)
                if start is None:
                    continue
                entry = {"kind": kind, "start": start, "n": n, "per": per, "sign": sign, "skip": int(s)}
                if np.array_equal(_line(entry).view(np.int64), v.view(np.int64)):
                    return entry
    return None


def _start_for(edge: float, r: float, kind: str) -> float | None:
    """A centre ``start`` whose ``start ∓ r/2`` is exactly ``edge`` (None if none is near)."""
    guess = edge + r / 2 if kind == "edge" else edge - r / 2
    for du in (0, -1, 1, -2, 2):
        start = float((np.array([guess]).view(np.int64) + du).view(np.float64)[0])
        if (start - r / 2 if kind == "edge" else start + r / 2) == edge:
            return start
    return None


def coord_has_stream(entry: dict) -> bool:
    """Whether a coordinate entry is followed by a packed stream."""
    return entry["kind"] == "packed" or bool(entry.get("ulps"))


def unpack_coord(entry: dict, stream: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`pack_coord` (bit-exact)."""
    from topoae.codec import residual as _res

    n = int(entry["n"])
    line = _line(entry)
    if not coord_has_stream(entry):
        return line
    if stream is None:
        raise StoreError("latent file lacks a packed grid coordinate")
    ulps = _res.decode_ints(bytes(np.asarray(stream, dtype=np.uint8)), (n,))
    if entry.get("float32"):
        bits = line.astype(np.float32).view(np.int32) + ulps.astype(np.int32)
        return bits.view(np.float32).astype(np.float64)
    return (line.view(np.int64) + ulps.astype(np.int64)).view(np.float64)


def grid_coords(ds: xr.Dataset, meta: dict) -> dict[str, np.ndarray]:
    """The original grid's coordinate values, by dimension name."""
    g = meta["grid"]
    out = {}
    for d in g["dims"]:
        entry = g["coords"][d]
        stream = ds[f"grid_{d}"].values if f"grid_{d}" in ds.variables else None
        out[d] = unpack_coord(entry, stream)
    return out


def latent_format(path: str | os.PathLike) -> str:
    """``"zarr"`` or ``"netcdf"`` from a latent file's extension; :class:`ConfigError` otherwise."""
    path = Path(path)
    fmt = LATENT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"latent file {path} must end in .zarr or .nc")
    return fmt


def array_digest(values: np.ndarray) -> str:
    """blake2b (128 bits) of an array's shape and little-endian bytes (every NaN counted alike)."""
    a = np.asarray(values)
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), np.array(np.nan, a.dtype), a)  # backends canonicalise NaN bits
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _with_digests(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``meta["digests"]``: the :func:`array_digest` of every array it holds."""
    meta = read_meta(ds)
    meta["digests"] = {str(n): array_digest(v.values) for n, v in ds.variables.items()}
    return ds.assign_attrs(topoae=json.dumps(meta))


def verify_digests(ds: xr.Dataset, source: str | os.PathLike = "latent file") -> None:
    """Check every array of ``ds`` against ``meta["digests"]`` (written by :func:`save_latents`).

    A missing, damaged (e.g. a deleted Zarr chunk, read back as the fill value) or
    unexpected array raises :class:`StoreError` naming it. Files written before digests
    were stored have none and are not checked.
    """
    digests = read_meta(ds).get("digests")
    if digests is None:
        return
    for name, expected in digests.items():
        if name not in ds.variables:
            raise StoreError(f"{source}: array {name!r} is missing")
        if array_digest(ds[name].values) != expected:
            raise StoreError(
                f"{source}: array {name!r} is damaged (checksum mismatch: missing or corrupted "
                "chunks)"
            )
    extra = sorted(str(n) for n in ds.variables if str(n) not in digests)
    if extra:
        raise StoreError(f"{source}: array {extra[0]!r} is not covered by the stored checksums")


def save_latents(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a latent dataset to Zarr (``.zarr``) or NetCDF-4 (``.nc``), atomically.

    The metadata records a digest of every array, checked by :func:`open_latents`.
    """
    ds = _with_digests(ds)
    p = Path(path)
    fmt = latent_format(p)
    with atomic_path(p, overwrite=overwrite) as tmp:
        if fmt == "zarr":
            ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        else:
            # Payloads are already compact (uint8 codes, zstd streams): no HDF5 filters.
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    return p


def _read_latent_file(p: Path, fn: Callable[[xr.Dataset], Any]) -> Any:
    """``fn(dataset)`` with the latent file ``p`` open; :class:`StoreError` if it cannot be read."""
    if not p.exists():
        raise StoreError(f"latent file {p} does not exist")
    fmt = latent_format(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "zarr":
                f = xr.open_zarr(p, consolidated=False, zarr_format=3, chunks=None)
            else:
                f = xr.open_dataset(p, engine="netcdf4")
            with f:
                return fn(f)
    except Exception as exc:  # every backend raises its own types on corrupted input
        raise StoreError(f"cannot read latent file {p}: {type(exc).__name__}: {exc}") from None


def open_latents(path: str | os.PathLike) -> xr.Dataset:
    """Read a latent file fully into memory and check it; :class:`StoreError` if it is not one.

    Every array is checked against the digests written by :func:`save_latents`: a missing
    or damaged array (a lost Zarr chunk reads back as the fill value) is refused by name.
    """
    p = Path(path)
    ds = _read_latent_file(p, lambda f: f.load())
    read_meta(ds)
    verify_digests(ds, f"latent file {p}")
    return ds


def stored_dtype(path: str | os.PathLike) -> str:
    """The dtype a latent file decodes to by default: its input's (int16 for integer-valued
    input such as GEBCO, else float32; float32 for files that do not record it).

    Reads the metadata only; :func:`open_latents` checks the file.
    """
    attrs = _read_latent_file(Path(path), lambda f: dict(f.attrs))
    try:
        dtype = json.loads(attrs["topoae"])["grid"].get("dtype", "float32")
    except (KeyError, TypeError, ValueError, AttributeError):
        return "float32"
    return dtype if dtype in GRID_DTYPES else "float32"


def check_dtype(dtype: str, residual: dict | None) -> None:
    """Refuse an output dtype other than int16/float32, and int16 for an error bound that
    holds in float32 only (``residual``: the latents' residual metadata, or ``None``)."""
    if dtype not in GRID_DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(GRID_DTYPES)}, got {dtype!r}")
    if dtype == "int16" and residual and not residual.get("integer"):
        raise ConfigError(
            f"the --max-error bound ({residual['max_error']:g} m) of this grid holds for float32 "
            "only (the input was not integer-valued): rounding to int16 would break it; decode "
            "with --dtype float32"
        )


def _residual_of(da: xr.DataArray) -> dict | None:
    """The error bound a decoded grid carries in its ``topoae_provenance``, or ``None``."""
    try:
        prov = json.loads(da.attrs.get("topoae_provenance") or "{}")
    except (TypeError, ValueError):
        return None
    if not isinstance(prov, dict) or not prov.get("max_error"):
        return None
    return {"max_error": prov["max_error"], "integer": bool(prov.get("integer_residual"))}


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def summary(ds: xr.Dataset, path: str | os.PathLike | None = None) -> dict:
    """Honest size accounting of a latent dataset.

    ``stored_values`` counts every number the decoder reads (latents, per-patch
    normalisation, quantisation parameters) plus the byte streams (NaN mask,
    residual, hashes, packed grid coordinates) as float32 equivalents (bytes / 4). ``payload_bytes`` is
    the in-memory size of every variable and coordinate; ``file_bytes`` the size
    on disk (all files of a Zarr store). Ratios are against ``cells`` float32 values.
    """
    meta = read_meta(ds)
    cells = int(meta["counts"]["cells"])
    streams = ("nan_mask", "residual", "recon_hash", "nan_mask_offsets", "residual_offsets")
    values = 0
    for name, v in ds.data_vars.items():
        stream = name in streams or str(name).startswith("grid_")  # packed coordinates
        values += math.ceil(v.nbytes / 4) if stream else int(v.size)
    payload = sum(int(v.nbytes) for v in ds.variables.values())
    out = {
        "cells": cells,
        "valid_cells": cells - int(meta["counts"]["nan_cells"]),
        "patches": int(meta["counts"]["patches"]),
        "stored_values": values,
        "payload_bytes": payload,
        "cr_values": cells / values,
        "cr_payload_bytes": 4 * cells / payload,
    }
    if path is not None:
        fb = _du(Path(path))
        out.update(file_bytes=fb, cr_file_bytes=4 * cells / fb)
    return out


def summary_line(s: dict) -> str:
    """One line for the CLI: cells, stored values, bytes, both ratios."""
    line = (
        f"{s['cells']:,} cells ({s['valid_cells']:,} valid) in {s['patches']:,} patches -> "
        f"{s['stored_values']:,} stored values (CR {s['cr_values']:.1f}x in values), "
        f"{s['payload_bytes']:,} payload bytes (CR {s['cr_payload_bytes']:.1f}x of float32)"
    )
    if "file_bytes" in s:
        line += f", {s['file_bytes']:,} bytes on disk (CR {s['cr_file_bytes']:.1f}x)"
    return line


def _netcdf_attrs(attrs: dict) -> dict:
    """Attributes NetCDF can hold: dicts become JSON, booleans integers, None is dropped."""
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, dict):
            v = json.dumps(v)
        elif isinstance(v, bool | np.bool_):
            v = int(v)
        elif isinstance(v, list | tuple) and any(isinstance(x, str) for x in v):
            v = json.dumps(list(v))
        out[str(k)] = v
    return out


def _clean(da: xr.DataArray) -> xr.DataArray:
    da = da.copy(deep=False)
    da.attrs = _netcdf_attrs(da.attrs)
    for c in da.coords:
        da[c].attrs = _netcdf_attrs(da[c].attrs)
    return da


def _as_int16(da: xr.DataArray) -> xr.DataArray:
    """Round to whole metres (NaN stays NaN; written as the fill), refusing values beyond
    int16's ±32767 (no elevation is near them: clipping would write a wrong grid)."""

    def check(block: np.ndarray) -> np.ndarray:
        v = block[np.isfinite(block)]
        if v.size and (v.min() < -32767 or v.max() > 32767):
            raise ConfigError(f"the grid holds values from {v.min():g} to {v.max():g}, beyond int16's "
                              "±32767: write it as float32 (--dtype float32)")
        return block

    r = da.round()
    if r.chunks is not None:  # dask: checked block by block as the grid is written
        return r.copy(data=r.data.map_blocks(check, dtype=r.dtype))
    check(np.asarray(r.values))
    return r


#: CF attributes that describe the whole dataset: also written as global attributes.
GLOBAL_ATTRS = ("title", "Conventions", "institution", "source", "history", "references", "comment")


def _georeferenced(da: xr.DataArray) -> xr.DataArray:
    """``da`` (a shallow copy) with its CRS coordinate named by a ``grid_mapping`` attribute,
    as CF asks and GDAL and rioxarray read it (rioxarray keeps the name in ``encoding``,
    which the NetCDF writer's own encoding replaces)."""
    gm = da.encoding.get("grid_mapping") or da.attrs.get("grid_mapping")
    if gm is None and "spatial_ref" in da.coords:
        gm = "spatial_ref"
    da.encoding = {k: v for k, v in da.encoding.items() if k != "grid_mapping"}
    da.attrs.pop("grid_mapping", None)
    if gm in da.coords:
        da.attrs["grid_mapping"] = str(gm)
        try:  # the axes' CF attributes (axis, standard_name, units), where the grid lacks them
            import rioxarray  # noqa: F401

            cf = da.rio.set_spatial_dims(x_dim=da.dims[1], y_dim=da.dims[0])
            cf = cf.rio.write_coordinate_system()
        except Exception:  # no rioxarray, or a CRS it cannot read: leave the axes as they are
            return da
        for d in da.dims:
            da[d].attrs = {**cf[d].attrs, **da[d].attrs}
    return da


def _flip(da: xr.DataArray, dims, *, descending: bool) -> xr.DataArray:
    """``da`` with each of ``dims`` reversed where it does not already run as asked."""
    flip = {}
    for d in dims:
        v = da[d].values if d in da.dims else np.empty(0)
        if v.size > 1 and (v[0] > v[-1]) != descending:
            flip[d] = slice(None, None, -1)
    return da.isel(flip)


def grid_format(path: str | os.PathLike) -> str:
    """``netcdf`` or ``cog`` by the output's suffix; anything else is refused (before any work)."""
    fmt = GRID_SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"output {path} must end in .nc or .tif")
    return fmt


def save_grid(
    da: xr.DataArray, path: str | os.PathLike, *, dtype: str = "float32", overwrite: bool = False
) -> Path:
    """Write a decoded grid: GEBCO-style NetCDF-4 (``.nc``) or COG GeoTIFF (``.tif``).

    ``dtype="int16"`` rounds to whole metres like GEBCO (refused for a grid whose
    ``--max-error`` bound holds in float32 only); NaN cells are written as the fill
    value (NetCDF ``_FillValue`` / GeoTIFF nodata, -32768 for int16). The CRS is kept
    (NetCDF: ``grid_mapping`` → ``spatial_ref``), a NetCDF in the coordinate order of the
    file the grid was read from (``encoding[topoae.io.grid.DESCENDING]``), a GeoTIFF north
    up; the CF dataset attributes (:data:`GLOBAL_ATTRS`) are also written as global ones.
    """
    check_dtype(dtype, _residual_of(da))
    p = Path(path)
    fmt = grid_format(p)
    name = str(da.name or "elevation")
    descending = list(da.encoding.get(DESCENDING, ()))
    source_attrs = file_attrs(da)
    attrs = dict(da.attrs)
    if dtype == "int16":
        da = _as_int16(da)
    da = _clean(da.rename(name).assign_attrs(attrs))
    da = _georeferenced(da)
    with atomic_path(p, overwrite=overwrite) as tmp:
        if fmt == "netcdf":
            da = _flip(da, descending, descending=True)
            h, w = da.shape
            enc = {
                name: {
                    "dtype": dtype,
                    "zlib": True,
                    "complevel": 4,
                    "chunksizes": (min(h, 256), min(w, 1024)),
                    "_FillValue": INT16_FILL if dtype == "int16" else np.float32(np.nan),
                }
            }
            ds = da.to_dataset()
            # the source file's global attributes (kept by the codecs) win over the CF
            # dataset attributes found on the variable (grids built in memory)
            ds.attrs = _netcdf_attrs({**{k: da.attrs[k] for k in GLOBAL_ATTRS if k in da.attrs},
                                      **source_attrs})
            if "history" in ds.attrs:  # CF: history is a global attribute only
                ds[name].attrs.pop("history", None)
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
        else:
            import rioxarray  # noqa: F401

            ydim, xdim = da.dims
            nodata = INT16_FILL if dtype == "int16" else np.float32(np.nan)
            north_up = _flip(da, [ydim], descending=True).fillna(nodata).astype(dtype)
            north_up = north_up.rio.set_spatial_dims(x_dim=xdim, y_dim=ydim)
            north_up = north_up.rio.write_nodata(nodata, encoded=False)
            try:
                north_up.rio.to_raster(tmp, driver="COG", compress="DEFLATE")
            except Exception as exc:  # GDAL errors (CRS, driver) as one line
                raise ConfigError(f"cannot write {p} as a COG: {exc}") from None
    return p


def check_ensemble_path(path: str | os.PathLike) -> None:
    """Refuse an ensemble output that is neither NetCDF nor Zarr (before any work)."""
    if Path(path).suffix.lower() not in (".nc", ".nc4", ".zarr"):
        raise ConfigError(f"ensemble output {path} must end in .nc or .zarr")


def save_ensemble(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an ensemble dataset (:func:`topoae.sampling.sample`) as NetCDF-4 or Zarr."""
    p = Path(path)
    suffix = p.suffix.lower()
    check_ensemble_path(p)
    ds = ds.copy(deep=False)
    ds.attrs = _netcdf_attrs(ds.attrs)
    for v in ds.variables:
        ds[v].attrs = _netcdf_attrs(ds[v].attrs)
    with atomic_path(p, overwrite=overwrite) as tmp:
        if suffix == ".zarr":
            ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        else:
            enc = {}
            for v, var in ds.data_vars.items():
                chunks = tuple(
                    min(n, c)
                    for n, c in zip(var.shape, (1,) * (var.ndim - 2) + (256, 1024), strict=True)
                )
                enc[v] = {"zlib": True, "complevel": 4, "chunksizes": chunks}
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
    return p
