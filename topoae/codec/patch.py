"""The codec: a region goes in, a small latent grid comes out, and back.

:func:`encode` tiles a 2-D elevation DataArray with overlapping patches
(a :class:`topoae.layout.PatchLayout`, reflect padding at the edges), runs the model's
encoder in batches, band by band of patch rows (so memory is bounded by one
band whatever the region's size), and returns the latent grid as an
``xr.Dataset``. :func:`decode` decodes every patch, blends the overlaps with
smooth weights that sum to one, and returns the exact original grid: same
shape, coordinates, variable name, attributes and CRS. No cell is copied from
the input: every value comes from the decoder (plus, in error-bounded mode, the
stored residual).

Latent dataset layout (``attrs["topoae"]`` is a JSON string with ``kind: "latents"``)::

    mu            (row, col, latent)  float32, or uint8 with --quantize 8bit
    mu_offset/mu_scale (latent)       float32, only with 8bit: the quantisation's lo and step
    logvar        (row, col, latent)  only with keep_logvar (needed by sample from q(z|x))
    offset, scale (row, col)          float32, only for "patch" normalisation (metres =
                                      value * scale + offset)
    lat/lon or y/x (row) / (col)      nominal patch centres
    grid_<dim>    (grid_<dim>_bytes)  the original coordinates, packed losslessly (absent when
                                      an exact linspace: then kept in the metadata)
    nan_mask, nan_mask_offsets        zstd bit-packed NaN mask, one frame per block of rows
    residual, residual_offsets, recon_hash   only with max_error (see topoae.codec.residual)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import xarray as xr

from topoae._json import jsonable
from topoae._version import __version__
from topoae.codec import residual as _res
from topoae.codec.blending import WINDOWS
from topoae.codec.files import FORMAT_VERSION, INT16_FILL, KIND, check_dtype, pack_coord
from topoae.codec.patch_decoder import BlockDecoder, provenance
from topoae.codec.patch_model import (
    CodecModel,
    as_codec_model,
    check_model,
    run_encoder,
    torch_device,
)
from topoae.codec.quantize import check_mode, quantize
from topoae.data import normalise as _norm
from topoae.data.normalise import Normalisation
from topoae.errors import (
    ConfigError,
    InputError,
    RegionError,
)
from topoae.io.grid import DESCENDING, add_history, data_attrs, descending_dims, file_attrs
from topoae.layout import PatchLayout
from topoae.nanfill import fill_nearest


def default_stride(patch: int) -> int:
    """Default stride: an overlap of 1/8 of the patch (12 cells for 96).

    Of the strides P, P - P/16, P - P/8 and P - P/4 it gave the lowest RMSE and
    max error on four held-out real grids, with seams at 1.05-1.2x the background
    error jump (3-4x without overlap), for 1.31x the values of no overlap
    (``benchmarks/results/codec.md``).
    """
    return patch - max(1, patch // 8)


@dataclass(frozen=True)
class CodecConfig:
    """How a region was encoded; saved in the latent file's attributes.

    Parameters
    ----------
    stride
        Patch spacing in cells (``None``: :func:`default_stride`).
    quantize
        ``"none"`` (float32 latents) or ``"8bit"`` (uint8 + per-channel offset/scale).
    max_error
        Metres; store a residual so that every decoded cell is within it of the input.
    keep_logvar
        Store ``logvar`` as well (doubles the latents; needed to sample from q(z|x)).
    window
        Blending window (:data:`topoae.codec.blending.WINDOWS`).
    batch
        Patches per forward pass.
    band_rows
        Patch rows per band; a band of ``band_rows * stride`` grid rows is also the
        block unit of the NaN-mask and residual streams and of lazy decoding.
    """

    stride: int | None = None
    quantize: str = "none"
    max_error: float | None = None
    keep_logvar: bool = False
    window: str = "cosine"
    batch: int = 64
    band_rows: int = 4

    def __post_init__(self) -> None:
        check_mode(self.quantize)
        if self.window not in WINDOWS:
            raise ConfigError(
                f"unknown blending window {self.window!r}; one of {', '.join(WINDOWS)}"
            )
        if self.batch < 1 or self.band_rows < 1:
            raise ConfigError("batch and band_rows must be positive")
        if self.max_error is not None and not (
            math.isfinite(self.max_error) and self.max_error > 0
        ):
            raise ConfigError(
                f"--max-error must be a positive number of metres, got {self.max_error}"
            )


def _centre_coords(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Coordinates at fractional cell indices (linear, extrapolated past the ends)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.full(centres.shape, v[0])
    step = (v[-1] - v[0]) / (v.size - 1)
    return v[0] + centres * step


def _read_rows(grid: xr.DataArray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` (any order, repeats allowed) of a 2-D grid, float32."""
    lo, hi = int(idx.min()), int(idx.max()) + 1
    block = np.asarray(grid.isel({grid.dims[0]: slice(lo, hi)}).values, dtype=np.float32)
    return block[idx - lo]


def _check_grid(grid: xr.DataArray) -> None:
    if not isinstance(grid, xr.DataArray):
        raise InputError(f"expected an xarray.DataArray grid, got {type(grid).__name__}")
    if grid.ndim != 2:
        raise InputError(f"expected a 2-D grid, got dims {grid.dims}")
    if not np.issubdtype(grid.dtype, np.number):
        raise InputError(f"grid values are not numbers ({grid.dtype})")
    for d in grid.dims:
        if d not in grid.coords:
            raise InputError(f"grid dimension {d!r} has no coordinates")


def _check_size(grid: xr.DataArray, patch: int) -> None:
    """Refuse a region smaller than one patch: the reflected padding would be most of the input."""
    h, w = (int(n) for n in grid.shape)
    if min(h, w) < patch:
        raise RegionError(
            f"region {h}x{w} cells is too small: this model needs at least {patch}x{patch} "
            "cells (its patch size)"
        )


def encode(
    grid: xr.DataArray,
    model: Any,
    *,
    stride: int | None = None,
    quantize: str = "none",
    max_error: float | None = None,
    keep_logvar: bool = False,
    window: str = "cosine",
    batch: int = 64,
    band_rows: int = 4,
    device: str = "cpu",
    normalise: Normalisation | None = None,
    model_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> xr.Dataset:
    """Encode a 2-D elevation grid into a latent grid.

    Parameters
    ----------
    grid
        2-D DataArray (``(lat, lon)`` or ``(y, x)``), metres, NaN for nodata; may be
        lazy (dask): it is read one band of patch rows at a time.
    model
        A ``LoadedModel`` or an ``nn.Module`` following the model protocol.
    stride, quantize, max_error, keep_logvar, window, batch, band_rows
        See :class:`CodecConfig`.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
    normalise, model_id
        Only for bare modules (a ``LoadedModel`` carries both): a
        :class:`~topoae.data.normalise.Normalisation` (default: the global GEBCO one).
    progress
        Called with the number of patches done after each patch row.

    Returns
    -------
    xr.Dataset
        The latent grid (layout in the module docstring); :func:`topoae.codec.files.summary` gives its size.
    """
    _check_grid(grid)
    cm = as_codec_model(model, normalise=normalise, model_id=model_id)
    _check_size(grid, cm.patch)
    stride = default_stride(cm.patch) if stride is None else int(stride)
    cfg = CodecConfig(
        stride=stride,
        quantize=quantize,
        max_error=max_error,
        keep_logvar=keep_logvar,
        window=window,
        batch=batch,
        band_rows=band_rows,
    )
    height, width = (int(n) for n in grid.shape)
    layout = PatchLayout(height, width, cm.patch, stride)
    dev = torch_device(device)
    cm.net.to(dev)
    norm = cm.normalise
    nr, nc, P, S = layout.n_rows, layout.n_cols, layout.patch, layout.stride
    col_idx = layout.indices(0, nc, axis=1)
    mu = np.empty((nr, nc, cm.latent_dim), np.float32)
    logvar = np.empty_like(mu) if keep_logvar else None
    offset, scale = np.empty((nr, nc)), np.empty((nr, nc))
    block_h = cfg.band_rows * S
    n_blocks = math.ceil(height / block_h)
    mask_frames: list[bytes] = []
    n_nan, max_abs, integer = 0, 0.0, True
    for b, k0 in enumerate(range(0, nr, cfg.band_rows)):
        k1 = min(nr, k0 + cfg.band_rows)
        top = layout.band(k0, k1)[0]  # grid row of rows[0]
        rows = _read_rows(grid, layout.indices(k0, k1))
        block = rows[:, col_idx]
        # Band b holds block b's grid rows (the last band holds every remaining block).
        for bb in range(b, n_blocks) if k1 == nr else (b,):
            own = rows[bb * block_h - top : min(height, (bb + 1) * block_h) - top]
            nan = np.isnan(own)
            n_nan += int(nan.sum())
            mask_frames.append(_res.encode_mask(nan))
            if not nan.all():
                max_abs = max(max_abs, float(np.nanmax(np.abs(own))))
                integer = integer and bool(np.all(own[~nan] == np.rint(own[~nan])))
        win = np.lib.stride_tricks.sliding_window_view(block, (P, P))[::S, ::S]
        patches = win.reshape(-1, P, P)
        off, sc = norm.params(patches)
        if np.isnan(patches).any():
            # NaN cells take the nearest valid value; an all-NaN patch codes as zeros.
            patches = np.stack(
                [np.zeros_like(p) if np.isnan(p).all() else fill_nearest(p)[0] for p in patches]
            )
        x = _norm.normalise(patches, off, sc)
        m_, lv_ = run_encoder(cm, x, cfg.batch, dev)
        mu[k0:k1] = m_.reshape(k1 - k0, nc, -1)
        if logvar is not None:
            if lv_ is None:
                raise ConfigError("keep_logvar asked for, but the model's encoder gives no logvar")
            logvar[k0:k1] = lv_.reshape(k1 - k0, nc, -1)
        offset[k0:k1], scale[k0:k1] = off.reshape(k1 - k0, nc), sc.reshape(k1 - k0, nc)
        if progress is not None:
            progress((k1 - k0) * nc)
    if n_nan == height * width:
        raise RegionError("every cell of the region is NaN; nothing to encode")
    counts = {"nan_cells": n_nan, "max_abs": max_abs, "integer": integer}
    ds = _build_dataset(grid, cm, cfg, layout, mu, logvar, offset, scale, mask_frames, counts)
    if cfg.max_error is not None:
        ds = add_residual(ds, grid, cm, max_error=cfg.max_error, device=str(dev))
    return ds


def _crs_text(grid: xr.DataArray) -> str | None:
    """The grid's CRS as ``EPSG:n`` where it has a code, else WKT; ``None`` without one."""
    try:
        import rioxarray  # noqa: F401

        crs = grid.rio.crs
    except Exception:  # no CRS information: nothing to keep
        return None
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _build_dataset(grid, cm, cfg, layout, mu, logvar, offset, scale, mask_frames, counts):
    d0, d1 = (str(d) for d in grid.dims)
    nr, nc = layout.n_rows, layout.n_cols
    data_vars: dict[str, Any] = {}
    if cfg.quantize == "8bit":
        q = quantize(mu)
        data_vars["mu"] = (("row", "col", "latent"), q.codes)
        data_vars["mu_offset"] = (("latent",), q.lo)  # on-disk names: quantisation lo / step
        data_vars["mu_scale"] = (("latent",), q.step)
        if logvar is not None:
            ql = quantize(logvar)
            data_vars["logvar"] = (("row", "col", "latent"), ql.codes)
            data_vars["logvar_offset"] = (("latent",), ql.lo)
            data_vars["logvar_scale"] = (("latent",), ql.step)
    else:
        data_vars["mu"] = (("row", "col", "latent"), mu)
        if logvar is not None:
            data_vars["logvar"] = (("row", "col", "latent"), logvar)
    if cm.normalise.mode == "patch":
        data_vars["offset"] = (("row", "col"), offset.astype(np.float32))
        data_vars["scale"] = (("row", "col"), scale.astype(np.float32))
    mask, mask_off = _res.pack_frames(mask_frames)
    data_vars["nan_mask"] = (("nan_mask_bytes",), mask)
    data_vars["nan_mask_offsets"] = (("block_edge",), mask_off)
    coords = {
        d0: (("row",), _centre_coords(grid[d0].values, layout.centres(nr))),
        d1: (("col",), _centre_coords(grid[d1].values, layout.centres(nc))),
    }
    coord_meta = {}
    for d in (d0, d1):
        coord_meta[d], stream = pack_coord(grid[d].values)
        if stream is not None:
            data_vars[f"grid_{d}"] = ((f"grid_{d}_bytes",), stream)
    meta = {
        "kind": KIND,
        "version": FORMAT_VERSION,
        "topoae_version": __version__,
        "model_id": cm.model_id,
        "model_config": cm.config,
        "normalise": cm.normalise.to_dict(),
        "patch": layout.patch,
        "stride": layout.stride,
        "margin": layout.margin,
        "latent_dim": cm.latent_dim,
        "codec": jsonable(cfg),
        "block_rows": cfg.band_rows * layout.stride,
        "grid": {
            "name": grid.name,
            "dims": [d0, d1],
            "shape": [layout.height, layout.width],
            # the reader's bookkeeping (``source``: the path it read) is not the data's
            "attrs": jsonable(data_attrs(grid)),
            **({"global_attrs": jsonable(glob)} if (glob := file_attrs(grid)) else {}),
            "crs": _crs_text(grid),
            # whole numbers in int16 range (GEBCO): int16 by default, integer residual
            "integer": counts["integer"],
            "dtype": "int16" if counts["integer"] and counts["max_abs"] <= 32767 else "float32",
            "descending": descending_dims(grid),
            "coords": coord_meta,
            "coord_attrs": {d: jsonable(dict(grid[d].attrs)) for d in (d0, d1)},
        },
        "counts": {
            "cells": layout.height * layout.width,
            "nan_cells": counts["nan_cells"],
            "max_abs": counts["max_abs"],
            "patches": nr * nc,
            "patch_rows": nr,
            "patch_cols": nc,
        },
        "residual": None,
    }
    return xr.Dataset(data_vars, coords=coords, attrs={"topoae": json.dumps(meta)})


def decode(
    ds: xr.Dataset,
    model: Any,
    *,
    force: bool = False,
    device: str = "cpu",
    batch: int | None = None,
    window: str | None = None,
    lazy: bool = False,
    dtype: str | None = None,
) -> xr.DataArray:
    """Decode a latent dataset back onto the exact original grid.

    Parameters
    ----------
    ds
        A latent dataset from :func:`encode` or :func:`topoae.codec.files.open_latents`.
    model
        The model that made it (a ``LoadedModel`` or a bare module); another model
        raises :class:`ModelMismatchError` unless ``force``.
    device, batch
        Where and in which batch size to run the decoder (batch defaults to the encoder's).
    window
        Override the blending window (not allowed for error-bounded latents).
    lazy
        Return a dask-backed DataArray computed block by block (bounded memory when written).
    dtype
        The dtype the grid is meant to be written in (``encoding["dtype"]``, which
        :func:`topoae.codec.files.save_grid` is given): ``None`` for the input's (int16 for
        integer-valued input such as GEBCO, else float32). int16 is refused for
        error-bounded latents of non-integer input: their bound holds in float32 only.

    Returns
    -------
    xr.DataArray
        float32 metres on the original coordinates, with the original name,
        attributes (plus ``topoae_provenance`` and a ``history`` line), CRS
        (``grid_mapping`` → ``spatial_ref``) and ``encoding["dtype"]``; NaN where the
        input was NaN. Whole numbers where the residual is on the integer grid.
    """
    dec = BlockDecoder(ds, model, force=force, device=device, batch=batch, window=window)
    g = dec.meta["grid"]
    out_dtype = dtype or g.get("dtype", "float32")
    check_dtype(out_dtype, dec.residual)
    out = dec.template(dec.assemble(dec.block, lazy=lazy))
    out.attrs["topoae_provenance"] = provenance(dec.meta, window=dec.window)
    bound = f", max error {dec.residual['max_error']:g} m" if dec.residual else ""
    line = (
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}: reconstructed by topoae {__version__} (patch "
        f"codec, model {str(dec.meta['model_id']).split(':')[-1][:16]}{bound})"
    )
    add_history(out, line, g.get("global_attrs"))
    out.encoding.update(dtype=out_dtype, **{DESCENDING: g.get("descending", [])})
    if out_dtype == "int16":  # so that a plain to_netcdf also writes NaN as GEBCO's fill
        out.encoding["_FillValue"] = INT16_FILL
    return out


def add_residual(
    ds: xr.Dataset, grid: xr.DataArray, model: Any, *, max_error: float, device: str = "cpu"
) -> xr.Dataset:
    """Make latents error-bounded: every decoded cell within ``max_error`` metres of ``grid``.

    Decodes ``ds`` block by block exactly as :func:`decode` will, quantises the
    residual ``grid - reconstruction`` with step ``~2 * max_error`` and stores it
    zstd-compressed (:mod:`topoae.codec.residual`), replacing any residual ``ds`` had.
    Integer-valued input (GEBCO) is coded on the integer grid (step ``2 floor(E) + 1``
    around the rounded reconstruction), so the bound holds in int16 output too.
    ``grid`` must be the grid ``ds`` was encoded from.
    """
    from topoae.codec.files import grid_coords, read_meta

    meta = read_meta(ds)
    _check_grid(grid)
    coords = grid_coords(ds, meta)
    same = tuple(grid.dims) == tuple(meta["grid"]["dims"]) and all(
        np.array_equal(grid[d].values, coords[str(d)]) for d in grid.dims
    )
    if not same:
        raise InputError("the grid given is not the one these latents were encoded from")
    integer = bool(meta["grid"].get("integer"))
    step = (
        _res.integer_step(max_error)
        if integer
        else _res.residual_step(max_error, float(meta["counts"]["max_abs"]))
    )
    ds = ds.drop_vars(["residual", "residual_offsets", "recon_hash"], errors="ignore")
    meta["residual"] = None
    ds = ds.assign_attrs(topoae=json.dumps(meta))
    dec = BlockDecoder(ds, model, device=device)
    frames, hashes = [], []
    for b in range(dec.n_blocks):
        lo, hi = dec.block_span(b)
        r = dec.reconstruct(b)
        x = _read_rows(grid, np.arange(lo, hi))
        if integer and not np.array_equal(x[np.isfinite(x)], np.rint(x[np.isfinite(x)])):
            raise InputError("the grid given is not the one these latents were encoded from")
        q = (
            _res.quantize_integer_residual(x, r, max_error)
            if integer
            else _res.quantize_residual(x, r, max_error, step)
        )
        frames.append(_res.encode_residual(q, zstd_only=True))  # patch format 1: zstd frames
        hashes.append(_res.digest(r))
    data, off = _res.pack_frames(frames)
    meta["residual"] = {
        "step": step,
        "max_error": max_error,
        "integer": integer,  # q around rint(reconstruction): the bound holds in int16 too
        "coder": "lorenzo|none+zstd",
    }
    meta["codec"]["max_error"] = max_error
    return ds.assign(
        residual=(("residual_bytes",), data),
        residual_offsets=(("block_edge",), off),
        recon_hash=(("block",), np.asarray(hashes, dtype=np.uint64)),
    ).assign_attrs(topoae=json.dumps(meta))


__all__ = [
    "BlockDecoder",
    "add_residual",
    "CodecConfig",
    "CodecModel",
    "as_codec_model",
    "check_model",
    "decode",
    "default_stride",
    "encode",
]
