"""The binary ``.tae`` header (format 8) and the text coder under it."""

from __future__ import annotations

import contextlib
import hashlib
import json

import numpy as np
import pytest

from topoae.codec import container, header_codec, text_coder
from topoae.errors import StoreError

DICT = container.HEADER_DICT_V5


def _text(v):
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def _typical(**grid):
    h = json.loads(_text(header_codec.TEMPLATE))
    h["model"] = "47575084d6f87c7a"
    h["codec"]["level"] = 2
    h["grid"]["coords"]["lat"]["start"] = 23.13958333333336
    h["grid"]["coords"]["lon"]["start"] = 134.12708333333333
    h["grid"].update(grid)
    return h


def test_the_binary_form_is_frozen():
    """The interned names, role prefixes and template are the format: a change breaks files."""
    frozen = _text([header_codec.STRINGS, header_codec.ROLES, header_codec.TEMPLATE]).encode()
    assert hashlib.sha256(frozen).hexdigest()[:16] == "94b0c05e0e046f10"
    assert (text_coder.UNIGRAM_TOTAL, text_coder.BIGRAM_ROW, text_coder.MIX, text_coder.INCREMENT,
            text_coder.START) == (4096, 1024, 64, 32, 10)
    uni, big = text_coder.prior()
    assert uni.min() >= 1 and big.shape == (256, 256)


@pytest.mark.parametrize("header", [
    _typical(),
    _typical(attrs={"units": "m"}, coord_attrs={}),
    _typical(global_attrs={"title": "Région côtière — Suruga", "history": "a\nb\tc",
                           "source": "GEBCO Compilation Group (2023) GEBCO 2023 Grid"}),
    # values whose JSON types must survive: ints, integral floats, -0.0, float32 and float64,
    # booleans next to 1 and 0, nulls, nested lists and dicts the template does not know
    {**_typical(), "extra": {"i": 1, "f": 1.0, "t": True, "z": 0, "nz": -0.0, "n": None,
                             "neg": -7, "negf": -7.0, "f32": 0.5, "f64": 0.1, "big": 2 ** 62,
                             "huge": 1e300, "tiny": 5e-324, "inf": float("inf"),
                             "nested": [[1, "a"], {"k": [True, None]}], "empty": [], "one": ["x"]}},
    # stream roles of many tiles, masks and coordinates, out of the usual order too
    {**_typical(), "streams": ["offset", *[f"tile:{i},{j}" for i in range(3) for j in range(5)],
                               "mask:1,3", "out:0,0", "out:2,4", "out:2,5", "res:0,0", "filter",
                               "coord:lat", "tile:01,2", "tile:-1,0", "weird:0,0", "tile:0,0"]},
    {"format": "something else", "streams": []},
])
def test_headers_read_back_exactly(header):
    data = header_codec.encode(header, DICT)
    back = header_codec.decode(data, DICT)
    assert _text(back) == _text(header)
    assert data[0] < header_codec.JSON  # all of these have a binary form


def test_a_header_without_a_binary_form_is_kept_as_json():
    h = {**_typical(), "huge_int": 2 ** 70}
    data = header_codec.encode(h, DICT)
    assert data[0] == header_codec.JSON
    assert _text(header_codec.decode(data, DICT)) == _text(h)


def test_the_binary_header_is_smaller_than_format_7s():
    for h in (_typical(), _typical(attrs={"units": "m"}, coord_attrs={})):
        old = len(container._res.compress(_text(h).encode(), 19, dictionary=DICT, magicless=True))
        new = len(header_codec.encode(h, DICT))
        assert new <= old - 25, (new, old)


def test_damaged_headers_are_store_errors():
    data = header_codec.encode(_typical(global_attrs={"title": "a tile of GEBCO"}), DICT)
    for bad in (b"", bytes([9]) + data[1:], data[:-1], data + b"\0", data[:1]):
        with pytest.raises(StoreError):
            header_codec.decode(bad, DICT)
    for i in range(len(data)):  # any flipped byte: a StoreError or a dictionary, nothing else
        flipped = bytearray(data)
        flipped[i] ^= 0x41
        with contextlib.suppress(StoreError):
            assert isinstance(header_codec.decode(bytes(flipped), DICT), dict)


@pytest.mark.parametrize("text", [b"", b"GEBCO 15 arc-second tile", "Région — 東京".encode(),
                                  bytes(range(256)), b"a" * 5000])
def test_the_text_coder_round_trips(text):
    frame = text_coder.encode(text)
    assert text_coder.decode(frame) == text
    assert (len(frame) - 1) % 4 == 0 or len(text) >= 128


def test_the_text_coder_is_pinned_and_beats_zstd_on_prose():
    text = (b"GEBCO Compilation Group (2023) GEBCO 2023 Grid (doi:10.5285/f98b053b-0cbc-6c23-"
            b"e053-6c86abc0af7b); subset converted to NetCDF")
    frame = text_coder.encode(text)
    assert hashlib.sha256(frame).hexdigest()[:16] == "a593b16b3696b439"
    assert len(frame) < len(container._res.compress(text, 19, dictionary=DICT, magicless=True))


def test_a_damaged_text_frame_or_prior_is_a_store_error(monkeypatch):
    frame = text_coder.encode(b"some text of a grid")
    with pytest.raises(StoreError):
        text_coder.decode(frame[:-1])
    with pytest.raises(StoreError):
        text_coder.decode(b"\xff\xff\xff\xff\x0f" + frame[1:])
    text_coder.prior.cache_clear()
    monkeypatch.setattr(text_coder, "PRIOR_SHA256", "0" * 64)
    try:
        with pytest.raises(StoreError, match="frozen prior"):
            text_coder.decode(frame)
    finally:
        monkeypatch.undo()
        text_coder.prior.cache_clear()
    with pytest.raises(ValueError):
        text_coder.encode(b"x" * (text_coder.MAX_BYTES + 1))
    assert np.array_equal(text_coder.prior()[0], text_coder.prior()[0])


def test_a_small_damaged_header_cannot_claim_a_large_one():
    """A few bytes that declare millions of stream names or a huge zstd body are refused
    before anything that size is made."""
    from topoae.codec.entropy import _put_uvarint

    names = bytearray([header_codec._NAMES])
    _put_uvarint(names, header_codec.MAX_NAMES + 1)
    with pytest.raises(StoreError, match="more streams"):
        header_codec.decode(bytes([0]) + bytes(names), DICT)
    bomb = container._res.compress(bytes(header_codec.MAX_BYTES + 1), 19, dictionary=DICT, magicless=True)
    assert len(bomb) < 4096
    for mode in (header_codec.BODY_ZSTD, header_codec.JSON):
        with pytest.raises(StoreError, match="expands past"):
            header_codec.decode(bytes([mode]) + bomb, DICT)
    with pytest.raises(StoreError):  # a text frame that claims more than the coder takes
        text_coder.decode(bytes.fromhex("83f139"))


def test_deep_or_long_headers_fall_back_to_json():
    deep: dict = {}
    node = deep
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    h = {**_typical(), "deep": deep}
    data = header_codec.encode(h, DICT)
    assert data[0] == header_codec.JSON and header_codec.decode(data, DICT) == h
    long = {**_typical(), "history": "x" * (text_coder.MAX_BYTES + 10)}
    data = header_codec.encode(long, DICT)
    assert data[0] & 3 != header_codec.TEXT_CODED and header_codec.decode(data, DICT) == long


def test_a_tampered_prior_is_refused(monkeypatch, tmp_path):
    uni, big = text_coder.prior()
    fake = tmp_path / "prior.npz"
    np.savez(fake, unigram=uni.astype(np.int64) + 65536, bigram=big.astype(np.int64))  # same <u2 bytes
    monkeypatch.setattr(text_coder, "PRIOR_FILE", fake)
    text_coder.prior.cache_clear()
    try:
        with pytest.raises(StoreError, match="frozen prior"):
            text_coder.prior()
    finally:
        monkeypatch.undo()
        text_coder.prior.cache_clear()
