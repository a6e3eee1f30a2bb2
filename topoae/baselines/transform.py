"""Learned-free baselines in NumPy/SciPy: PCA and zonal DCT per patch, area downsampling.

PCA and DCT code each ``patch`` x ``patch`` tile (the region padded by
mirroring to whole tiles, padding paid for in bytes) with its first ``k``
coefficients; coefficient 0 is the patch mean (PCA) or the DC term (DCT).
Coefficients are stored as float32 or uniformly quantised to 8/16 bits per
coefficient column (a float32 low end and step per column are side
information; the mean/DC column keeps at least 16 bits). No entropy coding:
the stream is raw, as topoae's uint8 latents are.

The PCA basis is fitted on other patches (:meth:`PCA.fit`) and, like topoae's
model weights, is not counted in the stream; results say what it was fitted on.

At a target ratio these baselines pick their best mode: for each bit depth the
largest ``k`` (or downsampled grid) that fits the byte budget, and keep the one
with the lowest RMSE.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from topoae.baselines.base import Baseline, Encoded, _byte_budget, _check_grid, frame_size
from topoae.errors import ConfigError, InputError

_PHEAD = struct.Struct("<HHB")  # patch, k, bits
_SIDE = struct.Struct("<ff")  # low end, step of one quantised column
BITS = (8, 16, 32)


def to_patches(z: np.ndarray, patch: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Cut a 2-D grid into ``(N, patch, patch)`` tiles, mirroring it up to whole tiles."""
    h, w = z.shape
    nr, nc = -(-h // patch), -(-w // patch)
    padded = np.pad(z, ((0, nr * patch - h), (0, nc * patch - w)), mode="symmetric")
    tiles = padded.reshape(nr, patch, nc, patch).transpose(0, 2, 1, 3)
    return tiles.reshape(nr * nc, patch, patch), (nr, nc)


def from_patches(tiles: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`to_patches`, cropped to ``shape``."""
    nr, nc = grid
    p = tiles.shape[-1]
    full = tiles.reshape(nr, nc, p, p).transpose(0, 2, 1, 3).reshape(nr * p, nc * p)
    return full[: shape[0], : shape[1]]


def quantise_columns(c: np.ndarray, bits: int) -> bytes:
    """Raw bytes of a coefficient matrix ``(N, k)`` at ``bits`` (column 0 at >= 16 bits)."""
    if bits == 32:
        return c.astype("<f4").tobytes()
    out = []
    for j in range(c.shape[1]):
        b = max(bits, 16) if j == 0 else bits
        col = c[:, j].astype(np.float64)
        lo = np.float32(col.min())
        top = (1 << b) - 1
        step = np.float32(max(float(col.max()) - float(lo), 1e-12) / top)
        q = np.clip(np.rint((col - float(lo)) / float(step)), 0, top)
        out.append(_SIDE.pack(lo, step) + q.astype("<u2" if b == 16 else "u1").tobytes())
    return b"".join(out)


def dequantise_columns(buf: bytes, n: int, k: int, bits: int) -> np.ndarray:
    """Inverse of :func:`quantise_columns` for ``n`` rows and ``k`` columns."""
    if bits == 32:
        return np.frombuffer(buf, "<f4", count=n * k).reshape(n, k).astype(np.float64)
    c = np.empty((n, k))
    pos = 0
    for j in range(k):
        b = max(bits, 16) if j == 0 else bits
        lo, step = _SIDE.unpack_from(buf, pos)
        pos += _SIDE.size
        dt = "<u2" if b == 16 else "u1"
        q = np.frombuffer(buf, dt, count=n, offset=pos)
        pos += n * (b // 8)
        c[:, j] = lo + q.astype(np.float64) * step
    return c


def coded_size(n: int, k: int, bits: int) -> int:
    """Bytes of :func:`quantise_columns` output for ``n`` x ``k`` coefficients."""
    if bits == 32:
        return 4 * n * k
    first = _SIDE.size + n * max(bits, 16) // 8
    return first + (k - 1) * (_SIDE.size + n * bits // 8) if k else 0


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~np.isnan(a)
    return float(np.sqrt(np.mean((a[ok].astype(np.float64) - b[ok]) ** 2)))


class _PatchTransform(Baseline):
    """Shared machinery of PCA and DCT: tiling, coefficient coding, best-mode choice."""

    requires = ()

    def __init__(self, patch: int = 96) -> None:
        if patch < 2 or patch > 65535:
            raise ConfigError(f"patch must be in 2..65535, got {patch}")
        self.patch = patch

    def max_k(self) -> int:
        raise NotImplementedError

    def _forward(self, tiles: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def _inverse(self, coef: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _encode(self, z: np.ndarray, *, k: int, bits: int) -> bytes:
        k, bits = int(k), int(bits)
        if bits not in BITS:
            raise ConfigError(f"bits must be one of {BITS}, got {bits}")
        if not 1 <= k <= self.max_k():
            raise ConfigError(f"{self.name}: k must be in 1..{self.max_k()}, got {k}")
        tiles, _ = to_patches(z.astype(np.float64), self.patch)
        coef = self._forward(tiles, k)
        return _PHEAD.pack(self.patch, k, bits) + quantise_columns(coef, bits)

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        patch, k, bits = _PHEAD.unpack_from(payload, 0)
        if patch != self.patch:
            raise InputError(f"stream has patch {patch}, this {self.name} coder uses {self.patch}")
        nr, nc = -(-shape[0] // patch), -(-shape[1] // patch)
        coef = dequantise_columns(payload[_PHEAD.size :], nr * nc, k, bits)
        return from_patches(self._inverse(coef), (nr, nc), shape)

    def _k_for(self, budget: float, n: int, bits: int, fixed: int) -> int:
        k = 0
        while k < self.max_k() and fixed + _PHEAD.size + coded_size(n, k + 1, bits) <= budget:
            k += 1
        return k

    def at_ratio(self, z: Any, ratio: float, **_: Any) -> Encoded:
        a, budget = _byte_budget(z, ratio)
        n = math.prod(-(-s // self.patch) for s in a.shape)
        fixed = frame_size(a)
        best: tuple[float, Encoded] | None = None
        for bits in BITS:
            k = self._k_for(budget, n, bits, fixed)
            if k == 0:
                continue
            blob = self.encode(a, k=k, bits=bits)
            err = _rmse(a, self.decode(blob))
            if best is None or err < best[0]:
                best = (err, Encoded(blob, {"k": k, "bits": bits}, a.shape, ratio))
        if best is None:
            blob = self.encode(a, k=1, bits=8)
            return Encoded(blob, {"k": 1, "bits": 8}, a.shape, ratio, reached=False)
        return best[1]


class DCT(_PatchTransform):
    """Zonal DCT: the ``k`` x ``k`` lowest-frequency DCT-II coefficients of each patch."""

    name = "dct"
    description = "zonal DCT per 96x96 patch"

    def max_k(self) -> int:
        return self.patch * self.patch

    def _zone(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        # first k coefficients in zig-zag-free "square shell" order: shell s = max(u, v)
        p = self.patch
        u, v = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        order = np.lexsort((v.ravel(), u.ravel(), np.maximum(u, v).ravel()))[:k]
        return u.ravel()[order], v.ravel()[order]

    def _forward(self, tiles: np.ndarray, k: int) -> np.ndarray:
        from scipy.fft import dctn

        u, v = self._zone(k)
        return dctn(tiles, type=2, norm="ortho", axes=(1, 2))[:, u, v]

    def _inverse(self, coef: np.ndarray) -> np.ndarray:
        from scipy.fft import idctn

        u, v = self._zone(coef.shape[1])
        full = np.zeros((coef.shape[0], self.patch, self.patch))
        full[:, u, v] = coef
        return idctn(full, type=2, norm="ortho", axes=(1, 2))


class PCA(_PatchTransform):
    """Patch mean plus the leading principal components of mean-removed patches."""

    name = "pca"
    description = "PCA per 96x96 patch (mean + components)"

    def __init__(self, patch: int = 96, components: int = 400, basis: np.ndarray | None = None):
        super().__init__(patch)
        self.components = components
        self.basis = basis  # (P*P, m) orthonormal columns
        self.fitted_on: str | None = None if basis is None else "given"

    def fit(
        self, tiles: np.ndarray, *, max_patches: int = 2000, seed: int = 0, label: str = "patches"
    ) -> PCA:
        """Fit the basis on ``(N, P, P)`` patches (NaN patches dropped; at most ``max_patches``).

        ``label`` says where the patches came from; it is reported with every result.
        """
        t = np.asarray(tiles)
        if t.ndim != 3 or t.shape[1:] != (self.patch, self.patch):
            raise InputError(f"expected (N, {self.patch}, {self.patch}) patches, got {t.shape}")
        idx = self._pick(~np.isnan(t).any(axis=(1, 2)), max_patches, seed)
        return self._fit_rows(t[idx].reshape(len(idx), -1), label)

    def fit_grid(
        self, z: Any, *, stride: int | None = None, max_patches: int = 2000, label: str = "a grid"
    ) -> PCA:
        """Fit on the NaN-free ``patch`` x ``patch`` windows of a 2-D grid, ``stride`` apart.

        ``stride`` defaults to a quarter patch: overlapping windows give a small
        grid enough samples for the number of components. Only the (at most
        ``max_patches``, randomly chosen) windows used are copied.
        """
        a = _check_grid(z)
        p = self.patch
        if min(a.shape) < p:
            raise InputError(f"grid {a.shape} is smaller than one {p}x{p} patch")
        s = max(1, stride or p // 4)
        view = np.lib.stride_tricks.sliding_window_view
        nan_free = ~view(np.isnan(a), (p, p))[::s, ::s].any(axis=(2, 3))
        idx = self._pick(nan_free.ravel(), max_patches, 0)
        rows, cols = np.unravel_index(idx, nan_free.shape)
        x = np.stack(
            [
                a[i * s : i * s + p, j * s : j * s + p].ravel()
                for i, j in zip(rows, cols, strict=True)
            ]
        )
        return self._fit_rows(x, f"{label}, stride {s}")

    @staticmethod
    def _pick(ok: np.ndarray, max_patches: int, seed: int) -> np.ndarray:
        idx = np.flatnonzero(ok)
        if len(idx) < 2:
            raise InputError("PCA needs at least 2 NaN-free patches to fit")
        if len(idx) > max_patches:
            idx = np.sort(np.random.default_rng(seed).choice(idx, max_patches, replace=False))
        return idx

    def _fit_rows(self, x: np.ndarray, label: str) -> PCA:
        x = x.astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        # Principal directions from the (N, N) Gram matrix: N patches << P*P cells, so this is
        # far cheaper than an SVD of x; directions with negligible variance are dropped.
        lam, u = np.linalg.eigh(x @ x.T)
        order = np.argsort(lam)[::-1]
        lam, u = lam[order], u[:, order]
        keep = min(self.components, int(np.sum(lam > lam[0] * 1e-10)))
        basis = x.T @ (u[:, :keep] / np.sqrt(lam[:keep]))
        q, r = np.linalg.qr(basis)  # re-orthonormalise against round-off
        self.basis = q * np.sign(np.diag(r))
        self.fitted_on = f"{label} ({len(x)} patches)"
        return self

    def max_k(self) -> int:
        return 1 + (self.basis.shape[1] if self.basis is not None else self.components)

    def _forward(self, tiles: np.ndarray, k: int) -> np.ndarray:
        if self.basis is None:
            raise ConfigError("PCA baseline has no basis: call fit() first")
        x = tiles.reshape(len(tiles), -1)
        mean = x.mean(axis=1, keepdims=True)
        return np.hstack([mean, (x - mean) @ self.basis[:, : k - 1]])

    def _inverse(self, coef: np.ndarray) -> np.ndarray:
        if self.basis is None:
            raise ConfigError("PCA baseline has no basis: call fit() first")
        k = coef.shape[1]
        x = coef[:, :1] + coef[:, 1:] @ self.basis[:, : k - 1].T
        return x.reshape(len(coef), self.patch, self.patch)

    def at_ratio(self, z: Any, ratio: float, **kw: Any) -> Encoded:
        if self.basis is None:
            raise ConfigError("the PCA baseline has no basis: fit() it on other patches first")
        enc = super().at_ratio(z, ratio, **kw)
        info = {"basis_fitted_on": self.fitted_on, "components_available": self.basis.shape[1]}
        return Encoded(enc.blob, enc.setting, enc.shape, enc.target_ratio, enc.reached, info)


_DHEAD = struct.Struct("<IIB")  # rows, cols, bits of the small grid


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` weights averaging each output cell's footprint (fractional overlaps)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    j = np.arange(n_in)
    lo = np.maximum(edges[:-1, None], j[None, :])
    hi = np.minimum(edges[1:, None], j[None, :] + 1)
    return np.clip(hi - lo, 0, None) / (n_in / n_out)


class Downsample(Baseline):
    """Area-average downsampling, stored raw, restored with cubic-spline interpolation."""

    name = "downsample"
    description = "area downsample + cubic-spline upsample"

    def _encode(self, z: np.ndarray, *, rows: int, cols: int, bits: int) -> bytes:
        rows, cols, bits = int(rows), int(cols), int(bits)
        if bits not in (16, 32):
            raise ConfigError(f"downsample bits must be 16 or 32, got {bits}")
        if not (1 <= rows <= z.shape[0] and 1 <= cols <= z.shape[1]):
            raise ConfigError(f"downsampled grid {rows}x{cols} must fit in {z.shape}")
        small = (
            _area_matrix(rows, z.shape[0]) @ z.astype(np.float64) @ _area_matrix(cols, z.shape[1]).T
        )
        body = quantise_columns(small.reshape(-1, 1), bits)
        return _DHEAD.pack(rows, cols, bits) + body

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        from scipy.ndimage import zoom

        rows, cols, bits = _DHEAD.unpack_from(payload, 0)
        small = dequantise_columns(payload[_DHEAD.size :], rows * cols, 1, bits).reshape(rows, cols)
        if (rows, cols) == shape:
            return small
        out = zoom(
            small, (shape[0] / rows, shape[1] / cols), order=3, mode="nearest", grid_mode=True
        )
        if out.shape != shape:  # float rounding of the zoom factors; never more than one cell
            out = np.pad(
                out,
                [(0, max(0, s - o)) for s, o in zip(shape, out.shape, strict=True)],
                mode="edge",
            )[: shape[0], : shape[1]]
        return out

    def at_ratio(self, z: Any, ratio: float, **_: Any) -> Encoded:
        a, budget = _byte_budget(z, ratio)
        overhead = frame_size(a) + _DHEAD.size
        best: tuple[float, Encoded] | None = None
        for bits in (16, 32):
            per = bits // 8
            avail = budget - overhead - (coded_size(1, 1, bits) - per)
            if avail < per:
                continue
            f = math.sqrt(a.size * per / avail)
            rows = min(a.shape[0], max(1, math.floor(a.shape[0] / f)))
            cols = min(a.shape[1], max(1, math.floor(a.shape[1] / f)))
            while rows * cols * per > avail and (rows > 1 or cols > 1):
                if rows / a.shape[0] >= cols / a.shape[1] and rows > 1:
                    rows -= 1
                else:
                    cols -= 1
            blob = self.encode(a, rows=rows, cols=cols, bits=bits)
            if len(blob) > budget:
                continue
            err = _rmse(a, self.decode(blob))
            if best is None or err < best[0]:
                setting = {"rows": rows, "cols": cols, "bits": bits}
                info = {"factor": math.sqrt(a.size / (rows * cols))}
                best = (err, Encoded(blob, setting, a.shape, ratio, info=info))
        if best is None:
            blob = self.encode(a, rows=1, cols=1, bits=16)
            return Encoded(blob, {"rows": 1, "cols": 1, "bits": 16}, a.shape, ratio, reached=False)
        return best[1]
