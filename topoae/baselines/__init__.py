"""Classic and learned-free compressors that topoae is measured against.

Every baseline encodes a 2-D float32 grid (metres, NaN allowed) into
self-contained bytes, so ratios count all side information, and can be swept
to a target compression ratio (:meth:`Baseline.at_ratio`); the error-bounded
ones also encode at a max-error bound (:meth:`Baseline.at_error`).

>>> from topoae.baselines import get_baseline
>>> enc = get_baseline("sperr").at_ratio(z, 92)          # doctest: +SKIP
>>> z_hat = get_baseline("sperr").decode(enc.blob)        # doctest: +SKIP

Optional libraries (``pip install 'topoae[compare]'``: imagecodecs, pysz) are
imported only when a codec runs; :func:`resolve` skips missing ones with a
warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from topoae.baselines.base import Baseline, Encoded, Knob
from topoae.baselines.classic import JPEG2000, JPEGXL, LERC, SPERR, SZ3, ZFP
from topoae.baselines.transform import DCT, PCA, Downsample
from topoae.errors import ConfigError

REGISTRY: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (SZ3, SPERR, ZFP, LERC, JPEG2000, JPEGXL, PCA, DCT, Downsample)
}
#: What ``topoae evaluate`` compares with when not told otherwise.
DEFAULT_COMPARE = ("sz3", "sperr", "zfp", "jpeg2000", "jpegxl", "lerc", "pca", "dct", "downsample")
_ALIASES = {"j2k": "jpeg2000", "jpeg2k": "jpeg2000", "jxl": "jpegxl", "ds": "downsample"}

__all__ = [
    "DEFAULT_COMPARE",
    "REGISTRY",
    "Baseline",
    "Encoded",
    "Knob",
    "get_baseline",
    "parse_names",
    "resolve",
]


def parse_names(names: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical baseline names from ``"sz3,sperr"`` or a list; unknown names raise ConfigError."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        n = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if not n:
            continue
        if n not in REGISTRY:
            raise ConfigError(f"unknown baseline {raw!r}; known: {', '.join(REGISTRY)}")
        if n not in out:
            out.append(n)
    return tuple(out)


def get_baseline(name: str, **kwargs) -> Baseline:
    """A new instance of the baseline called ``name`` (aliases: j2k, jxl)."""
    (n,) = parse_names([name])
    return REGISTRY[n](**kwargs)


def resolve(names: str | Iterable[str]) -> list[Baseline]:
    """Instances of the named baselines whose libraries are installed; the others are skipped with a warning."""
    out = []
    for n in parse_names(names):
        cls = REGISTRY[n]
        if cls.available():
            out.append(cls())
        else:
            warnings.warn(
                f"skipping baseline {n!r}: needs {', '.join(cls.requires)} "
                "(pip install 'topoae[compare]')",
                stacklevel=2,
            )
    return out
