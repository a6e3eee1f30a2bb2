"""Integer probability tables: what encoder and decoder must agree on bit for bit.

The bitstream never depends on a float computed at coding time. Latents are coded
as ``round(y − μ)`` against **zero-mean** discretised Gaussians, one table per entry
of a fixed log-spaced scale table (μ only shifts the reconstruction). Hyper-latents
are coded against one table per channel taken from the learned factorized density.
All tables are integer counts summing to ``2**PRECISION`` (each ≥ 1), frozen once
per model (:func:`freeze`) and stored with its weights, so another machine, thread
count or device codes with exactly the same numbers.

The only float → integer decision left at coding time is the choice of a scale
index from the hyper-synthesis output; :func:`scale_indices` makes it robust by
flagging values within ``AMBIGUITY`` of a table boundary (the encoder stores the
index it chose for those, see :mod:`topoae.codec.entropy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRECISION = 16
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
#: half-width (in units of the log-scale step) around a boundary inside which an index is flagged
AMBIGUITY = 1e-6
_LOG_MIN = math.log(SCALE_MIN)
_LOG_STEP = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (SCALE_LEVELS - 1)


def scale_table() -> np.ndarray:
    """The σ of each latent table (float64, log-spaced)."""
    return np.exp(_LOG_MIN + _LOG_STEP * np.arange(SCALE_LEVELS))


def scale_indices(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest table index (in log σ) for each scale, and a mask of near-ties."""
    u = (np.log(np.asarray(scale, dtype=np.float64)) - _LOG_MIN) / _LOG_STEP
    idx = np.clip(np.rint(u), 0, SCALE_LEVELS - 1).astype(np.int64)
    frac = u - np.floor(u)
    inside = (u > 0.5) & (u < SCALE_LEVELS - 1.5)
    return idx, inside & (np.abs(frac - 0.5) < AMBIGUITY)


def quantise_pmf(p: np.ndarray) -> np.ndarray:
    """Float probabilities -> int64 counts summing to ``2**PRECISION``, every count ≥ 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    total = 1 << PRECISION
    n = p.size
    c = np.floor(p / p.sum() * (total - n)).astype(np.int64) + 1
    c[np.argmax(c)] += total - int(c.sum())
    return c


def gaussian_counts(sigma: float) -> np.ndarray:
    """Counts for symbols ``-K..K`` of a zero-mean Gaussian bin model; tails in the end bins."""
    k = min(int(math.ceil(sigma * 7.0)) + 1, 4096)
    edges = (np.arange(-k, k + 2, dtype=np.float64) - 0.5) / sigma
    cdf = np.array([0.5 * math.erfc(-e / math.sqrt(2.0)) for e in edges])
    cdf[0], cdf[-1] = 0.0, 1.0
    return quantise_pmf(np.diff(cdf))


@dataclass(frozen=True)
class Tables:
    """Frozen tables: ``y[i]`` counts for scale index ``i``, ``z[c]`` for hyper channel ``c``,
    and optionally ``z_levels[l][c]``: hyper channel ``c`` at quality level ``l``
    (:mod:`topoae.codec.table_fit`; empty: ``z`` serves every level).

    Symbol ``s`` of a table with ``2K+1`` entries is coded as ``s + K``; the end bins
    stand for ``|s| ≥ K`` (escape; the excess is stored separately).
    """

    y: tuple[np.ndarray, ...]
    z: tuple[np.ndarray, ...]
    z_levels: tuple[tuple[np.ndarray, ...], ...] = ()

    def for_level(self, level: int) -> Tables:
        """The tables a tile of quality ``level`` is coded with."""
        if not self.z_levels:
            return self
        return Tables(y=self.y, z=self.z_levels[level])

    def to_arrays(self) -> dict[str, np.ndarray]:
        def pack(ts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
            # int32 (counts are at most 2**PRECISION): half the bytes of int64 in a checkpoint;
            # :meth:`from_arrays` reads either
            lens = np.array([t.size for t in ts], dtype=np.int32)
            return np.concatenate(ts).astype(np.int32), lens

        yv, yl = pack(self.y)
        zv, zl = pack(self.z)
        out = {"y_counts": yv, "y_lengths": yl, "z_counts": zv, "z_lengths": zl}
        if self.z_levels:
            out["zl_counts"], out["zl_lengths"] = pack(tuple(t for lv in self.z_levels for t in lv))
            out["zl_levels"] = np.array([len(self.z_levels)], dtype=np.int32)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> Tables:
        def unpack(v: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, ...]:
            ends = np.cumsum(lens)
            return tuple(np.asarray(v[e - n:e], dtype=np.int64) for e, n in zip(ends, lens, strict=True))

        z = unpack(a["z_counts"], a["z_lengths"])
        z_levels: tuple[tuple[np.ndarray, ...], ...] = ()
        if "zl_counts" in a:
            flat = unpack(a["zl_counts"], a["zl_lengths"])
            n = int(np.asarray(a["zl_levels"]).reshape(-1)[0])
            per = len(flat) // max(n, 1)
            if n < 1 or per * n != len(flat) or per != len(z):
                raise ValueError("per-level hyper-latent tables do not match the channels")
            z_levels = tuple(flat[k * per:(k + 1) * per] for k in range(n))
        return cls(y=unpack(a["y_counts"], a["y_lengths"]), z=z, z_levels=z_levels)


def freeze(z_density) -> Tables:
    """Build the tables of a model (its ``FactorizedDensity``) once; store them with it."""
    y = tuple(gaussian_counts(float(s)) for s in scale_table())
    support = 8
    probs = z_density.bin_probabilities(512)
    mid = 512
    # the smallest support whose tails hold < 1e-7 of the mass in every channel, at most 512
    for k in range(8, 513):
        tail = probs[:, : mid - k + 1].sum(1) + probs[:, mid + k:].sum(1)
        if np.all(tail < 1e-7):
            support = k
            break
    else:
        support = 512
    z = []
    for p in probs:
        q = p[mid - support: mid + support + 1].copy()
        q[0] += p[: mid - support].sum()
        q[-1] += p[mid + support + 1:].sum()
        z.append(quantise_pmf(q))
    return Tables(y=y, z=tuple(z))
