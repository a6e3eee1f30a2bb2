"""Cut elevation grids into normalised square patches stored in a Zarr v3 store.

Patches lie wholly inside the grid, every ``stride`` cells from its first cell
(:meth:`TileConfig.layout`, a ``valid`` :class:`topoae.layout.PatchLayout`).
Streaming: the grid is processed in bands of patch rows; each band is cut with
dask (``sliding_window_view``) on whatever scheduler is active, normalised, and
appended to the store in whole chunks, so memory stays bounded by one band
whatever the input size. See ``docs/ARCHITECTURE.md`` for the store layout.

Rotation augmentation is *not* materialised: the 8 symmetries of the square are
applied on the fly by :class:`topoae.data.dataset.PatchDataset` (8× less disk, and
every epoch can see a different orientation of each patch).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae._json import jsonable
from topoae._version import __version__
from topoae.data import splits as _splits
from topoae.data.normalise import Normalisation, normalise
from topoae.errors import ConfigError, RegionError, StoreError
from topoae.layout import PatchLayout

STORE_KIND = "patches"
NAN_MODES = ("drop", "flag")
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class TileConfig:
    """How a patch store was cut; saved in the store's attributes."""

    patch: int = 96
    # None (the default): the patch size (patches side by side), set by __post_init__
    stride: int = None  # type: ignore[assignment]
    normalise: str = "global"
    split: tuple[float, float, float] = (0.9, 0.05, 0.05)
    block: int = 4  # split block edge, in patches (block cells = block * patch)
    seed: int = 0
    nan: str = "drop"
    dtype: str = "float32"
    chunk: int = 64  # patches per Zarr chunk (64 × 96² float32 = 2.4 MB)
    band_mb: float = (
        32.0  # target size of one band of patches in memory (peak RSS is a few times this)
    )
    exclude: tuple[tuple[float, float, float, float], ...] = field(default_factory=tuple)
    # (file stem, split name) pairs: whole inputs go to the split their file is listed in
    # (``--split-by-file``; ``split``, ``block`` and ``seed`` are then unused). Empty: by blocks.
    split_by_file: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.patch)
        pairs = tuple((str(n), str(s)) for n, s in self.split_by_file)
        object.__setattr__(self, "split_by_file", pairs)
        _splits.file_assignment(pairs)  # validates the split names, one split per file
        if self.patch < 4 or self.stride < 1 or self.stride > self.patch:
            raise ConfigError(
                f"need patch >= 4 and 1 <= stride <= patch (got {self.patch}, {self.stride})"
            )
        if self.nan not in NAN_MODES:
            raise ConfigError(f"--nan must be one of {', '.join(NAN_MODES)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}")
        if self.block < 1 or self.chunk < 1:
            raise ConfigError("block and chunk must be positive")
        Normalisation(mode=self.normalise)  # validates the mode
        _splits.parse_fractions(self.split)

    def layout(self, shape: tuple[int, ...]) -> PatchLayout:
        """Where the patches of a grid of ``shape`` cells go: whole patches inside the grid,
        every ``stride`` cells from its first cell (:class:`RegionError` if smaller than one)."""
        return PatchLayout(int(shape[0]), int(shape[1]), self.patch, self.stride, edge="valid")


@dataclass
class TileSummary:
    """Counts and timing of one tiling run."""

    path: str
    patches: int = 0
    per_split: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0, "test": 0})
    dropped_nan: int = 0
    flagged_nan: int = 0
    dropped_guard: int = 0
    dropped_excluded: int = 0
    cells_read: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        s = self.per_split
        mbps = self.cells_read * 4 / 1e6 / self.seconds if self.seconds else 0.0
        return (
            f"{self.patches} patches (train {s['train']}, val {s['val']}, test {s['test']}); "
            f"NaN dropped {self.dropped_nan}, flagged {self.flagged_nan}; split guard {self.dropped_guard}; "
            f"excluded {self.dropped_excluded}; {self.seconds:.1f} s, {mbps:.0f} MB/s -> {self.path}"
        )


def _footprint_excluded(lat_lo, lat_hi, lon_lo, lon_hi, boxes) -> np.ndarray:
    out = np.zeros(np.shape(lat_lo), dtype=bool)
    for w, s, e, n in boxes:
        lat_hit = (lat_hi >= s) & (lat_lo <= n)
        lon_hit = np.zeros_like(out)
        for k in (-360.0, 0.0, 360.0):  # boxes and grids may use either lon convention
            lon_hit |= (lon_hi + k >= w) & (lon_lo + k <= e)
        out |= lat_hit & lon_hit
    return out


class _ChunkWriter:
    """Append patches to a growing Zarr array in whole chunks."""

    def __init__(self, array, chunk: int):
        self.array, self.chunk, self.n = array, chunk, 0
        self.buf: list[np.ndarray] = []
        self.nbuf = 0

    def add(self, patches: np.ndarray) -> None:
        self.buf.append(patches)
        self.nbuf += len(patches)
        if self.nbuf >= self.chunk:
            data = np.concatenate(self.buf)
            whole = (len(data) // self.chunk) * self.chunk
            self._write(data[:whole])
            self.buf, self.nbuf = ([data[whole:]], len(data) - whole)

    def close(self) -> None:
        if self.nbuf:
            self._write(np.concatenate(self.buf))
        self.buf, self.nbuf = [], 0

    def _write(self, data: np.ndarray) -> None:
        if len(data) == 0:
            return
        self.array.resize((self.n + len(data), *self.array.shape[1:]))
        self.array[self.n : self.n + len(data)] = data
        self.n += len(data)


def _band_windows(da: xr.DataArray, r_first: int, r_last: int, lay: PatchLayout) -> np.ndarray:
    """Patches of patch rows ``r_first..r_last-1``: numpy ``(rows, n_cols, P, P)`` float32."""
    from dask.array.lib.stride_tricks import sliding_window_view

    p, s = lay.patch, lay.stride
    c0, c1 = lay.band(r_first, r_last, axis=0)
    band = da.data[c0:c1, : lay.band(0, lay.n_cols, axis=1)[1]]
    if not hasattr(band, "dask"):
        import dask.array

        band = dask.array.from_array(band, chunks=(min(band.shape[0], 2048), 2048))
    # Rows of a band are one chunk so each window is cut from one block (no halo copies).
    band = band.rechunk({0: -1})
    windows = sliding_window_view(band, (p, p))[::s, ::s]
    return np.asarray(windows.compute(), dtype=np.float32)


def tile(
    grids: Sequence[xr.DataArray],
    out: str | os.PathLike,
    config: TileConfig = TileConfig(),
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TileSummary:
    """Cut ``grids`` (canonical DataArrays from :func:`topoae.io.open_grid`) into a patch store.

    Parameters
    ----------
    grids
        One or more 2-D grids (metres, NaN for nodata). Patches of all grids go into one store;
        split blocks are drawn over all grids together, or, with ``config.split_by_file``, each
        grid's patches go to the split of its file stem (``attrs["source"]``); grids that
        overlap must then be in the same split (:class:`ConfigError` naming the pair).
    out
        Path of the Zarr v3 store to create (written under a temporary name, renamed at the end).
    progress
        Called with the number of patch rows done after each band.

    Returns
    -------
    TileSummary
    """
    import zarr
    from zarr.codecs import BloscCodec

    cfg = config
    norm = Normalisation(mode=cfg.normalise)
    t0 = time.perf_counter()
    summary = TileSummary(path=str(out))
    layouts = [cfg.layout(g.shape) for g in grids]
    block = cfg.block * cfg.patch
    file_split = file_splits(grids, cfg.split_by_file) if cfg.split_by_file else None
    # Split blocks over all grids at once, seeded.
    bpr = [int(np.ceil(g.shape[1] / block)) for g in grids]
    nblocks = [int(np.ceil(g.shape[0] / block)) * b for g, b in zip(grids, bpr, strict=True)]
    labels_all = _splits.assign_blocks(sum(nblocks), _splits.parse_fractions(cfg.split), cfg.seed)
    block_offsets = np.concatenate([[0], np.cumsum(nblocks)])
    pdtype = np.dtype(cfg.dtype)

    meta: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "offset",
            "scale",
            "split",
            "has_nan",
            "row",
            "col",
            "row0",
            "col0",
            "lat",
            "lon",
            "ocean_fraction",
            "source",
        )
    }
    with atomic_path(out, overwrite=overwrite) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        arr = group.create_array(
            "patches",
            shape=(0, cfg.patch, cfg.patch),
            chunks=(cfg.chunk, cfg.patch, cfg.patch),
            dtype=pdtype,
            compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
            fill_value=np.nan,
        )
        writer = _ChunkWriter(arr, cfg.chunk)
        for gi, (da, lay) in enumerate(zip(grids, layouts, strict=True)):
            nr, nc = lay.counts
            ydim, xdim = da.dims
            yv, xv = da[ydim].values, da[xdim].values
            geographic = ydim == "lat"
            rows_per_band = max(1, int(cfg.band_mb * 1e6 // (nc * cfg.patch * cfg.patch * 4)))
            blabels = labels_all[block_offsets[gi] : block_offsets[gi + 1]]
            for r_first in range(0, nr, rows_per_band):
                r_last = min(nr, r_first + rows_per_band)
                win = _band_windows(da, r_first, r_last, lay)
                summary.cells_read += win.shape[0] * cfg.stride * da.shape[1]
                r2, c2 = np.meshgrid(np.arange(r_first, r_last), np.arange(nc), indexing="ij")
                rr, cc = r2.ravel(), c2.ravel()
                patches = win.reshape(-1, cfg.patch, cfg.patch)
                row0, col0 = lay.starts(nr)[rr], lay.starts(nc)[cc]
                if file_split is None:
                    split = _splits.patch_labels(row0, col0, cfg.patch, block, blabels, bpr[gi])
                else:
                    split = np.full(len(row0), file_split[gi], dtype=np.int8)
                nan_count = np.isnan(patches).sum(axis=(1, 2))
                all_nan = nan_count == cfg.patch * cfg.patch
                has_nan = nan_count > 0
                ylo, yhi = yv[row0], yv[row0 + cfg.patch - 1]
                xlo, xhi = xv[col0], xv[col0 + cfg.patch - 1]
                excluded = (
                    _footprint_excluded(
                        np.minimum(ylo, yhi), np.maximum(ylo, yhi), xlo, xhi, cfg.exclude
                    )
                    if geographic and cfg.exclude
                    else np.zeros(len(patches), bool)
                )
                base = (split != _splits.GUARD) & ~excluded
                summary.dropped_guard += int(np.sum(split == _splits.GUARD))
                summary.dropped_excluded += int(np.sum(excluded & (split != _splits.GUARD)))
                if cfg.nan == "drop":
                    keep = base & ~has_nan
                    summary.dropped_nan += int(np.sum(base & has_nan))
                else:  # flag: keep partial-NaN patches, an all-NaN patch carries nothing
                    keep = base & ~all_nan
                    summary.flagged_nan += int(np.sum(keep & has_nan))
                    summary.dropped_nan += int(np.sum(base & all_nan))
                if keep.any():
                    kp = patches[keep]
                    offset, scale = norm.params(kp)
                    writer.add(normalise(kp, offset, scale, pdtype))
                    with np.errstate(invalid="ignore"):
                        ocean = np.nanmean(np.where(np.isnan(kp), np.nan, kp < 0), axis=(1, 2))
                    for name, val in (
                        ("offset", offset),
                        ("scale", scale),
                        ("split", split[keep]),
                        ("has_nan", has_nan[keep]),
                        ("row", rr[keep]),
                        ("col", cc[keep]),
                        ("row0", row0[keep]),
                        ("col0", col0[keep]),
                        ("lat", 0.5 * (ylo + yhi)[keep]),
                        ("lon", 0.5 * (xlo + xhi)[keep]),
                        ("ocean_fraction", ocean.astype(np.float32)),
                        ("source", np.full(int(keep.sum()), gi)),
                    ):
                        meta[name].append(np.asarray(val))
                if progress is not None:
                    progress(r_last - r_first)
        writer.close()
        n = writer.n
        if n == 0:
            raise RegionError(
                "no patch left to store: the region is all NaN, excluded, or too small"
            )
        dtypes = {
            "offset": "f8",
            "scale": "f8",
            "split": "i1",
            "has_nan": "bool",
            "row": "i4",
            "col": "i4",
            "row0": "i8",
            "col0": "i8",
            "lat": "f8",
            "lon": "f8",
            "ocean_fraction": "f4",
            "source": "i2",
        }
        for name, parts in meta.items():
            values = np.concatenate(parts).astype(dtypes[name])
            group.create_array(name, data=values, chunks=(max(1, min(len(values), 65536)),))
        split_all = np.concatenate(meta["split"])
        for k, v in _splits.NAMES.items():
            summary.per_split[k] = int(np.sum(split_all == v))
        summary.patches = n
        summary.seconds = time.perf_counter() - t0
        group.attrs["topoae"] = {
            "kind": STORE_KIND,
            "version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "normalise": norm.to_dict(),
            "patch": cfg.patch,
            "stride": cfg.stride,
            "dtype": cfg.dtype,
            "augmentation": "on the fly: 8 symmetries of the square (topoae.data.dataset)",
            "sources": [_describe(g) for g in grids],
            "config": jsonable(cfg),
            "split": _split_record(grids, cfg, file_split),
            "counts": {
                "patches": n,
                **summary.per_split,
                "dropped_nan": summary.dropped_nan,
                "flagged_nan": summary.flagged_nan,
                "dropped_guard": summary.dropped_guard,
                "dropped_excluded": summary.dropped_excluded,
            },
        }
    return summary


def _stem(da: xr.DataArray) -> str:
    return Path(str(da.attrs.get("source", ""))).stem


def _footprint(da: xr.DataArray) -> tuple[list[float], float]:
    """``(W, S, E, N)`` of the grid's cell edges and half its smaller cell size."""
    box, half = [], []
    for dim in reversed(da.dims):  # x first, then y
        v = np.asarray(da[dim].values, dtype=np.float64)
        d = float(np.abs(v[1] - v[0])) if len(v) > 1 else 0.0
        box.append((float(v.min()) - d / 2, float(v.max()) + d / 2))
        half.append(d / 2)
    (w, e), (s, n) = box
    return [w, s, e, n], min(half)


def file_splits(grids: Sequence[xr.DataArray], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Split label of each grid by its file stem; overlapping grids must share a split."""
    stems = [_stem(g) for g in grids]
    labels = _splits.file_labels(stems, pairs)
    geographic = np.array([g.dims[0] == "lat" for g in grids])
    foot = [_footprint(g) for g in grids]
    for kind in (True, False):  # geographic and projected grids are compared among themselves
        idx = np.flatnonzero(geographic == kind)
        if len(idx) > 1:
            _splits.check_overlaps(
                [stems[i] for i in idx],
                np.array([foot[i][0] for i in idx]),
                labels[idx],
                tolerance=np.array([foot[i][1] for i in idx]),
                wrap=360.0 if kind else None,
            )
    return labels


def _split_record(
    grids: Sequence[xr.DataArray], cfg: TileConfig, file_split: np.ndarray | None
) -> dict:
    """How the store's split was made (``attrs["topoae"]["split"]``)."""
    if file_split is None:
        return {
            "by": "blocks",
            "fractions": list(cfg.split),
            "block_cells": cfg.block * cfg.patch,
            "seed": cfg.seed,
        }
    files: dict[str, list[str]] = {k: [] for k in _splits.NAMES}
    for g, lab in zip(grids, file_split, strict=True):
        files[next(k for k, v in _splits.NAMES.items() if v == lab)].append(_stem(g))
    return {"by": "file", "files": files}


def _describe(da: xr.DataArray) -> dict:
    ydim, xdim = da.dims
    return {
        "source": str(da.attrs.get("source", "")),
        "variable": str(da.attrs.get("variable", da.name)),
        "dims": [str(ydim), str(xdim)],
        "shape": [int(v) for v in da.shape],
        "bbox": [float(da[xdim][0]), float(da[ydim][0]), float(da[xdim][-1]), float(da[ydim][-1])],
        "requested_bbox": [float(v) for v in da.attrs["bbox"]] if "bbox" in da.attrs else None,
    }


def open_store(path: str | os.PathLike):
    """Open a patch store read-only and check it is one; returns ``(group, attrs)``."""
    import zarr

    p = Path(path)
    if not p.exists():
        raise StoreError(f"patch store {p} does not exist")
    try:
        group = zarr.open_group(p, mode="r")
        meta = group.attrs.get("topoae", {})
        attrs = dict(meta) if isinstance(meta, Mapping) else {}
    except Exception as exc:
        raise StoreError(f"cannot open {p} as a Zarr store: {exc}") from None
    if attrs.get("kind") != STORE_KIND or "patches" not in group:
        raise StoreError(f"{p} is not a topoae patch store")
    return group, attrs
