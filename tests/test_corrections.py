"""The correction streams hold their rules over any base reconstruction (not only the
learned codec's): the coastline keeps every sign, the relative rule holds on every cell."""

from __future__ import annotations

import numpy as np
import pytest

from topoae.codec import corrections
from topoae.io.synthetic import synthetic_grid


def _pair(integer: bool, seed: int = 0):
    z = synthetic_grid(90, 120, seed=seed).values.astype(np.float64)
    z = np.rint(z) if integer else z + 0.37  # whole metres, or off the integer grid
    z[5, 5] = 0.0
    z[10:13, 20:24] = np.nan
    rng = np.random.default_rng(seed)
    y = np.nan_to_num(z, nan=0.0) + rng.normal(0, 6.0, z.shape)  # a noisy base, any codec's
    return z, y


@pytest.mark.parametrize("integer", [True, False])
def test_coast_keeps_every_sign_in_both_dtypes(integer):
    z, y = _pair(integer)
    assert corrections.sign_errors(z, y, integer).sum() >= 10  # the base moves the coast
    blob = corrections.encode_coast(z, y, integer)
    out = corrections.apply_coast(blob, y, integer)
    ok = np.isfinite(z)
    assert np.array_equal(np.sign(out.astype(np.float32))[ok], np.sign(z)[ok])
    if integer:
        assert np.array_equal(np.sign(np.rint(out))[ok], np.sign(z)[ok])
    assert not corrections.sign_errors(z, out, integer).any()
    assert corrections.encode_coast(z, out, integer) is None  # nothing left to correct
    with pytest.raises(Exception, match="truncated"):
        corrections.apply_coast(blob[:2], y, integer)


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("r", [0.01, 0.1])
def test_relative_rule_holds_on_every_cell(integer, r):
    z, y = _pair(integer, seed=1)
    rule = corrections.RelativeRule(max_error=20.0, relative=r, floor=0.5)
    # an absolutely bounded y1 (|z − y1| ≤ E), as the residual stream leaves it
    y1 = np.where(np.isfinite(z), np.clip(y, z - 20.0, z + 20.0), y)
    if integer:
        y1 = np.rint(y1)
    blob = corrections.encode_relative(z, y1, rule, integer)
    assert blob is not None
    out = corrections.apply_relative(blob, y1, rule, integer)
    ok = np.isfinite(z)
    bound = np.minimum(20.0, np.maximum(0.5, r * np.abs(z[ok])))
    written = np.rint(out[ok]) if integer else out[ok].astype(np.float32).astype(np.float64)
    assert np.all(np.abs(written - z[ok]) <= bound + 1e-9)
    assert np.all(corrections.relative_bounds(y1[ok], rule) <= bound + 1e-9)
