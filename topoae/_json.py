"""Python objects as JSON-ready builtins: the one sanitiser behind every header, config and report."""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np


def jsonable(obj: Any, *, strict: bool = False) -> Any:
    """``obj`` as JSON-ready builtins.

    Dataclass instances become dicts, dict keys strings, tuples lists, numpy scalars and
    arrays Python scalars and (nested) lists; ``None``, ``str``, ``int``, ``float`` and
    ``bool`` are kept and anything else becomes ``str(obj)``.

    ``strict=True`` also turns non-finite floats (NaN, ±inf) into ``None``, for strict
    JSON (``json.dumps(..., allow_nan=False)``); by default they are kept, as Python's
    ``json`` writes them (``NaN``, ``Infinity``) and reads them back.
    """
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj), strict=strict)
    if isinstance(obj, dict):
        return {str(k): jsonable(v, strict=strict) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, strict=strict) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), strict=True) if strict else obj.tolist()
    if isinstance(obj, np.generic):
        obj = obj.item()
    elif obj is not None and not isinstance(obj, str | int | float | bool):
        return str(obj)
    return None if strict and isinstance(obj, float) and not math.isfinite(obj) else obj
