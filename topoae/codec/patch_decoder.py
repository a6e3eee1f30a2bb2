"""Decode a latent dataset block by block: the engine behind decode and sample.

A block is a band of grid rows (``meta["block_rows"]`` high, full width). The
patch rows that touch it are decoded, each in the same batches whatever the
block, blended with :class:`topoae.codec.blending.OverlapAdd`, then the stored
residual (error-bounded latents) and the NaN mask are applied. Blocks are
independent, so a grid can be assembled eagerly or lazily (one dask task per block).
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from topoae._version import __version__
from topoae.codec import residual as _res
from topoae.codec.blending import OverlapAdd
from topoae.codec.files import grid_coords, read_meta
from topoae.codec.patch_model import as_codec_model, check_model, to_tensor, torch_device
from topoae.codec.quantize import dequantize
from topoae.data.normalise import Normalisation, denormalise
from topoae.errors import ConfigError, StoreError
from topoae.layout import PatchLayout


class BlockDecoder:
    """Decode a latent dataset one block of grid rows at a time (shared with sampling).

    Block ``b`` covers grid rows ``[b * block_rows, min(H, (b + 1) * block_rows))``;
    every patch row is decoded in the same batches whatever the block, so a
    block's values do not depend on which other blocks are computed.
    """

    def __init__(
        self,
        ds: xr.Dataset,
        model: Any,
        *,
        force: bool = False,
        device: str = "cpu",
        batch: int | None = None,
        window: str | None = None,
    ) -> None:
        self.meta = meta = read_meta(ds)
        self.norm = norm = Normalisation.from_dict(meta["normalise"])
        self.cm = as_codec_model(model, normalise=norm)
        check_model(meta, self.cm, force=force)
        codec = meta["codec"]
        self.residual = meta.get("residual")
        if window is not None and window != codec["window"] and self.residual:
            raise ConfigError("cannot change the blending window of error-bounded latents")
        self.window = window or codec["window"]
        self.batch = int(batch or codec["batch"])
        self.dev = torch_device(device)
        self.cm.net.to(self.dev)
        h, w = meta["grid"]["shape"]
        self.layout = PatchLayout(h, w, meta["patch"], meta["stride"])
        self.block_rows = int(meta["block_rows"])
        self.n_blocks = math.ceil(h / self.block_rows)
        mu = ds["mu"].values
        if mu.dtype == np.uint8:
            mu = dequantize(mu, ds["mu_offset"].values, ds["mu_scale"].values)
        self.mu = np.asarray(mu, dtype=np.float32)
        self.logvar = None
        if "logvar" in ds.variables:
            lv = ds["logvar"].values
            if lv.dtype == np.uint8:
                lv = dequantize(lv, ds["logvar_offset"].values, ds["logvar_scale"].values)
            self.logvar = np.asarray(lv, dtype=np.float32)
        nr, nc = self.layout.n_rows, self.layout.n_cols
        if norm.mode == "patch":
            if "offset" not in ds.variables or "scale" not in ds.variables:
                raise StoreError("latent file with patch normalisation lacks offset/scale")
            self.offset = ds["offset"].values.astype(np.float64)
            self.scale = ds["scale"].values.astype(np.float64)
        else:
            self.offset = np.full((nr, nc), norm.zmin)
            self.scale = np.full((nr, nc), norm.zrange)
        self.mask = (ds["nan_mask"].values, ds["nan_mask_offsets"].values)
        if len(self.mask[1]) != self.n_blocks + 1:
            raise StoreError("latent file: NaN mask has the wrong number of blocks")
        if self.residual:
            for v in ("residual", "residual_offsets", "recon_hash"):
                if v not in ds.variables:
                    raise StoreError(f"error-bounded latent file lacks {v}")
            self.res = (ds["residual"].values, ds["residual_offsets"].values)
            self.hashes = ds["recon_hash"].values
        self._coords = grid_coords(ds, meta)
        # rows shared by two neighbouring blocks, per block boundary, plus room for two threads
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = 2 * (-(-self.layout.patch // self.layout.stride) + 1)
        self._lock = threading.Lock()
        self._warned = False
        if self.residual and self.cm.model_id != meta["model_id"]:
            self._warned = True  # one warning is enough: the bound cannot hold with another model
            warnings.warn(
                "decoding error-bounded latents with another model (--force): the "
                f"--max-error bound of {self.residual['max_error']:g} m does not hold",
                RuntimeWarning,
                stacklevel=3,
            )

    def block_span(self, b: int) -> tuple[int, int]:
        """Grid rows ``[lo, hi)`` of block ``b``."""
        lo = b * self.block_rows
        return lo, min(self.layout.height, lo + self.block_rows)

    def decode_row(self, k: int, z: np.ndarray) -> np.ndarray:
        """Patches of patch row ``k`` from latents ``z`` ``(n_cols, L)``, metres float64 ``(n_cols, P, P)``."""
        import torch

        outs = []
        with torch.inference_mode():
            for i in range(0, z.shape[0], self.batch):
                t = to_tensor(z[i : i + self.batch], self.dev)
                y = self.cm.net.decode(t)
                outs.append(
                    y.reshape(y.shape[0], self.layout.patch, self.layout.patch)
                    .float()
                    .cpu()
                    .numpy()
                )
        return denormalise(np.concatenate(outs), self.offset[k], self.scale[k])

    def _mu_row(self, k: int) -> np.ndarray:
        """Decoded patches of row ``k`` from the stored latents, cached: neighbouring blocks share rows."""
        with self._lock:
            hit = self._cache.get(k)
        if hit is not None:
            return hit
        rows = self.decode_row(k, self.mu[k])
        with self._lock:
            self._cache[k] = rows
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return rows

    def reconstruct(self, b: int, latents: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
        """Blended neural reconstruction of block ``b`` (float32 ``(rows, W)``), before residual and mask."""
        lo, hi = self.block_span(b)
        acc = OverlapAdd(self.layout, lo, hi, self.window)
        for k in self.layout.rows_touching(lo, hi):
            acc.add_row(k, self._mu_row(k) if latents is None else self.decode_row(k, latents(k)))
        return acc.result()

    def nan_mask(self, b: int) -> np.ndarray:
        """Boolean NaN mask of block ``b``."""
        lo, hi = self.block_span(b)
        return _res.decode_mask(_res.frame(*self.mask, b), (hi - lo, self.layout.width))

    def finish(self, b: int, recon: np.ndarray, *, residual: bool = True) -> np.ndarray:
        """Apply the stored residual (error-bounded files) and the NaN mask to a reconstruction."""
        out = recon
        if residual and self.residual:
            if _res.digest(recon) != int(self.hashes[b]) and not self._warned:
                self._warned = True
                warnings.warn(
                    "the decoder does not reproduce the encoder's reconstruction bit for "
                    "bit (other device or torch build?): the --max-error bound may be "
                    "exceeded by that difference",
                    RuntimeWarning,
                    stacklevel=2,
                )
            q = _res.decode_residual(_res.frame(*self.res, b), recon.shape)
            if self.residual.get("integer"):
                out = _res.apply_integer_residual(recon, q, float(self.residual["max_error"]))
            else:
                out = _res.apply_residual(recon, q, float(self.residual["step"]))
        out = out.copy() if out is recon else out
        out[self.nan_mask(b)] = np.nan
        return out

    def block(self, b: int) -> np.ndarray:
        """Final decoded block ``b``: reconstruction, residual, NaN mask."""
        return self.finish(b, self.reconstruct(b))

    def template(self, values: Any, *, leading: tuple[str, ...] = ()) -> xr.DataArray:
        """Wrap ``values`` (grid-shaped, optional leading dims) as the original grid's DataArray."""
        g = self.meta["grid"]
        dims = tuple(leading) + tuple(g["dims"])
        coords = {}
        for d in g["dims"]:
            coords[d] = xr.Variable((d,), self._coords[d], attrs=g["coord_attrs"].get(d, {}))
        attrs = {k: v for k, v in g["attrs"].items() if k != "grid_mapping"}  # the input's
        out = xr.DataArray(values, dims=dims, coords=coords, name=g["name"], attrs=attrs)
        if g.get("crs"):
            import rioxarray  # noqa: F401

            out = out.rio.set_spatial_dims(x_dim=g["dims"][1], y_dim=g["dims"][0]).rio.write_crs(
                g["crs"], grid_mapping_name="spatial_ref"
            )
        return out

    def assemble(self, fn: Callable[[int], np.ndarray], *, lazy: bool, lead: tuple[int, ...] = ()):
        """Stack ``fn(b)`` for every block along the row axis: numpy, or dask when ``lazy``."""
        h, w = self.meta["grid"]["shape"]
        if not lazy:
            out = np.empty(lead + (h, w), np.float32)
            for b in range(self.n_blocks):
                lo, hi = self.block_span(b)
                out[..., lo:hi, :] = fn(b)
            return out
        import dask
        import dask.array as da

        parts = []
        for b in range(self.n_blocks):
            lo, hi = self.block_span(b)
            parts.append(
                da.from_delayed(dask.delayed(fn)(b), shape=lead + (hi - lo, w), dtype=np.float32)
            )
        return da.concatenate(parts, axis=len(lead))


def provenance(meta: dict, **extra: Any) -> str:
    """JSON provenance attribute for decoded grids."""
    return json.dumps(
        {
            "decoded_by": f"topoae {__version__}",
            "model_id": meta["model_id"],
            "codec": meta["codec"],
            "normalise": meta["normalise"],
            "patch": meta["patch"],
            "max_error": meta["codec"]["max_error"],
            "integer_residual": bool((meta.get("residual") or {}).get("integer")),
            **extra,
        }
    )
