"""The packed tile file a GPU machine is sent: exact round trips, clear errors, and the trainer
reads it as it reads the .npz."""

import json

import numpy as np
import pytest

from topoae.errors import ConfigError, InputError
from topoae.training import rd, tilepack


def _stack(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.integers(-3, 4, (3, 40, 56)), axis=1), axis=2) - 4000
    t = smooth.astype(np.int16)
    t[0, :5, :7] = -32768  # nodata fill
    t[1, 10, 10], t[1, 10, 11], t[1, 11, 10] = 32767, -32768, 32767  # wrap-around residuals
    t[2] = rng.integers(-32768, 32768, (40, 56), dtype=np.int64).astype(np.int16)  # noise
    return t


def test_round_trip_is_exact_for_any_int16(tmp_path):
    tiles = _stack()
    names = ["a", "b", "c"]
    size = tilepack.write(tmp_path / "t.tpk", names, tiles)
    assert size == (tmp_path / "t.tpk").stat().st_size
    got_names, got = tilepack.read(tmp_path / "t.tpk")
    assert got_names == names
    assert got.dtype == np.int16 and np.array_equal(got, tiles)


def test_smooth_tiles_pack_small():
    tiles = _stack()[:2]
    assert len(tilepack.pack(["a", "b"], tiles)) < tiles.nbytes / 3


@pytest.mark.parametrize("cut", [3, 9, 40, -1])
def test_damaged_or_truncated_pack_is_a_clear_error(cut):
    data = tilepack.pack(["a", "b", "c"], _stack())
    with pytest.raises(InputError):
        tilepack.unpack(data[:cut])
    with pytest.raises(InputError, match="not a topoae tile pack"):
        tilepack.unpack(b"XXXX" + data[4:])


@pytest.mark.parametrize("edit", [
    lambda h: {**h, "shape": [3, 40 * 56]},  # the cells, another shape
    lambda h: {**h, "shape": [3, -40, -56]},
    lambda h: {**h, "shape": [3, 40.5, 56]},
    lambda h: {**h, "names": "abc"},
    lambda h: {**h, "planes": [1, 2, 3]},
])
def test_a_rewritten_header_is_a_clear_error(edit):
    """A header edited by hand (its checksum made to match) still cannot give a wrong grid."""
    import struct
    import zlib

    data = tilepack.pack(["a", "b", "c"], _stack())
    (n,) = struct.unpack("<I", data[4:8])
    head = json.dumps(edit(json.loads(data[12:12 + n]))).encode()
    forged = data[:4] + struct.pack("<II", len(head), zlib.crc32(head)) + head + data[12 + n:]
    with pytest.raises(InputError, match="damaged"):
        tilepack.unpack(forged)


def test_a_changed_name_fails_the_header_check():
    data = bytearray(tilepack.pack(["tile_a", "b", "c"], _stack()))
    at = data.index(b"tile_a")
    data[at] = ord("T")
    with pytest.raises(InputError, match="damaged"):
        tilepack.unpack(bytes(data))


def test_pack_refuses_other_dtypes():
    with pytest.raises(ValueError):
        tilepack.pack(["a"], np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError):
        tilepack.pack(["a", "b"], np.zeros((1, 4, 4), np.int16))


def test_trainer_reads_a_pack_as_the_npz(tmp_path):
    tiles = _stack(1)
    names = ["t0", "t1", "t2"]
    np.savez(tmp_path / "t.npz", names=np.array(names), tiles=tiles)
    tilepack.write(tmp_path / "t.tpk", names, tiles)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["t0", "t2"], "val": ["t1"], "test": []}))
    for part in ("train", "val"):
        a = rd.load_tiles(tmp_path / "t.npz", split, part)
        b = rd.load_tiles(tmp_path / "t.tpk", split, part)
        assert np.array_equal(a, b) and len(a) == (2 if part == "train" else 1)
    with pytest.raises(ConfigError, match="no test tile"):
        rd.load_tiles(tmp_path / "t.tpk", split, "test")
    for missing in ("missing.tpk", "missing.npz"):
        with pytest.raises(InputError, match="not found"):
            rd.load_tiles(tmp_path / missing, split, "train")
