"""Compare gauge time series: arrival time, maximum amplitude, RMSE, correlation, bands.

All series are water-surface elevation above still water (m) on one time axis.
The arrival time is the first time ``|eta - eta(0)|`` reaches ``threshold`` (by default a
fraction of the reference series' peak ``|eta|`` at that gauge, the same for every
series compared at that gauge, so the errors are comparable); it is linearly
interpolated between samples. NaN (a dry gauge) is ignored by every metric.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from topoae.errors import InputError


@dataclass(frozen=True)
class GaugeMetrics:
    """One series against the reference at one gauge (times in s, heights in m)."""

    arrival_time: float
    arrival_time_ref: float
    arrival_time_error: float
    max_amplitude: float
    max_amplitude_ref: float
    max_amplitude_error: float
    max_time: float
    max_time_ref: float
    max_time_error: float
    rmse: float
    correlation: float

    def as_dict(self) -> dict:
        """Plain dict (for CSV/JSON)."""
        return asdict(self)


def arrival_time(t: np.ndarray, eta: np.ndarray, threshold: float) -> float:
    """First time ``|eta - eta[0]| >= threshold`` (interpolated); NaN if never reached.

    Measured from the series' initial value, so the far tail of an initial hump that
    already reaches the gauge at ``t = 0`` does not count as an arrival.
    """
    e = np.nan_to_num(np.asarray(eta, np.float64), nan=0.0)
    a = np.abs(e - e[0])
    hit = np.flatnonzero(a >= threshold)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(t[0])
    a0, a1 = a[i - 1], a[i]
    frac = (threshold - a0) / (a1 - a0) if a1 > a0 else 1.0
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


def _peak(t: np.ndarray, eta: np.ndarray) -> tuple[float, float]:
    e = np.asarray(eta, np.float64)
    if not np.any(np.isfinite(e)):
        return float("nan"), float("nan")
    i = int(np.nanargmax(e))
    return float(e[i]), float(t[i])


def compare_series(
    t: np.ndarray,
    ref: np.ndarray,
    other: np.ndarray,
    *,
    threshold: float | None = None,
    rel_threshold: float = 0.05,
) -> GaugeMetrics:
    """Metrics of ``other`` against ``ref`` sampled at times ``t``.

    ``threshold`` (m) defines arrival; default ``rel_threshold`` × peak ``|ref|``.
    """
    t = np.asarray(t, np.float64)
    ref = np.asarray(ref, np.float64)
    other = np.asarray(other, np.float64)
    if ref.shape != t.shape or other.shape != t.shape:
        raise InputError("series and time axis differ in length")
    if threshold is None:
        peak = float(np.nanmax(np.abs(ref))) if np.any(np.isfinite(ref)) else 0.0
        threshold = rel_threshold * peak if peak > 0 else float("inf")
    ta_ref, ta = arrival_time(t, ref, threshold), arrival_time(t, other, threshold)
    m_ref, tm_ref = _peak(t, ref)
    m, tm = _peak(t, other)
    ok = np.isfinite(ref) & np.isfinite(other)
    rmse = float(np.sqrt(np.mean((ref[ok] - other[ok]) ** 2))) if ok.any() else float("nan")
    if ok.sum() > 2 and np.std(ref[ok]) > 0 and np.std(other[ok]) > 0:
        corr = float(np.corrcoef(ref[ok], other[ok])[0, 1])
    else:
        corr = float("nan")
    return GaugeMetrics(
        arrival_time=ta,
        arrival_time_ref=ta_ref,
        arrival_time_error=ta - ta_ref,
        max_amplitude=m,
        max_amplitude_ref=m_ref,
        max_amplitude_error=m - m_ref,
        max_time=tm,
        max_time_ref=tm_ref,
        max_time_error=tm - tm_ref,
        rmse=rmse,
        correlation=corr,
    )


def quantile_bands(members: np.ndarray, quantiles=(0.05, 0.5, 0.95)) -> np.ndarray:
    """Quantiles across ensemble members: ``members[member, time, ...]`` → ``[q, time, ...]``."""
    m = np.asarray(members, np.float64)
    if m.ndim < 2 or m.shape[0] < 2:
        raise InputError("quantile bands need at least two members")
    return np.nanquantile(m, np.asarray(quantiles, np.float64), axis=0)


def read_exahype_probe(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an ExaHyPE ``probe::ascii`` file of (h, hu, hv, b); return time (s) and eta (m).

    The solver runs in km, so the sea surface in metres is ``(h + b) * 1000``.
    """
    p = Path(path)
    try:
        data = np.loadtxt(p, delimiter=",", comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read ExaHyPE probe {p}: {exc}") from None
    if data.shape[1] < 6:
        raise InputError(f"{p}: expected columns plot-time, real-time, h, hu, hv, b")
    return data[:, 0], (data[:, 2] + data[:, 5]) * 1000.0
