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
    with pytest.raises(InputError, match="not found"):
        rd.load_tiles(tmp_path / "missing.tpk", split, "train")
