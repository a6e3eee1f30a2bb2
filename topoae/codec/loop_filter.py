"""The loop filter: a linear correction of each tile's synthesis, fitted by the encoder.

The synthesis transform leaves errors that a small linear filter of its own output removes
in part (a slight over- or under-smoothing, a mean offset; up to 10 % of the RMSE on smooth
open-ocean tiles, 1–3 % on rugged ones, measured on held-out 15″ tiles). The encoder knows
the original, so it fits, per tile, the least-squares filter

    x' = x + b + Σ_d w_d · (x[p + d] + x[p − d] − 2·x[p])

over the offset pairs ``±d`` of a 3×3, 5×5 or 7×7 window (radius 1, 2 or 3: 4, 12 or 24
pairs; point-symmetric, so constants pass unchanged and the filter cannot shift the terrain)
plus a bias ``b``, on the network's normalised output ``x``, using the cells whose error is
within the outlier step (the sparse corrections take the others). It keeps the radius, or no
filter, that the rate–distortion trade of the tile's quality level says pays best for its
coefficients (:func:`fit`): the small windows where bytes are scarce.

Coefficients are integers in units of 2^-:data:`FRAC_BITS`, so the decoder applies exactly
the filter the encoder measured; :func:`apply` sums in float64 in a fixed order (no BLAS),
the same on every machine. One stream, ``"filter"``, holds the file's filters: two bits per
tile in raster order (0: none, else the radius; ``packbits``), then the kept tiles'
coefficients (the bias, then the pairs within the radius, in :data:`OFFSETS` order) in one
Exp-Golomb frame (:mod:`topoae.codec.golomb`). Files without the stream (formats before 7, or nothing kept)
decode without a filter. The stream has no check of its own: the ``.tae`` file's CRC (and a
Zarr store's per-stream CRC) covers it.
"""

from __future__ import annotations

import numpy as np

from topoae.codec import golomb
from topoae.errors import StoreError

#: the window's half width in cells (7×7)
RADIUS = 3
#: coefficients are integers in units of 2**-FRAC_BITS
FRAC_BITS = 10
#: the offsets ``d`` of the half plane; each stands for the pair ``±d``
OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (di, dj) for di in range(RADIUS + 1) for dj in range(-RADIUS, RADIUS + 1) if (di, dj) > (0, 0))
#: coefficients per filter: the bias, then one per offset pair
N_COEFS = 1 + len(OFFSETS)
#: the encoder fits on every other band of FIT_BAND rows (one latent row: every phase of the
#: synthesis' stride-2 upsampling is seen; every other single row biased the fit). Its
#: choice, not part of the format
FIT_BAND = 16
#: the largest coefficient magnitude a file may hold (a fitted filter stays far below)
LIMIT = 1 << 24
#: each offset pair's Chebyshev radius; a filter of radius r uses the pairs within r
_REACH = np.array([max(abs(di), abs(dj)) for di, dj in OFFSETS])
#: the coefficients a filter of radius r (1..RADIUS) holds: the bias, then its pairs
SUBSETS = {r: np.concatenate([[0], 1 + np.flatnonzero(np.less_equal(_REACH, r))]) for r in range(1, RADIUS + 1)}


def radius(q: np.ndarray) -> int:
    """The smallest radius (1..RADIUS) holding every nonzero coefficient of ``q``."""
    nz = _REACH[np.flatnonzero(q[1:])]
    return int(max(1, nz.max())) if nz.size else 1


def inner(xb: np.ndarray) -> np.ndarray:
    """The tile itself: ``xb`` without its RADIUS cells of border (a view)."""
    return xb[RADIUS:-RADIUS, RADIUS:-RADIUS]


def _terms(xb: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """The filter's inputs on the inner cells of ``xb`` (the tile with RADIUS cells of border),
    on the inner rows ``rows``."""
    r = RADIUS
    w = xb.shape[1] - 2 * r
    x64 = xb.astype(np.float64)
    x2 = 2.0 * x64[r + rows, r:r + w]
    out = []
    for di, dj in OFFSETS:
        t = np.add(x64[r + di + rows, r + dj:r + dj + w], x64[r - di + rows, r - dj:r - dj + w])
        t -= x2
        out.append(t)
    return out


def apply(xb: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The filtered tile (float32, ``xb`` without its border) for coefficients ``q``.

    Float64 element-wise operations in a fixed order: the same bits on every machine."""
    r = RADIUS
    h, w = xb.shape[0] - 2 * r, xb.shape[1] - 2 * r
    x64 = xb.astype(np.float64)
    x = x64[r:r + h, r:r + w]
    unit = float(1 << FRAC_BITS)
    acc = np.full((h, w), q[0] / unit)
    tmp = np.empty((h, w))
    x2 = 2.0 * x  # (exact: a power of two)
    for k, (di, dj) in enumerate(OFFSETS, start=1):
        if q[k]:
            np.add(x64[r + di:r + di + h, r + dj:r + dj + w], x64[r - di:r - di + h, r - dj:r - dj + w], out=tmp)
            tmp -= x2
            tmp *= q[k] / unit
            acc += tmp
    return (x + acc).astype(np.float32)


def fit(xb: np.ndarray, target: np.ndarray, use: np.ndarray, lam: float) -> np.ndarray | None:
    """Coefficients that bring ``xb``'s inner cells closest to ``target`` on the cells ``use``
    (both on the network's normalised scale), or None when the filter does not pay.

    It pays when ``lam`` (bits per squared normalised unit, the level's trade-off) times
    the drop of the squared error exceeds the coefficients' bits; both the fit and that drop
    are measured on every other band of :data:`FIT_BAND` rows (the drop scaled to the tile)."""
    h = use.shape[0]
    rows = np.flatnonzero((np.arange(h) // FIT_BAND) % 2 == 0)  # half the cost, the same filter
    usable = int(use.sum())
    use = use[rows]
    if int(use.sum()) < 4 * N_COEFS:
        return None
    share = usable / int(use.sum())  # the drop measured on the bands, scaled to the tile
    x = inner(xb).astype(np.float64)
    t = (target - x)[rows][use]
    f = np.empty((N_COEFS, t.size))  # one row per input: contiguous writes
    f[0] = 1.0
    for k, term in enumerate(_terms(xb, rows), start=1):
        f[k] = term[use]
    # the normal equations (25×25; each radius a sub-system): the encoder's choice only, the
    # decoder never solves them
    gram, rhs = f @ f.T, f @ t
    best, best_score = None, 0.0
    for sub in SUBSETS.values():
        w = np.linalg.lstsq(gram[np.ix_(sub, sub)], rhs[sub], rcond=None)[0]
        q = np.zeros(N_COEFS, dtype=np.int64)
        q[sub] = np.clip(np.rint(w * (1 << FRAC_BITS)), -LIMIT + 1, LIMIT - 1)
        if not q.any():
            continue
        v = q / float(1 << FRAC_BITS)
        gain = float(2.0 * v @ rhs - v @ gram @ v)  # the drop of Σ t² when t becomes t − f·v
        stored = q[SUBSETS[radius(q)]]  # (a radius whose outer pairs round to 0 is stored smaller)
        bits = min(golomb.cost_bits(stored, k) for k in range(golomb.MAX_K + 1)) + 2
        score = lam * gain * share - bits
        if score > best_score:
            best, best_score = q, score
    return best


def pack(filters: list[np.ndarray | None]) -> bytes | None:
    """The ``"filter"`` stream for the tiles' filters in raster order (None: no tile keeps one)."""
    if all(q is None for q in filters):
        return None
    codes = np.array([0 if q is None else radius(q) for q in filters], dtype=np.uint8)
    bits = np.unpackbits(codes[:, None], axis=1)[:, -2:].reshape(-1)  # two bits a tile
    kept = [q[SUBSETS[radius(q)]] for q in filters if q is not None]
    return np.packbits(bits).tobytes() + golomb.encode(np.concatenate(kept))


def unpack(blob: bytes, tiles: int) -> list[np.ndarray | None]:
    """Inverse of :func:`pack` for a file of ``tiles`` tiles; a damaged stream is a StoreError."""
    nf = (2 * tiles + 7) // 8
    if len(blob) <= nf:
        raise StoreError("the loop-filter stream is truncated or damaged")
    bits = np.unpackbits(np.frombuffer(blob[:nf], dtype=np.uint8))
    if bits[2 * tiles:].any():
        raise StoreError("the loop-filter stream is damaged")
    codes = 2 * bits[0:2 * tiles:2].astype(np.int64) + bits[1:2 * tiles:2]
    if not codes.any():  # (two bits hold no radius past 3)
        raise StoreError("the loop-filter stream is damaged")
    sizes = [SUBSETS[int(c)].size for c in codes if c]
    flat = golomb.decode(blob[nf:], int(sum(sizes)))
    if np.abs(flat).max() >= LIMIT:
        raise StoreError("the loop-filter stream is damaged")
    out: list[np.ndarray | None] = []
    at = 0
    for c in codes:
        if not c:
            out.append(None)
            continue
        q = np.zeros(N_COEFS, dtype=np.int64)
        sub = SUBSETS[int(c)]
        q[sub] = flat[at:at + sub.size]
        at += sub.size
        out.append(q)
    return out
