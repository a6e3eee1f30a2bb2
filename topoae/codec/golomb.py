"""Exp-Golomb coding of small integer arrays (the offset field's nodes, short side streams).

zstd and the adaptive context coder (:mod:`topoae.codec.context_coder`) pay a fixed
cost per frame (a zstd frame header, a 4-byte hash, 32-bit range-coder words) and learn
their statistics from the data; on a few dozen values of a wide range, such as the
offset-field nodes of a tile (block means differing by hundreds of metres), that costs
more than the values. An Exp-Golomb code of order ``k`` needs no statistics: each
value ``v`` is zig-zag mapped to ``u ≥ 0`` (0, −1, 1, −2, … → 0, 1, 2, 3, …), then
``m = (u >> k) + 1`` is written in Elias-gamma form (as many zeros as ``m`` has bits
after its leading one, then ``m``), then the ``k`` low bits of ``u``. The encoder picks
the ``k`` giving the fewest bits and stores it in the first byte.

Frame: ``k`` (1 byte), then the codewords, most significant bit first, zero-padded to
whole bytes. Integer arithmetic only, so every machine decodes the same values.
"""

from __future__ import annotations

import numpy as np

from topoae.errors import StoreError

#: the largest ``k`` tried; also the bound of a valid frame's first byte
MAX_K = 40
#: magnitudes must stay below this (the codeword of ``m`` and ``k`` bits fits 64 bits)
LIMIT = 1 << 40


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1).astype(np.int64)


def _bit_length(a: np.ndarray) -> np.ndarray:
    """Bits of each positive int64 (exact: no float logarithm)."""
    n = np.zeros(a.shape, dtype=np.int64)
    a = a.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        big = a >= (1 << shift)
        n += big * shift
        a = np.where(big, a >> shift, a)
    return n + 1


def cost_bits(values: np.ndarray, k: int) -> int:
    """Bits of the codewords of ``values`` at order ``k`` (without the frame's byte)."""
    u = _zigzag(np.asarray(values, dtype=np.int64).reshape(-1))
    return int((2 * _bit_length((u >> k) + 1) - 1 + k).sum())


def encode(values: np.ndarray) -> bytes:
    """Frame of an integer array (any shape: the decoder is given the count)."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size and (int(v.min()) <= -LIMIT or int(v.max()) >= LIMIT):
        raise ValueError("Exp-Golomb frames take magnitudes below 2**40")
    k = min(range(MAX_K + 1), key=lambda j: cost_bits(v, j))
    u = _zigzag(v)
    m = (u >> k) + 1
    n = _bit_length(m)
    word = (m << k) | (u & ((1 << k) - 1))  # the codeword without its leading zeros
    length = 2 * n - 1 + k
    ends = np.cumsum(length)
    bits = np.zeros(int(ends[-1]) if v.size else 0, dtype=np.uint8)
    for b in range(int((n + k).max()) if v.size else 0):  # bit b of each word, from the end
        live = b < n + k
        bits[(ends - 1 - b)[live]] = ((word[live] >> b) & 1).astype(np.uint8)
    return bytes([k]) + np.packbits(bits).tobytes()


def decode(blob: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`encode`: ``count`` int64 values; a damaged frame is a StoreError."""
    if not blob or blob[0] > MAX_K:
        raise StoreError("Exp-Golomb frame is damaged")
    k = blob[0]
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8, offset=1))
    ones = np.flatnonzero(bits)
    out = np.empty(count, dtype=np.int64)
    pos = 0
    for i in range(count):
        j = int(np.searchsorted(ones, pos))  # the first one at or after pos
        if j >= ones.size:
            raise StoreError("Exp-Golomb frame is truncated or damaged")
        zeros = int(ones[j]) - pos
        end = pos + 2 * zeros + 1 + k
        if zeros + k >= 63 or end > bits.size:
            raise StoreError("Exp-Golomb frame is truncated or damaged")
        word = 0
        for bit in bits[pos + zeros:end]:
            word = (word << 1) | int(bit)
        u = (((word >> k) - 1) << k) | (word & ((1 << k) - 1))
        out[i] = (u >> 1) if u % 2 == 0 else -((u + 1) >> 1)
        pos = end
    if bits.size - pos >= 8 or bits[pos:].any():
        raise StoreError("Exp-Golomb frame has unexpected bits after its last value (damaged)")
    return out
