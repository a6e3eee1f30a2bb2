"""Range coding of short free text: a grid's title, source and history in a ``.tae`` header.

A 512² GEBCO tile's header holds ~150 bytes of such text, which zstd, with a header
dictionary, takes to ~130: its Huffman tables cost more than a short text can pay back. This
coder sees the text one byte at a time: the probability of each byte mixes a frozen table of
how often each byte follows the one before it (:data:`PRIOR_FILE`, fitted on generic English
technical prose by ``benchmarks/fit_text_prior.py``, never on a grid's attributes) with this
text's own byte counts so far::

    p(s | prev) = (bigram[prev, s] + MIX · u(s)) / (Σ bigram[prev] + MIX)
    u(s)        = (unigram[s] + INCREMENT · seen(s)) / (Σ unigram + INCREMENT · seen)

Probabilities are float64 expressions of integer counts, evaluated in one fixed order by
numpy's correctly rounded element-wise arithmetic, so encoder and decoder compute the same
tables on any machine (the context coder's rule, :mod:`topoae.codec.context_coder`).
Frame: ``uvarint length, range-coded 32-bit words``. The prior is frozen: other counts are a
new ``.tae`` format (its digest is checked when it loads).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from topoae.codec.entropy import _constriction, _get_uvarint, _put_uvarint
from topoae.errors import StoreError

PRIOR_FILE = Path(__file__).resolve().parents[1] / "assets" / "text_prior.npz"
PRIOR_SHA256 = "019664314cefda919a5875d750f2e1b6efc83b7734469ea204d0c15ef112b547"
UNIGRAM_TOTAL = 4096  # the order-0 prior's counts are scaled to this sum (then at least 1 each)
BIGRAM_ROW = 1024  # each row of the order-1 prior, in counts
MIX = 64  # the order-0 part's weight against a bigram row
INCREMENT = 32  # a byte seen in this text adds this much to its order-0 count
START = 10  # the byte "before" the first one (a newline)
#: the longest text coded (a header's longer text goes as it is or zstd-compressed): a damaged
#: frame claiming more is refused before decoding byte after byte
MAX_BYTES = 1 << 16


def digest(unigram: np.ndarray, bigram: np.ndarray) -> str:
    """The SHA-256 of the prior's arrays (what :data:`PRIOR_SHA256` pins)."""
    h = hashlib.sha256(np.ascontiguousarray(unigram, dtype="<u2").tobytes())
    h.update(np.ascontiguousarray(bigram, dtype="<u2").tobytes())
    return h.hexdigest()


@functools.cache
def prior() -> tuple[np.ndarray, np.ndarray]:
    """The frozen ``(unigram, bigram)`` counts, checked against :data:`PRIOR_SHA256`."""
    try:
        with np.load(PRIOR_FILE) as z:
            uni, big = np.asarray(z["unigram"]), np.asarray(z["bigram"])
    except Exception:
        raise StoreError(f"{PRIOR_FILE} is missing or unreadable: this topoae install is "
                         "incomplete") from None
    if (uni.dtype != np.uint16 or big.dtype != np.uint16 or uni.shape != (256,)
            or big.shape != (256, 256) or digest(uni, big) != PRIOR_SHA256):
        raise StoreError(f"{PRIOR_FILE} is not the text coder's frozen prior (changed?)")
    return uni, big


class _Model:
    def __init__(self, unigram: np.ndarray, bigram: np.ndarray) -> None:
        self.uni = unigram.astype(np.int64)
        self.big = bigram.astype(np.int64)
        self.rows = self.big.sum(1)

    def probabilities(self, prev: int) -> np.ndarray:
        u = self.uni / float(self.uni.sum())
        p = (self.big[prev] + MIX * u) / float(self.rows[prev] + MIX)
        return p[None, :]

    def update(self, s: int) -> None:
        self.uni[s] += INCREMENT


def encode(data: bytes, *, counts: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
    """The frame of ``data`` (``counts``: a prior other than the frozen one, for fitting it)."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"the text coder takes at most {MAX_BYTES} bytes")
    c = _constriction()
    model = _Model(*(counts if counts is not None else prior()))
    family = c.stream.model.Categorical(perfect=False)
    enc = c.stream.queue.RangeEncoder()
    prev = START
    for s in bytes(data):
        enc.encode(np.array([s], dtype=np.int32), family, model.probabilities(prev))
        model.update(s)
        prev = s
    out = bytearray()
    _put_uvarint(out, len(data))
    return bytes(out) + np.asarray(enc.get_compressed(), dtype="<u4").tobytes()


def decode(frame: bytes) -> bytes:
    """Inverse of :func:`encode`; a damaged frame is a :class:`StoreError`."""
    n, pos = _get_uvarint(frame, 0)
    words = frame[pos:]
    if len(words) % 4 or n > MAX_BYTES:
        raise StoreError("text frame is truncated or damaged")
    c = _constriction()
    model = _Model(*prior())
    family = c.stream.model.Categorical(perfect=False)
    out = bytearray()
    try:
        dec = c.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
        prev = START
        for _ in range(n):
            s = int(dec.decode(family, model.probabilities(prev))[0])
            model.update(s)
            out.append(s)
            prev = s
    except StoreError:
        raise
    except Exception:
        raise StoreError("text frame is damaged") from None
    return bytes(out)
