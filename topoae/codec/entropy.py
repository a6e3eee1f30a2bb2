"""Entropy coding of one tile's integer symbols with a range coder (``constriction``).

A tile stream holds, in order:

1. a 4-byte hash of the decoded symbols (so a desynchronised decoder is caught,
   not turned into a plausible wrong grid);
2. the scale-index overrides: positions where the encoder's hyper-synthesis output
   was within :data:`topoae.codec.tables.AMBIGUITY` of a table boundary, with the
   index it used (almost always none);
3. escapes: the excess of symbols that fell in a table's end bins;
4. the range-coded words: hyper-latents channel by channel, then the latents pass by
   pass (one pass without spatial context), each pass grouped by scale index.

Range coding is first-in first-out, so the decoder reads the hyper-latents,
computes the scale indices of the first pass, reads it, computes the next pass's
indices from it, and so on, all from one stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from topoae.codec.tables import PRECISION, SCALE_LEVELS, Tables
from topoae.errors import DependencyError, StoreError, TopoAEError


def _constriction():
    try:
        import constriction
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise DependencyError("the entropy coder needs 'constriction' (pip install constriction)") from exc
    return constriction


@lru_cache(maxsize=4096)
def _model(counts_bytes: bytes):
    counts = np.frombuffer(counts_bytes, dtype=np.int64)
    c = _constriction()
    return c.stream.model.Categorical(counts.astype(np.float64) / float(1 << PRECISION), perfect=False)


def _categorical(counts: np.ndarray):
    return _model(np.ascontiguousarray(counts, dtype=np.int64).tobytes())


# -- varints -------------------------------------------------------------------------
def _put_uvarint(out: bytearray, v: int) -> None:
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _get_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    v, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise StoreError("tile stream ends inside a number (truncated or damaged)")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, pos
        shift += 7
        if shift > 63:
            raise StoreError("tile stream holds an invalid number (damaged)")


def symbol_hash(*arrays: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=4)
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int32).tobytes())
    return h.digest()


def _clip_escapes(s: np.ndarray, k: int, esc: list[int]) -> np.ndarray:
    hi, lo = s >= k, s <= -k
    if hi.any() or lo.any():
        for v in s[hi | lo]:
            esc.append(int(v) - k if v >= k else -k - int(v))
    return np.clip(s, -k, k) + k


def _groups(idx: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Positions (C order) of the latents of each scale index, in index order: the order
    in which both sides code them."""
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(SCALE_LEVELS + 1))
    return [(i, order[bounds[i]:bounds[i + 1]]) for i in range(SCALE_LEVELS) if bounds[i + 1] > bounds[i]]


#: one coding pass of a tile's latents: symbols, their scale indices and the near-tie flags
#: of those indices (1-D, the pass's positions in C order)
Part = tuple[np.ndarray, np.ndarray, np.ndarray]


def encode_tile(z: np.ndarray, parts: Sequence[Part], tables: Tables) -> bytes:
    """Bytes of one tile: ``z`` (C, h, w) int hyper-latents, then the latents pass by pass.

    A model without spatial context codes its latents in one pass (all of ``y`` in C order);
    with context, each later pass's indices depend on the passes before
    (:mod:`topoae.models.context`). Index overrides are numbered over the passes in order.
    """
    c = _constriction()
    enc = c.stream.queue.RangeEncoder()
    escapes: list[int] = []
    zf = z.reshape(z.shape[0], -1).astype(np.int64)
    for ch in range(zf.shape[0]):
        t = tables.z[ch]
        k = (t.size - 1) // 2
        enc.encode(_clip_escapes(zf[ch], k, escapes).astype(np.int32), _categorical(t))
    for sym, idx, _ in parts:
        yf = np.asarray(sym, dtype=np.int64).reshape(-1)
        for i, sel in _groups(np.asarray(idx).reshape(-1)):
            t = tables.y[i]
            k = (t.size - 1) // 2
            enc.encode(_clip_escapes(yf[sel], k, escapes).astype(np.int32), _categorical(t))
    out = bytearray(symbol_hash(z, *(p[0] for p in parts)))
    flat_idx = np.concatenate([np.asarray(p[1]).reshape(-1) for p in parts])
    where = np.flatnonzero(np.concatenate([np.asarray(p[2]).reshape(-1) for p in parts]))
    _put_uvarint(out, where.size)
    prev = 0
    for p in where:
        _put_uvarint(out, int(p) - prev)
        prev = int(p)
        out.append(int(flat_idx[p]))
    _put_uvarint(out, len(escapes))
    for e in escapes:
        _put_uvarint(out, e)
    words = enc.get_compressed()
    return bytes(out) + np.asarray(words, dtype="<u4").tobytes()


#: what :func:`decode_tile` asks for each pass: given the hyper-latents and the passes decoded
#: so far, the scale indices of the next pass (1-D), or None when every pass is decoded
Plan = Callable[[np.ndarray, list[np.ndarray]], "np.ndarray | None"]


def decode_tile(blob: bytes, z_shape: tuple[int, int, int], tables: Tables, plan: Plan
                ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Inverse of :func:`encode_tile`: the hyper-latents and the symbols of every pass."""
    c = _constriction()
    if len(blob) < 6:
        raise StoreError("tile stream too short (truncated or damaged)")
    want_hash = blob[:4]
    pos = 4
    n_over, pos = _get_uvarint(blob, pos)
    overrides = []
    p = 0
    for _ in range(n_over):
        d, pos = _get_uvarint(blob, pos)
        p += d
        if pos >= len(blob):
            raise StoreError("tile stream truncated in its index overrides")
        overrides.append((p, blob[pos]))
        pos += 1
    n_esc, pos = _get_uvarint(blob, pos)
    escapes = []
    for _ in range(n_esc):
        e, pos = _get_uvarint(blob, pos)
        escapes.append(e)
    rest = blob[pos:]
    if len(rest) % 4:
        raise StoreError("tile stream has a partial word (truncated or damaged)")
    dec = c.stream.queue.RangeDecoder(np.frombuffer(rest, dtype="<u4").astype(np.uint32))
    esc_iter = iter(escapes)

    def unescape(s: np.ndarray, k: int) -> np.ndarray:
        s = s.astype(np.int64) - k
        for j in np.flatnonzero(np.abs(s) >= k):
            try:
                e = next(esc_iter)
            except StopIteration:
                raise StoreError("tile stream lacks an escape value (damaged)") from None
            s[j] = k + e if s[j] > 0 else -k - e
        return s

    cz, hz, wz = z_shape
    z = np.empty((cz, hz * wz), dtype=np.int64)
    parts: list[np.ndarray] = []
    try:
        for ch in range(cz):
            t = tables.z[ch]
            k = (t.size - 1) // 2
            z[ch] = unescape(np.asarray(dec.decode(_categorical(t), hz * wz)), k)
        z = z.reshape(z_shape)
        start = 0
        while (got := plan(z, parts)) is not None:
            idx = np.asarray(got, dtype=np.int64).reshape(-1).copy()
            for p, v in overrides:
                if start <= p < start + idx.size:
                    if v >= SCALE_LEVELS:
                        raise StoreError("tile stream holds an invalid index override (damaged)")
                    idx[p - start] = v
            y = np.empty(idx.size, dtype=np.int64)
            for i, sel in _groups(idx):
                t = tables.y[i]
                k = (t.size - 1) // 2
                y[sel] = unescape(np.asarray(dec.decode(_categorical(t), sel.size)), k)
            parts.append(y)
            start += idx.size
        if any(p >= start for p, _ in overrides):
            raise StoreError("tile stream holds an invalid index override (damaged)")
    except TopoAEError:  # ours, from here or from ``plan``
        raise
    except Exception as exc:  # the coder itself refuses a damaged stream
        raise StoreError(f"tile stream cannot be decoded (damaged): {type(exc).__name__}") from None
    if symbol_hash(z, *parts) != want_hash:
        raise StoreError(
            "decoded symbols do not match the stored hash: the file is damaged or was made "
            "with different probability tables")
    return z, parts
