"""Lossless correction streams laid over any base reconstruction.

A base codec (the learned one, or SPERR/SZ3 for comparison) gives ``y``; the encoder,
which knows the original ``z``, adds small streams so that the decoder's result obeys
a rule on every cell:

- **coastline** (:func:`encode_coast` / :func:`apply_coast`): every cell keeps the sign
  of the original in the written dtype (land stays > 0, sea < 0, 0 stays 0): the
  original value of each cell whose sign changed, behind a compressed mask;
- **depth-relative** (:func:`encode_relative` / :func:`apply_relative`): on a grid ``y1``
  already within an absolute bound E, a second residual makes every cell obey
  ``|error| ≤ min(E, max(a, r·|z|))``, with quantisation steps the decoder derives from
  ``y1`` alone (:func:`relative_bounds`).

``integer`` means the original holds whole numbers (GEBCO int16): corrections then sit
on the integer grid so they hold in int16 and float32 output alike. Pure numpy; the
byte formats are those of the ``coast:`` and ``rel:`` streams of a ``.tae`` file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topoae.codec import residual as _res
from topoae.errors import ConfigError, StoreError


@dataclass(frozen=True)
class RelativeRule:
    """``|error| ≤ min(max_error, max(floor, relative · |z|))`` on every cell (metres)."""

    max_error: float
    relative: float
    floor: float = 0.5


def relative_bounds(y1: np.ndarray, rule: RelativeRule) -> np.ndarray:
    """Per-cell bound the decoder can compute from the absolutely bounded grid ``y1``.

    The decoder does not know z, but |z| ≥ |y1| − E, so
    ``min(E, max(a, r·max(0, |y1| − E)))`` never exceeds the rule's bound.
    """
    e, r, a = float(rule.max_error), float(rule.relative), float(rule.floor)
    return np.minimum(e, np.maximum(a, r * np.maximum(0.0, np.abs(y1) - e)))


def _relative_steps(y1: np.ndarray, rule: RelativeRule, integer: bool) -> np.ndarray:
    b = relative_bounds(y1, rule)
    if integer:  # odd integer steps: |z − y| ≤ floor(b) on the integer grid
        return 2.0 * np.floor(b) + 1.0
    return 2.0 * (b - (np.spacing(np.abs(y1).astype(np.float32) + 2 * b).astype(np.float64) + b / 1024))


def _relative_value(y1, q, steps, integer: bool) -> np.ndarray:
    if integer:
        return np.rint(y1) + q * steps
    return (np.asarray(y1, np.float64) + q * steps).astype(np.float32).astype(np.float64)


def encode_relative(z: np.ndarray, y1: np.ndarray, rule: RelativeRule, integer: bool) -> bytes | None:
    """Second residual where the relative rule is tighter than E (None when nowhere)."""
    ok = np.isfinite(z)
    zz = np.where(ok, z, 0.0)
    bound = np.minimum(rule.max_error, np.maximum(rule.floor, rule.relative * np.abs(zz)))
    steps = _relative_steps(y1, rule, integer)
    q = np.rint(np.where(ok, z - y1, 0.0) / steps).astype(np.int64)
    y = _relative_value(y1, q, steps, integer)
    bad = ok & (np.abs(zz - y) > bound)
    if bad.any():  # float32 rounding at a tie: try the neighbouring levels
        for shift in (-1, 1):
            idx = np.flatnonzero(bad)
            alt = q.flat[idx] + shift
            yy = _relative_value(y1.flat[idx], alt, steps.flat[idx], integer)
            fixed = np.abs(z.flat[idx] - yy) <= bound.flat[idx]
            q.flat[idx[fixed]] = alt[fixed]
            bad.flat[idx[fixed]] = False
        if bad.any():
            raise ConfigError(f"cannot meet the relative bound in float32 on {int(bad.sum())} cells; "
                              "raise --floor")
    if not q.any():
        return None
    return _res.encode_residual(q)


def apply_relative(blob: bytes, y1: np.ndarray, rule: RelativeRule, integer: bool) -> np.ndarray:
    """``y1`` with the relative residual ``blob`` applied."""
    q = _res.decode_residual(blob, y1.shape)
    return _relative_value(y1, q, _relative_steps(y1, rule, integer), integer)


def sign_errors(z: np.ndarray, y: np.ndarray, integer: bool) -> np.ndarray:
    """Cells whose written value has another sign than the original (int16 and float32
    output both checked for integer input); NaN cells of ``z`` never count."""
    ok = np.isfinite(z)
    sz = np.sign(np.where(ok, z, 0.0))
    bad = np.sign(y.astype(np.float32).astype(np.float64)) != sz
    if integer:
        bad |= np.sign(np.rint(y)) != sz
    return bad & ok


def encode_coast(z: np.ndarray, y: np.ndarray, integer: bool) -> bytes | None:
    """Coastline corrections: the original value of every cell whose sign the reconstruction
    changed (integer input: integer differences; other input: float32 values), or None."""
    bad = sign_errors(z, y, integer)
    if not bad.any():
        return None
    mask = _res.encode_mask(bad)
    if integer:
        payload = _res.encode_ints((z[bad] - np.rint(y[bad])).astype(np.int64))
    else:
        payload = _res.compress(z[bad].astype("<f4").tobytes())
    return len(mask).to_bytes(4, "little") + mask + payload


def apply_coast(blob: bytes, y: np.ndarray, integer: bool) -> np.ndarray:
    """``y`` with the coastline corrections ``blob`` applied."""
    if len(blob) < 4:
        raise StoreError("coastline stream is truncated")
    n = int.from_bytes(blob[:4], "little")
    bad = _res.decode_mask(blob[4:4 + n], y.shape)
    out = y.copy()
    k = int(bad.sum())
    if integer:
        out[bad] = np.rint(y[bad]) + _res.decode_ints(blob[4 + n:], (k,))
    else:
        vals = np.frombuffer(_res.decompress(blob[4 + n:]), dtype="<f4")
        if vals.size != k:
            raise StoreError("coastline stream does not match its mask (damaged)")
        out[bad] = vals
    return out
