"""Lossless side streams of the codec: the error-bounded residual and the NaN mask.

Error-bounded mode
------------------
Given the original grid ``x`` and the neural reconstruction ``r`` (float32), the
residual ``x - r`` is quantised uniformly with step ``2 (E - delta)``::

    q = round((x - r) / step)            # integer, 0 wherever |x - r| < step / 2
    y = float32(r + q * step)            # what the decoder returns

so ``|x - y| <= E - delta + (float32 rounding of y) <= E`` on every cell; ``delta``
(:func:`safety_margin`) covers that rounding with room to spare. The encoder checks
the bound on every cell and corrects any cell that misses it.

Integer-valued input (GEBCO int16) is coded on the integer grid instead: around
``b = rint(r)`` with the odd step ``s = 2 floor(E) + 1`` (:func:`integer_step`)::

    q = round((x - b) / s)
    y = b + q * s                        # a whole number: exact in int16 and float32

so ``|x - y| <= floor(E)`` and the bound holds whatever dtype ``y`` is written in.

``q`` is stored as the smallest of: ``q`` or its 2-D Lorenzo difference in the
smallest integer type that holds it, compressed with zstd; ``q`` range-coded
with neighbourhood contexts (:mod:`topoae.codec.context_coder`), and (``.tae`` format 6)
the same coder primed with counts fitted on training tiles, each (``.tae`` format 7) with its
escapes as varints or as one Exp-Golomb frame, whichever is smaller; or (``.tae`` format 4,
grids of up to :data:`GOLOMB_MAX` cells) its Lorenzo difference in an Exp-Golomb code
(:mod:`topoae.codec.golomb`). The patch codec
writes one frame per block of rows (zstd only, its format 1), so a decoder can
stream the grid.

The guarantee assumes the decoder reproduces ``r`` (same model; differences
below ``E / 1024`` are absorbed, except where one moves ``rint(r)`` of the integer
residual by a metre): the codec stores a hash of ``r`` per block and warns when a
decoder does not reproduce it bit for bit.

Frames
------
A list of byte strings is stored as one uint8 array plus int64 offsets
(``offsets[i]:offsets[i+1]`` is frame ``i``), which fits NetCDF and Zarr alike.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from topoae.errors import ConfigError, StoreError

#: zstd level of the side streams. Measured on residual-like int8 fields (2-core CPU):
#: level 10 is ~10 % smaller than level 3 at 12 MB/s; levels 15+ fall below 1 MB/s.
ZSTD_LEVEL = 10

#: Residual frame codings: the quantised residual as is, or its 2-D Lorenzo
#: difference ``q[i,j] - q[i-1,j] - q[i,j-1] + q[i-1,j-1]`` (smaller where the
#: error field is smooth, i.e. at small bounds), both zstd-compressed; or the grid
#: range-coded with adaptive neighbourhood contexts (:mod:`topoae.codec.context_coder`,
#: 2-D grids only). The encoder keeps the smallest frame.
#: From format 4 (``.tae``), also the Lorenzo difference in an Exp-Golomb code
#: (:mod:`topoae.codec.golomb`): on a few dozen values of wide range, such as the offset
#: field's nodes, it costs a third less than zstd or the context coder (no frame header
#: and no learned statistics; the encoder tries it on grids of up to :data:`GOLOMB_MAX` cells).
#: From format 6, also the context coder primed with counts fitted on training tiles
#: (:func:`topoae.codec.context_coder.primed_counts`), smaller on sparse corrections.
#: From format 7, the context coder's frames with Exp-Golomb escapes (kinds 5 and 6:
#: :func:`topoae.codec.context_coder.encode_best`), where they are smaller.
PREDICTORS = ("none", "lorenzo", "context", "lorenzo-golomb", "context-primed",
              "context-golomb-escapes", "context-primed-golomb-escapes")
#: the context coder's frame kinds: kind -> (primed, golomb escapes)
CONTEXT_KINDS = {2: (False, False), 4: (True, False), 5: (False, True), 6: (True, True)}
_CONTEXT_KIND_OF = {v: k for k, v in CONTEXT_KINDS.items()}
GOLOMB_MAX = 1 << 16

_INT_TYPES: tuple[type[np.signedinteger], ...] = (np.int8, np.int16, np.int32, np.int64)


def _zstd():
    import zstandard

    return zstandard


@functools.lru_cache(maxsize=4)
def _dictionary(raw: bytes):
    """A zstd raw-content dictionary (built once per distinct ``raw``)."""
    zs = _zstd()
    return zs.ZstdCompressionDict(raw, dict_type=zs.DICT_TYPE_RAWCONTENT)


def compress(data: bytes, level: int = ZSTD_LEVEL, dictionary: bytes | None = None, *,
             magicless: bool = False) -> bytes:
    """zstd-compress ``data``; with ``dictionary`` (raw content, not named in the frame)
    against it, so the same bytes must be given to :func:`decompress`; ``magicless``: the
    frame without zstd's 4-byte magic number (:func:`decompress` must be told)."""
    zs = _zstd()
    if dictionary is None and not magicless:
        return zs.ZstdCompressor(level=level).compress(data)
    params = zs.ZstdCompressionParameters.from_level(
        level, format=zs.FORMAT_ZSTD1_MAGICLESS if magicless else zs.FORMAT_ZSTD1, write_dict_id=False)
    return zs.ZstdCompressor(compression_params=params, dict_data=(
        None if dictionary is None else _dictionary(dictionary))).compress(data)


def decompress(frame: bytes, dictionary: bytes | None = None, *, magicless: bool = False,
               max_size: int | None = None) -> bytes:
    """Inverse of :func:`compress`; raises :class:`StoreError` on corrupted input, and on a
    frame that would expand past ``max_size`` bytes (checked before it is expanded)."""
    zs = _zstd()
    try:
        d = None if dictionary is None else _dictionary(dictionary)
        fmt = {"format": zs.FORMAT_ZSTD1_MAGICLESS} if magicless else {}
        dctx = zs.ZstdDecompressor(dict_data=d, **fmt)
        if max_size is None:
            return dctx.decompress(frame)
        # the frame's declared size first: a few bytes may declare gigabytes (a damaged header)
        size = zs.get_frame_parameters(frame, **fmt).content_size
        if size == zs.CONTENTSIZE_UNKNOWN:  # no size declared: the output may fill max_size
            out = dctx.decompress(frame, max_output_size=max_size)
        elif size <= max_size:
            out = dctx.decompress(frame)
        else:
            out = None
    except Exception as exc:  # zstandard.ZstdError and friends
        raise StoreError(f"corrupted side stream ({exc})") from None
    if out is None or len(out) > max_size:
        raise StoreError(f"side stream expands past {max_size} bytes (damaged)")
    return out


def pack_frames(frames: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate byte frames into ``(uint8 data, int64 offsets of length len(frames)+1)``."""
    offsets = np.zeros(len(frames) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(f) for f in frames])
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    return data, offsets


def frame(data: np.ndarray, offsets: np.ndarray, i: int) -> bytes:
    """Frame ``i`` of a packed stream."""
    if not 0 <= i < len(offsets) - 1:
        raise StoreError(f"side stream has {len(offsets) - 1} frames, frame {i} asked for")
    a, b = int(offsets[i]), int(offsets[i + 1])
    if not 0 <= a <= b <= data.size:
        raise StoreError("corrupted side stream offsets")
    return bytes(np.asarray(data[a:b], dtype=np.uint8))


def safety_margin(max_error: float, max_abs: float) -> float:
    """``delta``: float32 spacing at the largest magnitude the output reaches, plus ``E / 1024``.

    The spacing covers the rounding of the decoder's float32 output; the ``E / 1024``
    (0.1 % of the rate) absorbs last-bit differences of a decoder that does not
    reproduce the encoder's reconstruction exactly (another CPU, thread count).
    """
    return float(np.spacing(np.float32(abs(max_abs) + 2.0 * max_error))) + max_error / 1024


def residual_step(max_error: float, max_abs: float) -> float:
    """Quantisation step ``2 (E - delta)`` for a bound ``E`` on values up to ``max_abs``.

    Raises
    ------
    ConfigError
        If ``E`` is not positive or is below the float32 resolution of the data.
    """
    if not (np.isfinite(max_error) and max_error > 0):
        raise ConfigError(f"--max-error must be a positive number of metres, got {max_error}")
    delta = safety_margin(max_error, max_abs)
    if max_error <= 4 * (delta - max_error / 1024):
        raise ConfigError(
            f"--max-error {max_error:g} m is below the float32 resolution of "
            f"values up to {max_abs:g} m ({delta:.2g} m)"
        )
    return 2.0 * (max_error - delta)


def apply_residual(recon: np.ndarray, q: np.ndarray, step: float) -> np.ndarray:
    """Corrected grid ``float32(recon + q * step)``; the decoder's exact arithmetic."""
    return (recon.astype(np.float64) + q.astype(np.float64) * step).astype(np.float32)


def quantize_residual(
    x: np.ndarray, recon: np.ndarray, max_error: float, step: float
) -> np.ndarray:
    """Integer residual ``q`` with ``|x - apply_residual(recon, q, step)| <= max_error``.

    NaN cells of ``x`` get ``q = 0`` (the NaN mask restores them). Returns int64.
    """
    valid = np.isfinite(x)
    d = np.where(valid, x.astype(np.float64) - recon.astype(np.float64), 0.0)
    q = np.rint(d / step).astype(np.int64)
    y = apply_residual(recon, q, step).astype(np.float64)
    err = np.abs(np.where(valid, x.astype(np.float64) - y, 0.0))
    bad = err > max_error
    if np.any(bad):  # float32 rounding at a tie: the neighbouring level is within the bound
        for shift in (-1, 1):
            alt = q[bad] + shift
            y = apply_residual(recon[bad], alt, step)
            ok = np.abs(x[bad].astype(np.float64) - y) <= max_error
            idx = np.flatnonzero(bad)[ok]
            q.flat[idx] = alt[ok]
            bad.flat[idx] = False
        if np.any(bad):
            raise ConfigError(
                f"cannot meet --max-error {max_error:g} m in float32 on "
                f"{int(bad.sum())} cells; use a larger bound"
            )
    return q


def integer_step(max_error: float) -> int:
    """Odd step ``2 floor(E) + 1`` of the integer residual (1, lossless, for ``E < 1``)."""
    return 2 * int(np.floor(max_error)) + 1


def quantize_integer_residual(x: np.ndarray, recon: np.ndarray, max_error: float) -> np.ndarray:
    """Integer residual of integer-valued ``x`` around ``rint(recon)``: ``|x - y| <= floor(E)``.

    NaN cells of ``x`` get ``q = 0``. Returns int64.
    """
    valid = np.isfinite(x)
    d = np.where(valid, x.astype(np.float64), 0.0) - np.rint(recon.astype(np.float64))
    return np.where(valid, np.rint(d / integer_step(max_error)), 0).astype(np.int64)


def apply_integer_residual(recon: np.ndarray, q: np.ndarray, max_error: float) -> np.ndarray:
    """Corrected grid ``rint(recon) + q * step`` (whole numbers), float32."""
    y = np.rint(recon.astype(np.float64)) + q.astype(np.float64) * integer_step(max_error)
    return y.astype(np.float32)


def encode_ints(q: np.ndarray, level: int = ZSTD_LEVEL) -> bytes:
    """Compress an integer array: one type byte, then zstd of the smallest signed type."""
    q = np.asarray(q)
    lo, hi = (int(q.min()), int(q.max())) if q.size else (0, 0)
    for code, t in enumerate(_INT_TYPES):
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return bytes([code]) + compress(np.ascontiguousarray(q, dtype=t).tobytes(), level)
    raise ConfigError("residual does not fit in 64-bit integers")  # pragma: no cover


def decode_ints(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_ints` (returns the stored integer type)."""
    if not blob or blob[0] >= len(_INT_TYPES):
        raise StoreError("corrupted residual frame")
    raw = decompress(blob[1:])
    t = np.dtype(_INT_TYPES[blob[0]])
    if len(raw) != t.itemsize * int(np.prod(shape)):
        raise StoreError(f"residual frame holds {len(raw)} bytes, expected {shape} of {t}")
    return np.frombuffer(raw, dtype=t).reshape(shape)


def lorenzo(q: np.ndarray) -> np.ndarray:
    """2-D Lorenzo difference of an integer array (zero outside), int64."""
    q = np.asarray(q, dtype=np.int64)
    return np.diff(np.diff(q, axis=0, prepend=0), axis=1, prepend=0)


def unlorenzo(d: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lorenzo` (exact, integer cumulative sums)."""
    return np.cumsum(np.cumsum(np.asarray(d, dtype=np.int64), axis=0), axis=1)


def encode_residual(q: np.ndarray, level: int = ZSTD_LEVEL, *, zstd_only: bool = False) -> bytes:
    """One residual frame: a coding byte (:data:`PREDICTORS`), then the smallest of
    :func:`encode_ints` of ``q``, of its Lorenzo difference and, unless ``zstd_only`` (the
    patch codec's format 1), of :func:`topoae.codec.context_coder.encode` of ``q`` (plain and
    primed: ``.tae`` format 6 on; each with the smaller escape code, format 7 on) and of the
    Exp-Golomb code of its Lorenzo difference (grids of up to :data:`GOLOMB_MAX` cells)."""
    q = np.asarray(q)
    plain = encode_ints(q, level)
    if q.ndim != 2 or q.size == 0:
        return bytes([0]) + plain
    d = lorenzo(q)
    frames = [bytes([0]) + plain, bytes([1]) + encode_ints(d, level)]
    if not zstd_only:
        from topoae.codec import context_coder, golomb

        if int(q.min()) > -context_coder.LIMIT and int(q.max()) < context_coder.LIMIT:
            for primed in (False, True):
                g, frame = context_coder.encode_best(q, primed=primed)
                frames.append(bytes([_CONTEXT_KIND_OF[(primed, g)]]) + frame)
        if q.size <= GOLOMB_MAX and int(d.min()) > -golomb.LIMIT and int(d.max()) < golomb.LIMIT:
            frames.append(bytes([3]) + golomb.encode(d))
    return min(frames, key=len)


def decode_residual(blob: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`encode_residual` (int64)."""
    if not blob:
        raise StoreError("corrupted residual frame (empty)")
    if blob[0] >= len(PREDICTORS):
        raise StoreError(f"unknown residual frame kind {blob[0]}: the file is damaged or was "
                         "written by a newer topoae")
    if blob[0] in CONTEXT_KINDS:
        from topoae.codec import context_coder

        if len(shape) != 2:
            raise StoreError("corrupted residual frame (a context-coded frame of a non-grid)")
        primed, golomb_escapes = CONTEXT_KINDS[blob[0]]
        return context_coder.decode(blob[1:], (int(shape[0]), int(shape[1])), primed=primed,
                                    golomb_escapes=golomb_escapes)
    if blob[0] == 3:
        from topoae.codec import golomb

        dims = [int(v) for v in shape]
        if len(dims) != 2 or min(dims) < 0 or dims[0] * dims[1] > GOLOMB_MAX:
            raise StoreError("corrupted residual frame (an Exp-Golomb frame of this shape)")
        return unlorenzo(golomb.decode(blob[1:], dims[0] * dims[1]).reshape(dims))
    ints = decode_ints(blob[1:], shape).astype(np.int64)
    return unlorenzo(ints) if blob[0] == 1 else ints


def encode_mask(mask: np.ndarray, level: int = ZSTD_LEVEL) -> bytes:
    """Compress a boolean mask (bit-packed, then zstd)."""
    return compress(np.packbits(np.asarray(mask, dtype=bool), axis=None).tobytes(), level)


def decode_mask(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_mask`."""
    bits = np.frombuffer(decompress(blob), dtype=np.uint8)
    n = int(np.prod(shape))
    if bits.size != (n + 7) // 8:
        raise StoreError(f"NaN mask frame holds {bits.size} bytes, expected {(n + 7) // 8}")
    return np.unpackbits(bits, count=n).astype(bool).reshape(shape)


def digest(a: np.ndarray) -> int:
    """64-bit hash of an array's bytes (to check that a decoder reproduces a reconstruction)."""
    h = hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=8)
    return int.from_bytes(h.digest(), "little")
