"""The classic lossy compressors: SZ3, SPERR, ZFP, LERC, JPEG2000, JPEG XL.

Each runs on the whole region, single-threaded, through its Python binding
(``pysz`` for SZ3 when installed, ``imagecodecs`` for the others). The image
codecs (JPEG2000, JPEG XL) take unsigned 16-bit samples: the grid is mapped
linearly onto 0..65535 and the two float32 ends are stored in the stream
(quantisation error at most ``range / 131070``, 0.15 m for a 10 km range).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from topoae.baselines.base import Baseline, Knob

_RANGE = struct.Struct("<ff")
_U16 = 65535.0


def _to_u16(z: np.ndarray) -> tuple[bytes, np.ndarray]:
    lo, hi = float(z.min()), float(z.max())
    lo32, hi32 = np.float32(lo), np.float32(hi if hi > lo else lo + 1.0)
    q = np.rint((z.astype(np.float64) - lo32) / (float(hi32) - float(lo32)) * _U16)
    return _RANGE.pack(lo32, hi32), np.clip(q, 0, _U16).astype(np.uint16)


def _from_u16(head: bytes, q: np.ndarray) -> np.ndarray:
    lo, hi = _RANGE.unpack(head)
    return (q.astype(np.float64) / _U16 * (hi - lo) + lo).astype(np.float32)


class SZ3(Baseline):
    """SZ3, error-bounded (absolute bound in metres), prediction + quantisation."""

    name = "sz3"
    description = "SZ3 (absolute error bound)"
    requires = ("pysz or imagecodecs",)
    knob = Knob("abs_error", 1e-5, 1.0, log=True, increasing=False, relative=True)
    error_bounded = True

    @classmethod
    def available(cls) -> bool:
        import importlib.util

        return any(importlib.util.find_spec(m) is not None for m in ("pysz", "imagecodecs"))

    def _require(self) -> None:
        if not self.available():
            from topoae.errors import DependencyError

            raise DependencyError(
                "baseline 'sz3' needs pysz or imagecodecs (pip install 'topoae[compare]')"
            )

    @staticmethod
    def _pysz():
        try:
            import pysz
        except ImportError:
            return None
        return pysz

    def _encode(self, z: np.ndarray, *, abs_error: float) -> bytes:
        pysz = self._pysz()
        if pysz is not None:
            conf = pysz.szConfig()
            conf.errorBoundMode = pysz.szErrorBoundMode.ABS
            conf.absErrorBound = float(abs_error)
            comp, _ = pysz.sz.compress(z, conf)
            return b"P" + comp.tobytes()
        import imagecodecs

        return b"I" + bytes(imagecodecs.sz3_encode(z, abs=float(abs_error)))

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        tag, body = payload[:1], payload[1:]
        if tag == b"P":
            pysz = self._pysz()
            if pysz is None:
                from topoae.errors import DependencyError

                raise DependencyError("this SZ3 stream was written with pysz: pip install pysz")
            out, _ = pysz.sz.decompress(np.frombuffer(body, np.uint8).copy(), np.float32, shape)
            return out
        import imagecodecs

        return imagecodecs.sz3_decode(body, shape, np.float32)

    def bounded_setting(self, max_error: float) -> dict[str, Any]:
        return {"abs_error": max_error}


class SPERR(Baseline):
    """SPERR, wavelet coder in point-wise-error mode (bound in metres)."""

    name = "sperr"
    description = "SPERR (point-wise error bound)"
    requires = ("imagecodecs",)
    knob = Knob("pwe", 1e-5, 1.0, log=True, increasing=False, relative=True)
    error_bounded = True

    def _encode(self, z: np.ndarray, *, pwe: float) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.sperr_encode(z, float(pwe), "pwe", numthreads=1))

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        import imagecodecs

        return imagecodecs.sperr_decode(payload, numthreads=1)

    def bounded_setting(self, max_error: float) -> dict[str, Any]:
        return {"pwe": max_error}


class ZFP(Baseline):
    """ZFP fixed-rate mode (bits per value) for ratios; fixed-accuracy mode for a bound."""

    name = "zfp"
    description = "ZFP (fixed rate; fixed accuracy when bounded)"
    requires = ("imagecodecs",)
    knob = Knob("rate", 0.05, 32.0, log=True, increasing=True)
    error_bounded = True

    def _encode(
        self, z: np.ndarray, *, rate: float | None = None, tolerance: float | None = None
    ) -> bytes:
        import imagecodecs

        # imagecodecs' stubs type zfp's level as int; accuracy and rate are floats
        if tolerance is not None:
            tol = float(tolerance)
            return bytes(imagecodecs.zfp_encode(z, tol, mode="accuracy"))  # type: ignore[arg-type]
        if rate is None:
            raise TypeError("ZFP needs a rate or a tolerance")
        return bytes(imagecodecs.zfp_encode(z, float(rate), mode="rate"))  # type: ignore[arg-type]

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        import imagecodecs

        return imagecodecs.zfp_decode(payload)

    def bounded_setting(self, max_error: float) -> dict[str, Any]:
        return {"tolerance": max_error}


class LERC(Baseline):
    """LERC (Esri), error-bounded (max Z error in metres)."""

    name = "lerc"
    description = "LERC (max Z error)"
    requires = ("imagecodecs",)
    knob = Knob("max_z_error", 1e-5, 1.0, log=True, increasing=False, relative=True)
    error_bounded = True

    def _encode(self, z: np.ndarray, *, max_z_error: float) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.lerc_encode(z, float(max_z_error)))

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        import imagecodecs

        out = imagecodecs.lerc_decode(payload)
        return out[0] if isinstance(out, tuple) else out

    def bounded_setting(self, max_error: float) -> dict[str, Any]:
        return {"max_z_error": max_error}


class JPEG2000(Baseline):
    """JPEG2000 (OpenJPEG, irreversible 9/7 wavelet) on 16-bit samples; knob: target PSNR in dB."""

    name = "jpeg2000"
    description = "JPEG2000 (OpenJPEG, 16-bit, target PSNR)"
    requires = ("imagecodecs",)
    knob = Knob("psnr_db", 5.0, 110.0, log=False, increasing=True)

    def _encode(self, z: np.ndarray, *, psnr_db: float) -> bytes:
        import imagecodecs

        head, q = _to_u16(z)
        return head + bytes(
            # imagecodecs' stubs type the level as int; OpenJPEG takes a PSNR in dB
            imagecodecs.jpeg2k_encode(
                q, float(psnr_db), codecformat="j2k", numthreads=1  # type: ignore[arg-type]
            )
        )

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        import imagecodecs

        n = _RANGE.size
        return _from_u16(payload[:n], imagecodecs.jpeg2k_decode(payload[n:], numthreads=1))


class JPEGXL(Baseline):
    """JPEG XL (libjxl, VarDCT) on 16-bit samples; knob: Butteraugli distance."""

    name = "jpegxl"
    description = "JPEG XL (libjxl, 16-bit, effort 7)"
    requires = ("imagecodecs",)
    knob = Knob("distance", 0.01, 25.0, log=True, increasing=False)

    def __init__(self, effort: int = 7) -> None:
        self.effort = effort

    def _encode(self, z: np.ndarray, *, distance: float) -> bytes:
        import imagecodecs

        head, q = _to_u16(z)
        return head + bytes(
            imagecodecs.jpegxl_encode(q, distance=float(distance), effort=self.effort, numthreads=1)
        )

    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        import imagecodecs

        n = _RANGE.size
        return _from_u16(payload[:n], imagecodecs.jpegxl_decode(payload[n:], numthreads=1))
