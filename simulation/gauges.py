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


def read_exahype_probe(
    path: str | os.PathLike, *, times: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read an ExaHyPE 1 ``probe::ascii`` file of (h, hu, hv, b); return time (s) and eta (m).

    The file (``exahype::plotters::ADERDG2ProbeAscii``) has a header line
    ``# plot-time, real-time,Q0,Q1,Q2,Q3`` and one line per plot: the plot time, the solution's
    time stamp, then the written quantities h, hu, hv, b (km and km²/s: the solver runs in km).
    The time returned is the solution's time stamp (column 2). A last line cut short (a run
    stopped while writing) is dropped; repeated time stamps keep their last sample.

    Times: ExaHyPE samples at the first time step at or after each mark (every ``repeat`` s),
    so the times are not multiples of ``repeat`` and differ between runs. Give ``times`` to
    resample linearly onto that axis (NaN outside the file's span), or use
    :func:`resample_exahype_probes` for several files.

    Precision: ``h`` and ``b`` are written separately with the stream's default 6 significant
    digits, and the sea surface in metres is ``(h + b) * 1000``: at 1–10 km depth each is
    rounded to 1e-5 km, so eta moves in steps of 1 cm and may be off by up to 1 cm (two
    roundings of 0.5 cm); at 0.1–1 km depth, 1 mm. Eta is computed in float64 (float32 would
    add up to 0.5 mm more at 6 km). Times have 6 significant digits too (0.01 s below 10⁴ s).
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ExaHyPE probe {p}: {exc}") from None
    rows = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    data: list[list[float]] = []
    for i, ln in enumerate(rows):
        try:
            values = [float(v) for v in ln.split(",")]
        except ValueError:
            values = []
        if len(values) < 6 or (data and len(values) != len(data[0])):
            if i == len(rows) - 1 and data:
                break  # the last line of a run stopped while writing
            raise InputError(f"{p}: expected columns plot-time, real-time, h, hu, hv, b")
        data.append(values)
    if not data:
        raise InputError(f"{p} holds no probe sample")
    a = np.asarray(data, dtype=np.float64)
    t = a[:, 1]
    # keep the last sample of a repeated time stamp, in time order
    order = np.argsort(t, kind="stable")
    t, a = t[order], a[order]
    keep = np.r_[np.diff(t) > 0, True]
    t, h, b = t[keep], a[keep, 2], a[keep, 5]
    eta = (h + b) * 1000.0
    if times is None:
        return t, eta
    times = np.asarray(times, dtype=np.float64)
    return times, np.interp(times, t, eta, left=np.nan, right=np.nan)


def resample_exahype_probes(paths, *, every: float) -> tuple[np.ndarray, np.ndarray]:
    """Read ExaHyPE probe files (e.g. one probe from several runs) onto one time axis.

    Each run samples at its own time steps (see :func:`read_exahype_probe`); the common axis is
    the multiples of ``every`` (s, normally the probe interval ``repeat``) inside the span
    that every file covers, and each series is interpolated linearly onto it. Returns ``t``
    and ``eta[file, time]`` (m, float64).
    """
    if not every > 0:
        raise InputError(f"the resampling interval must be > 0 s, got {every}")
    series = [read_exahype_probe(p) for p in paths]
    if not series:
        raise InputError("no ExaHyPE probe file given")
    lo = max(float(t[0]) for t, _ in series)
    hi = min(float(t[-1]) for t, _ in series)
    tol = 1e-9 * max(abs(lo), abs(hi), every)
    k0, k1 = int(np.ceil((lo - tol) / every)), int(np.floor((hi + tol) / every))
    if k1 < k0:
        raise InputError("the probe files share no time span")
    t = every * np.arange(k0, k1 + 1, dtype=np.float64)
    t = np.clip(t, lo, hi)  # a mark within rounding of the span's ends
    eta = np.stack([np.interp(t, ts, es) for ts, es in series])
    return t, eta
