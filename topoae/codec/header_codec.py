"""A compact binary form of the ``.tae`` header (format version 8).

Format versions 2–7 store the header as zstd-compressed JSON against a dictionary; a 512²
GEBCO tile's header still took ~100 bytes without its attributes, ~200 with them: a fixed
cost that decides high ratios (400× of a 512² tile is 2.6 kB). Version 8 stores the same
dictionary of values as a typed binary stream, written as a difference from a frozen typical
header (:data:`TEMPLATE`):

* every dictionary whose template is a dictionary gives each template key (sorted) two bits
  (absent / equal to the template's value / changed, the changed values follow), then the
  keys the template lacks;
* integers are varints, integral floats zigzag varints, floats four bytes where float32 holds
  them exactly, eight otherwise; lower-case hex strings (the model id) are their bytes; the
  names in :data:`STRINGS` are one byte; a role name such as ``"tile:3,4"`` is a prefix index
  and two varints, and in a list of names (the streams) two bits when it follows the name
  before it (``tile:3,5`` after ``tile:3,4``, ``tile:4,0`` after ``tile:3,k``) or is a
  prefix's ``:0,0``;
* other strings (a grid's title, source, history) go to a text section of their own.

Layout: one byte, then the text section (its length and bytes) if there is one, then the
structure. The byte says how the text section is held (as is, zstd against the version-5
header dictionary, or range-coded by :mod:`topoae.codec.text_coder`, whichever is smallest)
and whether the structure is zstd-compressed (a region of many tiles); or, with the value
:data:`JSON`, that the rest is the header's JSON, compressed like format 7's, which the encoder
writes should the binary form not read back exactly. It decodes what it wrote and compares the
two headers' canonical JSON, so a header always reads back as the one written: same keys,
values and types (``6`` stays ``6``, ``6.0`` stays ``6.0``, ``True`` stays ``True``); only the
order of a dictionary's keys may differ (the template's first), which no reader depends on.
:data:`STRINGS`, :data:`ROLES` and :data:`TEMPLATE` are frozen: a change is a new format version
(a test pins their digest).
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

from topoae.codec import residual as _res
from topoae.codec import text_coder
from topoae.codec.entropy import _get_uvarint, _put_uvarint
from topoae.errors import StoreError

#: Names coded in one byte (index + :data:`_INTERNED`): the header's keys and common values.
STRINGS: tuple[str, ...] = (
    # keys
    "format", "topoae", "model", "codec", "grid", "streams", "level", "tile", "margin",
    "synth_margin", "max_error", "keep_attrs", "outliers", "coastline", "relative_error",
    "floor", "scale_exp", "outlier_bits", "edge", "align", "offset_step", "name", "dims", "shape", "dtype",
    "integer", "coords", "coord_attrs", "attrs", "crs", "nan_cells", "global_attrs",
    "descending", "kind", "start", "stop", "n", "per", "sign", "ulps", "k", "origin",
    "float32", "long_name", "units", "standard_name", "positive", "grid_mapping", "title",
    "Conventions", "source", "history", "axis", "_FillValue", "references", "institution",
    "comment",
    # values
    "topoae-rd", "0.1.0", "mirror", "zero", "exact", "elevation", "z", "Band1", "depth",
    "lat", "lon", "y", "x", "latitude", "longitude", "int16", "float64", "int32",
    "linspace", "packed", "step", "div", "index", "origin_mul", "origin_div", "edge_end",
    "degrees_north", "degrees_east", "m", "metre", "metres", "meters", "up", "down", "Y", "X",
    "EPSG:4326", "spatial_ref", "CF-1.6", "CF-1.7", "CF-1.8", "GEBCO",
    "height_above_mean_sea_level", "Elevation relative to sea level",
    "projection_x_coordinate", "projection_y_coordinate", "offset", "filter",
    "coord:lat", "coord:lon", "coord:y", "coord:x", "", "skip",
)
_INTERNED = 32  # tags from here on: an interned string
assert _INTERNED + len(STRINGS) <= 256 and len(set(STRINGS)) == len(STRINGS)
_INDEX = {s: i for i, s in enumerate(STRINGS)}

#: Role prefixes of the per-tile streams (``"tile:r,c"``): one byte and two varints.
ROLES: tuple[str, ...] = ("tile", "out", "res", "rel", "coast", "mask", "coord")
_ROLE = re.compile(r"([a-z]+):(0|[1-9][0-9]*),(0|[1-9][0-9]*)")

#: The typical header the binary form is a difference from (a 512² GEBCO 15″ tile).
TEMPLATE: dict[str, Any] = {
    "format": "topoae-rd", "topoae": "0.1.0", "model": "0000000000000000",
    "codec": {"level": 2, "tile": 512, "margin": 32, "synth_margin": 2, "max_error": None,
              "keep_attrs": True, "outliers": True, "coastline": None, "relative_error": None,
              "floor": 0.5, "scale_exp": 20, "outlier_bits": 6.0, "edge": "mirror", "align": 16,
              "offset_step": 16.0},
    "grid": {"name": "elevation", "dims": ["lat", "lon"], "shape": [512, 512], "dtype": "int16",
             "integer": True,
             "coords": {"lat": {"kind": "edge_end", "n": 512, "per": 240, "sign": 1, "start": 0.0},
                        "lon": {"kind": "edge", "n": 512, "per": 240, "sign": 1, "start": 0.0}},
             "coord_attrs": {"lat": {"standard_name": "latitude", "units": "degrees_north"},
                             "lon": {"standard_name": "longitude", "units": "degrees_east"}},
             "attrs": {"long_name": "Elevation relative to sea level",
                       "standard_name": "height_above_mean_sea_level", "units": "m"},
             "crs": "EPSG:4326", "nan_cells": 0,
             "global_attrs": {"Conventions": "CF-1.6", "source": "GEBCO", "title": "GEBCO"}},
    "streams": ["offset", "tile:0,0", "out:0,0", "filter"],
}

# the first byte: how the literal strings are held (bits 0-1: none, as they are, zstd, the
# text coder), whether the structure is zstd-compressed (bit 2), or the JSON form (8)
NO_TEXT, TEXT_RAW, TEXT_ZSTD, TEXT_CODED = 0, 1, 2, 3
BODY_ZSTD, JSON = 4, 8
# value tags
_NULL, _FALSE, _TRUE, _UINT, _NINT, _FINT, _F32, _F64, _STR, _HEX, _ROLE_TAG, _LIST, _DICT, _DIFF, _NAMES = range(15)
# a list of strings (the stream roles): two bits a name, then the names spelled out
_NEXT_COL, _NEXT_ROW, _ORIGIN, _SPELLED = 0, 1, 2, 3
_ABSENT, _SAME, _CHANGED = 0, 1, 2


#: the most a header's structure, text section or JSON may expand to, and the most stream names
#: it may list: a damaged header of a few bytes must not claim gigabytes
MAX_BYTES = 16 << 20
MAX_NAMES = 1 << 20


def canonical(v: Any) -> str:
    """The header's JSON as formats 1–7 store it (compact, keys sorted)."""
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def _pack2(codes: list[int]) -> bytearray:
    """Two-bit codes, four to a byte, lowest bits first."""
    packed = bytearray((len(codes) + 3) // 4)
    for i, c in enumerate(codes):
        packed[i // 4] |= c << (2 * (i % 4))
    return packed


def _unpack2(packed: bytes, n: int) -> list[int]:
    return [(packed[i // 4] >> (2 * (i % 4))) & 3 for i in range(n)]


def _role(name: str) -> tuple[str, int, int] | None:
    """``("tile", 3, 4)`` for ``"tile:3,4"`` (a prefix of :data:`ROLES`, canonical numbers)."""
    m = _ROLE.fullmatch(name)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m and m.group(1) in ROLES else None


class _Writer:
    """The binary form being written: the structure, and the literal strings apart."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.texts: list[str] = []

    def string(self, s: str) -> None:
        out = self.out
        i = _INDEX.get(s)
        if i is not None:
            out.append(_INTERNED + i)
            return
        role = _role(s)
        if role is not None:
            out.append(_ROLE_TAG)
            out.append(ROLES.index(role[0]))
            _put_uvarint(out, role[1])
            _put_uvarint(out, role[2])
            return
        if len(s) >= 2 and len(s) % 2 == 0 and re.fullmatch(r"[0-9a-f]+", s):
            out.append(_HEX)
            _put_uvarint(out, len(s) // 2)
            out += bytes.fromhex(s)
            return
        out.append(_STR)
        self.texts.append(s)

    def number(self, v: float) -> None:
        out = self.out
        if math.isfinite(v) and abs(v) < 2.0 ** 53 and v == int(v) and not (v == 0 and math.copysign(1.0, v) < 0):
            i = int(v)
            out.append(_FINT)
            _put_uvarint(out, 2 * i if i >= 0 else -2 * i - 1)
            return
        try:
            f32 = struct.unpack("<f", struct.pack("<f", v))[0]
        except OverflowError:
            f32 = None
        if f32 == v or math.isnan(v):
            out.append(_F32)
            out += struct.pack("<f", v)
        else:
            out.append(_F64)
            out += struct.pack("<d", v)

    def value(self, v: Any, tmpl: Any = None) -> None:
        out = self.out
        if v is None:
            out.append(_NULL)
        elif v is True or v is False:
            out.append(_TRUE if v else _FALSE)
        elif isinstance(v, int):
            out.append(_UINT if v >= 0 else _NINT)
            _put_uvarint(out, abs(v))
        elif isinstance(v, float):
            self.number(v)
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, (list, tuple)) and len(v) > 1 and all(isinstance(x, str) for x in v):
            self._names(list(v))
        elif isinstance(v, (list, tuple)):
            out.append(_LIST)
            _put_uvarint(out, len(v))
            for x in v:
                self.value(x)
        elif isinstance(v, dict) and isinstance(tmpl, dict):
            out.append(_DIFF)
            keys = sorted(tmpl)
            codes = [_ABSENT if k not in v else _SAME if canonical(v[k]) == canonical(tmpl[k]) else _CHANGED
                     for k in keys]
            out += _pack2(codes)
            for k, c in zip(keys, codes, strict=True):
                if c == _CHANGED:
                    self.value(v[k], tmpl[k])
            self._extra({k: v[k] for k in v if k not in tmpl})
        elif isinstance(v, dict):
            out.append(_DICT)
            self._extra(v)
        else:
            raise TypeError(f"a header holds no {type(v).__name__}")

    def _names(self, names: list[str]) -> None:
        """A role ``p:r,c`` right of the one before (``p:r,c-1``) or starting the next row
        (``p:r-1,k``, ``c`` = 0) is two bits; a role ``p:0,0`` two bits and its prefix's index;
        any other name is spelled out after the codes."""
        self.out.append(_NAMES)
        _put_uvarint(self.out, len(names))
        roles = [_role(name) for name in names]
        codes = []
        prev = None
        for cur in roles:
            if cur and prev and cur[0] == prev[0] and cur[1:] == (prev[1], prev[2] + 1):
                codes.append(_NEXT_COL)
            elif cur and prev and cur[0] == prev[0] and cur[1:] == (prev[1] + 1, 0):
                codes.append(_NEXT_ROW)
            elif cur and cur[1:] == (0, 0):
                codes.append(_ORIGIN)
            else:
                codes.append(_SPELLED)
            prev = cur
        self.out += _pack2(codes)
        for name, role, c in zip(names, roles, codes, strict=True):
            if c == _SPELLED:
                self.string(name)
            elif c == _ORIGIN:
                assert role is not None
                self.out.append(ROLES.index(role[0]))

    def _extra(self, d: dict) -> None:
        _put_uvarint(self.out, len(d))
        for k in sorted(d):
            self.string(str(k))
            self.value(d[k])


class _Reader:
    def __init__(self, data: bytes, texts: list[str]) -> None:
        self.data, self.pos, self.texts = data, 0, iter(texts)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise StoreError("header ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self) -> int:
        v, self.pos = _get_uvarint(self.data, self.pos)
        return v

    def take(self, n: int) -> bytes:
        b = self.data[self.pos:self.pos + n]
        if len(b) != n:
            raise StoreError("header ends early")
        self.pos += n
        return b

    def value(self, tmpl: Any = None) -> Any:
        t = self.byte()
        if t >= _INTERNED:
            return STRINGS[t - _INTERNED]
        if t in (_NULL, _FALSE, _TRUE):
            return (None, False, True)[t]
        if t in (_UINT, _NINT):
            u = self.uint()
            return u if t == _UINT else -u
        if t == _FINT:
            u = self.uint()
            return float(u // 2 if u % 2 == 0 else -(u + 1) // 2)
        if t == _F32:
            return float(struct.unpack("<f", self.take(4))[0])
        if t == _F64:
            return float(struct.unpack("<d", self.take(8))[0])
        if t == _STR:
            text = next(self.texts, None)
            if text is None:
                raise StoreError("header names more strings than it holds")
            return text
        if t == _HEX:
            return self.take(self.uint()).hex()
        if t == _ROLE_TAG:
            p = self.byte()
            return f"{ROLES[p]}:{self.uint()},{self.uint()}"
        if t == _LIST:
            return [self.value() for _ in range(self.uint())]
        if t == _NAMES:
            return self.names()
        if t == _DICT:
            return {self.key(): self.value() for _ in range(self.uint())}
        if t == _DIFF:
            if not isinstance(tmpl, dict):
                raise StoreError("header difference without a template")
            keys = sorted(tmpl)
            out: dict[str, Any] = {}
            for k, c in zip(keys, _unpack2(self.take((len(keys) + 3) // 4), len(keys)), strict=True):
                if c == _SAME:
                    out[k] = json.loads(canonical(tmpl[k]))  # a copy
                elif c == _CHANGED:
                    out[k] = self.value(tmpl[k])
                elif c != _ABSENT:
                    raise StoreError("header holds an invalid key code")
            for _ in range(self.uint()):
                k = self.key()
                out[k] = self.value()
            return out
        raise StoreError(f"header holds an unknown value tag {t}")

    def names(self) -> list[str]:
        n = self.uint()
        if n > MAX_NAMES:
            raise StoreError("header names more streams than a file may hold (damaged?)")
        out: list[str] = []
        prev: tuple[str, int, int] | None = None
        for c in _unpack2(self.take((n + 3) // 4), n):
            if c == _SPELLED:
                name = self.key()
                prev = _role(name)
            elif c == _ORIGIN:
                p = self.byte()
                if p >= len(ROLES):
                    raise StoreError("header holds an invalid stream name")
                prev = (ROLES[p], 0, 0)
                name = f"{ROLES[p]}:0,0"
            elif prev is None:
                raise StoreError("header holds an invalid stream name code")
            else:
                prev = (prev[0], prev[1], prev[2] + 1) if c == _NEXT_COL else (prev[0], prev[1] + 1, 0)
                name = f"{prev[0]}:{prev[1]},{prev[2]}"
            out.append(name)
        return out

    def key(self) -> str:
        k = self.value()
        if not isinstance(k, str):
            raise StoreError("header holds a key that is not a string")
        return k


def _zstd(raw: bytes, dictionary: bytes) -> bytes:
    return _res.compress(raw, 19, dictionary=dictionary, magicless=True)


def _unzstd(frame: bytes, dictionary: bytes) -> bytes:
    """Inverse of :func:`_zstd`, refusing a frame that would expand past :data:`MAX_BYTES`."""
    return _res.decompress(frame, dictionary=dictionary, magicless=True, max_size=MAX_BYTES)


def encode(header: dict[str, Any], dictionary: bytes) -> bytes:
    """The header's bytes: its binary form (the literal strings as they are, zstd-compressed
    against ``dictionary`` or range-coded by :mod:`topoae.codec.text_coder`, and the structure
    as it is or zstd-compressed: whichever is smallest), or its JSON compressed so should the
    binary form not read back exactly."""
    try:
        w = _Writer()
        w.value(header, TEMPLATE)
        texts = bytearray()
        for t in w.texts:
            b = t.encode("utf-8")
            _put_uvarint(texts, len(b))
            texts += b
        out = bytearray()
        mode = NO_TEXT
        if texts:
            forms = {TEXT_RAW: bytes(texts), TEXT_ZSTD: _zstd(bytes(texts), dictionary)}
            if len(texts) <= text_coder.MAX_BYTES:
                forms[TEXT_CODED] = text_coder.encode(bytes(texts))
            mode = min(forms, key=lambda f: (len(forms[f]), f))
            _put_uvarint(out, len(forms[mode]))
            out += forms[mode]
        body = bytes(w.out)
        packed = _zstd(body, dictionary)
        if len(packed) < len(body):
            mode, body = mode | BODY_ZSTD, packed
        data = bytes([mode]) + bytes(out) + body
        if canonical(decode(data, dictionary)) == canonical(header):
            return data
    except (TypeError, StoreError, ValueError, OverflowError, UnicodeError, RecursionError):
        pass
    return bytes([JSON]) + _zstd(canonical(header).encode(), dictionary)


def decode(data: bytes, dictionary: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode`; a damaged header is a :class:`StoreError`."""
    try:
        return _decode(data, dictionary)
    except StoreError:
        raise
    except (ValueError, IndexError, RecursionError):  # bad UTF-8 or JSON, runaway nesting
        raise StoreError("header is damaged") from None


def _decode(data: bytes, dictionary: bytes) -> dict[str, Any]:
    if not data:
        raise StoreError("header is empty")
    mode = data[0]
    if mode == JSON:
        out = json.loads(_unzstd(bytes(data[1:]), dictionary))
    elif mode < JSON:
        r = _Reader(bytes(data), [])
        r.pos = 1
        texts: list[str] = []
        if mode & 3:
            blob = r.take(r.uint())
            if mode & 3 == TEXT_ZSTD:
                blob = _unzstd(blob, dictionary)
            elif mode & 3 == TEXT_CODED:
                blob = text_coder.decode(blob)
            t = _Reader(blob, [])
            while t.pos < len(blob):
                texts.append(t.take(t.uint()).decode("utf-8"))
        body = bytes(data[r.pos:])
        if mode & BODY_ZSTD:
            body = _unzstd(body, dictionary)
        r = _Reader(body, texts)
        out = r.value(TEMPLATE)
        if r.pos != len(body) or next(r.texts, None) is not None:
            raise StoreError("header holds bytes after its end")
    else:
        raise StoreError(f"header has an unknown form {mode}")
    if not isinstance(out, dict):
        raise StoreError("header is not a dictionary")
    return out
