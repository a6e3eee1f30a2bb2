"""Nearest-value fill of missing cells: the one copy, used by the patch codec, the
baselines and the simulation exports.

(The learned codec's offset field has its own fill, ``topoae.offset_field``: a
different rule, on purpose, that is part of its bitstream.)
"""

from __future__ import annotations

import numpy as np

from topoae.errors import RegionError


def fill_nearest(
    values: np.ndarray, *, finite: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """``values`` with every missing cell replaced by the value of the nearest valid cell.

    Missing means NaN, or with ``finite=True`` anything not finite (NaN and ±inf).
    "Nearest" is Euclidean in cell indices, ties broken as
    :func:`scipy.ndimage.distance_transform_edt` breaks them. The dtype is kept.

    Returns the filled array (``values`` itself, not a copy, when nothing is missing)
    and the boolean mask of the cells that were missing (``None`` when none was).
    Raises :class:`RegionError` when every cell is missing.
    """
    bad = ~np.isfinite(values) if finite else np.isnan(values)
    if not bad.any():
        return values, None
    if bad.all():
        raise RegionError(
            "the grid holds no finite value" if finite else "the grid has no valid (non-NaN) cell"
        )
    from scipy import ndimage

    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return values[tuple(idx)], bad
