"""Context-adaptive range coding of 2-D integer grids (the codec's correction streams).

The error-bounded residual, the sparse outlier corrections and the coastline and
depth-relative corrections are integer grids, mostly zero, whose non-zero cells
cluster where the terrain is rough. zstd sees them as bytes; this coder sees each
cell's neighbourhood. Measured on held-out 15″ tiles, it takes those streams
21–34 % below zstd (``benchmarks/RESULTS.md``).

Model
-----
Rows are coded top to bottom: first a flag, whether the row holds a non-zero cell
(adaptive, given the previous row's flag), then, if it does, all its cells at once, so
decoding is one vectorised step per non-zero row. The context of a cell comes from the two rows above it
(already decoded): with ``a = min(|q|, 4)``,

* ``near = 2·a[N] + a[NW] + a[NE] + a[NN]``, in :data:`NEAR_EDGES` classes;
* ``wide``: the sum of ``a`` over the nine cells of the row above centred on the
  cell, in :data:`WIDE_EDGES` classes;
* the sign of the cell above (−, 0, +).

Each context keeps integer counts of the symbols ``-A..A`` (``|q| >= A`` is the
end symbol, its excess stored as a varint ahead of the coded words), starting from
:data:`PRIOR` and updated after each row; the probabilities are counts divided
by their sum, in float64, so the encoder and decoder compute bit-identical
tables on any machine. A 4-byte hash of the grid guards against a damaged stream.

Frame: ``uvarint escapes, escapes…, 4-byte hash, range-coded 32-bit words`` (the
grid's shape comes from the container). From ``.tae`` format 7 the escapes may instead be one
Exp-Golomb frame (:mod:`topoae.codec.golomb`) after its uvarint length, whichever is smaller
(:func:`encode_best`; residual frame kinds 5 and 6).

Primed frames (``primed=True``; ``.tae`` format 6 on) start each context from counts fitted on
the outlier streams of training tiles (:data:`COUNTS_FILE`, made by
``benchmarks/fit_outlier_prior.py``, frozen) instead of :data:`PRIOR`: a tile's stream no longer
pays to learn what every tile's streams share. Measured on the held-out tiles, whole files are
up to 5.7 % smaller at the lowest level, and the RMSE at equal bytes drops 1.1 % at 400×
(`benchmarks/RESULTS.md`). The residual coder keeps whichever frame is smaller.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np

from topoae.codec.entropy import _constriction, _get_uvarint, _put_uvarint
from topoae.errors import StoreError

A = 12  # symbols -A..A; the two end symbols carry an escape
K = 2 * A + 1
NEAR_EDGES = np.array([1, 2, 3, 4, 6, 9, 13])
WIDE_EDGES = np.array([1, 2, 4, 8, 16])
_N_NEAR, _N_WIDE = NEAR_EDGES.size + 1, WIDE_EDGES.size + 1
CONTEXTS = _N_NEAR * _N_WIDE * 3
INCREMENT = 32
#: starting counts: zero likely (the streams are mostly zero), then halving with |q|
PRIOR = np.array([64 if v == 0 else max(1, (INCREMENT // 2) >> min(abs(v) - 1, 5))
                  for v in range(-A, A + 1)], dtype=np.int64)
RESCALE_AT = 1 << 16  # halve a context's counts when they sum past this


#: the primed frames' starting counts, ``(CONTEXTS, K)`` int32; frozen: its SHA-256 is checked
COUNTS_FILE = Path(__file__).resolve().parents[1] / "assets" / "context_counts.npy"
COUNTS_SHA256 = "95fe51ee91b654a6b14195120c99ac7dcf2f9271aee18166a6866cbb963f0fa6"


@functools.lru_cache(maxsize=1)
def primed_counts() -> np.ndarray:
    """The starting counts of primed frames (:data:`COUNTS_FILE`), checked against
    :data:`COUNTS_SHA256`: other counts would write files no other install decodes."""
    try:
        data = COUNTS_FILE.read_bytes()
    except OSError:
        raise StoreError(f"{COUNTS_FILE} is missing or unreadable: this topoae install is "
                         "incomplete") from None
    if hashlib.sha256(data).hexdigest() != COUNTS_SHA256:
        raise StoreError(f"{COUNTS_FILE} is not the context coder's frozen counts (changed?): "
                         "reinstall topoae")
    c = np.load(io.BytesIO(data), allow_pickle=False)
    if c.shape != (CONTEXTS, K) or c.dtype.kind not in "iu" or int(c.min()) < 1:
        raise StoreError(f"{COUNTS_FILE} does not hold the context coder's counts")
    c = c.astype(np.int64)
    c.setflags(write=False)
    return c


def context_counts(q: np.ndarray) -> np.ndarray:
    """How often each symbol occurs in each context in the non-zero rows of ``q``, as the
    coder sees them: ``(CONTEXTS, K)`` (what :data:`COUNTS_FILE` was fitted from)."""
    q = np.asarray(q, dtype=np.int64)
    busy = q.any(1)
    ctx = _grid_contexts(q)[busy].ravel()
    sym = (np.clip(q, -A, A) + A)[busy].ravel()
    return np.bincount(ctx * K + sym, minlength=CONTEXTS * K).reshape(CONTEXTS, K)


#: the largest magnitude a grid may hold (its escape must fit a varint of int64 arithmetic)
LIMIT = 1 << 62


def _hash(q: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(q, dtype="<i8").tobytes(), digest_size=4).digest()


_NEAR_LUT = np.searchsorted(NEAR_EDGES, np.arange(21), side="right") * _N_WIDE * 3
_WIDE_LUT = np.searchsorted(WIDE_EDGES, np.arange(37), side="right") * 3


def _contexts(prev1: np.ndarray, prev2: np.ndarray) -> np.ndarray:
    """Context index of each cell from the cells one and two rows above it (int64 symbols,
    shaped ``(rows, cols)``, or ``(cols,)`` for one row: the same numbers either way)."""
    a1 = np.minimum(np.abs(prev1), 4)
    n = a1.shape[-1]
    pad = np.zeros(a1.shape[:-1] + (n + 8,), dtype=np.int64)
    pad[..., 4:4 + n] = a1
    near = 2 * a1 + pad[..., 3:3 + n] + pad[..., 5:5 + n] + np.minimum(np.abs(prev2), 4)
    c = np.cumsum(pad, axis=-1)
    wide = c[..., 8:].copy()
    wide[..., 1:] -= c[..., :n - 1]
    return _NEAR_LUT[near] + _WIDE_LUT[wide] + (np.sign(prev1) + 1)


def _grid_contexts(q: np.ndarray) -> np.ndarray:
    """The context of every cell of an int64 grid, all rows at once (what the encoder knows)."""
    rows, cols = q.shape
    up1 = np.concatenate([np.zeros((1, cols), np.int64), q[:-1]])
    up2 = np.concatenate([np.zeros((2, cols), np.int64), q[:-2]])[:rows]
    return _contexts(up1, up2)


class _Model:
    """Adaptive per-context counts (identical on both sides)."""

    def __init__(self, primed: bool = False) -> None:
        self.counts = primed_counts().copy() if primed else np.tile(PRIOR, (CONTEXTS, 1))
        self.totals = self.counts.sum(1)
        self.table = self.counts / self.totals[:, None].astype(np.float64)

    def probabilities(self, ctx: np.ndarray) -> np.ndarray:
        return self.table[ctx]

    def update(self, ctx: np.ndarray, sym: np.ndarray) -> None:
        flat = self.counts.reshape(-1)
        flat += INCREMENT * np.bincount(ctx * K + sym, minlength=CONTEXTS * K)
        per = np.bincount(ctx, minlength=CONTEXTS)
        self.totals += INCREMENT * per
        big = np.flatnonzero(self.totals > RESCALE_AT)
        if big.size:
            self.counts[big] = (self.counts[big] + 1) >> 1
            self.totals[big] = self.counts[big].sum(1)
        used = np.flatnonzero(per)
        self.table[used] = self.counts[used] / self.totals[used][:, None].astype(np.float64)


class _RowFlags:
    """Adaptive counts of "this row holds a non-zero cell", given the previous row's flag."""

    def __init__(self) -> None:
        self.counts = np.full((2, 2), INCREMENT, dtype=np.int64)
        self.prev = 1

    def probabilities(self) -> np.ndarray:
        c = self.counts[self.prev]
        return (c / c.sum().astype(np.float64))[None, :]

    def update(self, busy: bool) -> None:
        c = self.counts[self.prev]
        c[int(busy)] += INCREMENT
        if c.sum() > RESCALE_AT:
            c[:] = (c + 1) >> 1
        self.prev = int(busy)


def encode(q: np.ndarray, *, primed: bool = False, golomb_escapes: bool = False) -> bytes:
    """Frame of a 2-D integer grid ``q`` (``primed``: counts start from :func:`primed_counts`;
    ``golomb_escapes``: the escapes in one Exp-Golomb frame, see :func:`encode_best`)."""
    escapes, words = _code(q, primed)
    return _frame(escapes, _hash(np.asarray(q, dtype=np.int64)), words, golomb_escapes)


def encode_best(q: np.ndarray, *, primed: bool = False) -> tuple[bool, bytes]:
    """The smaller of the frames with varint and with Exp-Golomb escapes (``.tae`` format 7:
    a sharp step the synthesis misses, such as a fault scarp on an abyssal plain, leaves
    hundreds of corrections beyond the alphabet, one varint byte each; their Exp-Golomb
    code is a quarter to a third smaller), and whether it is the latter."""
    escapes, words = _code(q, primed)
    digest = _hash(np.asarray(q, dtype=np.int64))
    plain = _frame(escapes, digest, words, False)
    if not escapes:
        return False, plain
    coded = _frame(escapes, digest, words, True)
    return (True, coded) if len(coded) < len(plain) else (False, plain)


def _frame(escapes: list[int], digest: bytes, words: bytes, golomb_escapes: bool) -> bytes:
    out = bytearray()
    _put_uvarint(out, len(escapes))
    if golomb_escapes:
        if escapes:
            from topoae.codec import golomb

            g = golomb.encode(np.array(escapes, dtype=np.int64))
            _put_uvarint(out, len(g))
            out += g
    else:
        for v in escapes:
            _put_uvarint(out, v)
    return bytes(out) + digest + words


def _code(q: np.ndarray, primed: bool) -> tuple[list[int], bytes]:
    """The escapes and the range-coded words of ``q``."""
    q = np.asarray(q)
    if q.ndim != 2 or q.size == 0 or q.dtype.kind not in "iu":
        raise ValueError("the context coder takes a non-empty 2-D integer grid")
    if q.dtype.kind == "u" and int(q.max()) >= LIMIT:
        raise ValueError("the context coder takes magnitudes below 2**62")
    q = q.astype(np.int64)
    if int(q.max()) >= LIMIT or int(q.min()) <= -LIMIT:
        raise ValueError("the context coder takes magnitudes below 2**62")
    rows, cols = q.shape
    c = _constriction()
    enc = c.stream.queue.RangeEncoder()
    family = c.stream.model.Categorical(perfect=False)
    model = _Model(primed)
    escapes: list[int] = []
    contexts = _grid_contexts(q)  # the encoder knows every row: all contexts at once
    flags = _RowFlags()
    for r in range(rows):
        row = q[r]
        busy = bool(row.any())
        enc.encode(np.array([busy], dtype=np.int32), family, flags.probabilities())
        flags.update(busy)
        if not busy:
            continue
        ctx = contexts[r]
        sym = np.clip(row, -A, A) + A
        for v in row[np.abs(row) >= A]:
            escapes.append(abs(int(v)) - A)
        enc.encode(sym.astype(np.int32), family, model.probabilities(ctx))
        model.update(ctx, sym)
    return escapes, np.asarray(enc.get_compressed(), dtype="<u4").tobytes()


def decode(blob: bytes, shape: tuple[int, int], *, primed: bool = False,
           golomb_escapes: bool = False) -> np.ndarray:
    """Inverse of :func:`encode` (int64, the same ``primed`` and ``golomb_escapes``); a
    damaged frame is a :class:`StoreError`."""
    rows, cols = (int(v) for v in shape)
    try:
        n_esc, pos = _get_uvarint(blob, 0)
    except StoreError:
        raise StoreError("context-coded frame is truncated or damaged in its escapes") from None
    if n_esc > rows * cols:
        raise StoreError("context-coded frame holds too many escapes (damaged)")
    try:
        escapes: list[int] = []
        if golomb_escapes and n_esc:
            from topoae.codec import golomb

            size, pos = _get_uvarint(blob, pos)
            if size > len(blob) - pos:
                raise StoreError("context-coded frame is truncated or damaged in its escapes")
            escapes = [int(v) for v in golomb.decode(blob[pos:pos + size], n_esc)]
            if min(escapes) < 0:
                raise StoreError("context-coded frame is damaged in its escapes")
            pos += size
        elif not golomb_escapes:
            for _ in range(n_esc):
                e, pos = _get_uvarint(blob, pos)
                escapes.append(e)
    except StoreError:
        raise StoreError("context-coded frame is truncated or damaged in its escapes") from None
    want = blob[pos:pos + 4]
    rest = blob[pos + 4:]
    if len(want) < 4 or len(rest) % 4:
        raise StoreError("context-coded frame is truncated or damaged")
    c = _constriction()
    family = c.stream.model.Categorical(perfect=False)
    model = _Model(primed)
    q = np.zeros((rows, cols), dtype=np.int64)
    esc = iter(escapes)
    zero = np.zeros(cols, dtype=np.int64)
    try:
        dec = c.stream.queue.RangeDecoder(np.frombuffer(rest, dtype="<u4").astype(np.uint32))
        flags = _RowFlags()
        for r in range(rows):
            busy = bool(dec.decode(family, flags.probabilities())[0])
            flags.update(busy)
            if not busy:
                continue
            ctx = _contexts(q[r - 1] if r >= 1 else zero, q[r - 2] if r >= 2 else zero)
            sym = np.asarray(dec.decode(family, model.probabilities(ctx)), dtype=np.int64)
            row = sym - A
            for j in np.flatnonzero(np.abs(row) >= A):
                row[j] = (A + next(esc)) * np.sign(row[j])
            q[r] = row
            model.update(ctx, sym)
    except StopIteration:
        raise StoreError("context-coded frame lacks an escape value (damaged)") from None
    except StoreError:
        raise
    except Exception as exc:  # the range decoder refuses a damaged stream
        raise StoreError(f"context-coded frame cannot be decoded (damaged): {type(exc).__name__}") from None
    if _hash(q) != want:
        raise StoreError("context-coded frame does not match its hash (damaged)")
    return q
