"""``topoae tile --split-by-file``: whole inputs per split; the rd trainer reads such a store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.data import splits
from topoae.data.tiling import TileConfig, open_store, tile
from topoae.errors import ConfigError

CELL = 15.0 / 3600.0  # the synthetic grids' 15″ cells
N = 64  # each file is N×N cells: 4 patches of 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Five small GEBCO-format files: a, b, c apart; d overlaps a by half; e touches a's east edge."""
    from topoae.io.synthetic import write_synthetic_gebco

    d = tmp_path_factory.mktemp("by_file")
    places = {"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (2.0, 0.0), "d": (N / 2 * CELL, 0.0)}
    places["e"] = (N * CELL, 0.0)
    return {
        k: write_synthetic_gebco(d / f"{k}.nc", N, N, seed=i, lon0=lon, lat0=lat)
        for i, (k, (lon, lat)) in enumerate(places.items())
    }


def _json(tmp_path, doc, name="split.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_every_patch_of_a_file_goes_to_its_split(tmp_path, files):
    doc = {
        "note": "ignored",
        "kinds": {"a": "x"},
        "train": ["a", "d"],
        "val": ["b"],
        "test": ["c", "not-an-input"],
    }
    out = tmp_path / "p.zarr"
    inputs = [files[k] for k in "abcd"]
    r = run("tile", *inputs, "--out", out, "--patch", 32, "--split-by-file", _json(tmp_path, doc))
    assert r.exit_code == 0, r.output
    g, attrs = open_store(out)
    source, split = g["source"][:], g["split"][:]
    want = {0: splits.TRAIN, 1: splits.VAL, 2: splits.TEST, 3: splits.TRAIN}
    assert sorted(set(source.tolist())) == [0, 1, 2, 3]
    for gi, lab in want.items():
        assert np.all(split[source == gi] == lab)
    assert attrs["split"] == {
        "by": "file",
        "files": {"train": ["a", "d"], "val": ["b"], "test": ["c"]},
    }
    assert ["a", "train"] in attrs["config"]["split_by_file"]
    assert (
        attrs["counts"]["train"] == 8
        and attrs["counts"]["val"] == 4
        and attrs["counts"]["test"] == 4
    )


def test_block_split_is_recorded_too(tmp_path, files):
    tile(
        [_open(files["a"])],
        tmp_path / "b.zarr",
        TileConfig(patch=32, block=1, split=(0.5, 0.25, 0.25)),
    )
    _, attrs = open_store(tmp_path / "b.zarr")
    assert attrs["split"] == {
        "by": "blocks",
        "fractions": [0.5, 0.25, 0.25],
        "block_cells": 32,
        "seed": 0,
    }


def test_touching_files_may_differ_overlapping_ones_may_not(tmp_path, files):
    ok = {"train": ["a"], "val": ["e"]}  # e starts where a ends: no shared cell
    r = run(
        "tile",
        files["a"],
        files["e"],
        "--out",
        tmp_path / "ok.zarr",
        "--patch",
        32,
        "--split-by-file",
        _json(tmp_path, ok),
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("inputs", "doc", "extra", "message"),
    [
        ("ab", {"train": ["a"]}, [], "input b is in no split"),
        (
            "abc",
            {"train": ["a"], "val": ["x"]},
            [],
            "input b is in no split of the split file (and 1 more)",
        ),
        (
            "ab",
            {"train": ["a", "b"], "test": ["b"]},
            [],
            "b is listed in two splits (train and test)",
        ),
        ("abd", {"train": ["a", "b"], "val": ["d"]}, [], "inputs a (train) and d (val) overlap"),
        (
            "ab",
            {"train": ["a", "b"]},
            ["--split", "0.8,0.1,0.1"],
            "--split-by-file and --split exclude",
        ),
        ("ab", {"train": ["a", "b"]}, ["--block", "2"], "--split-by-file and --block exclude"),
        ("ab", {"training": ["a", "b"]}, [], "must map train/val/test to lists"),
        ("ab", {"train": "a"}, [], "must map train/val/test to lists"),
        ("ab", "{not json", [], "cannot read split file"),
        ("ab", None, [], "does not exist"),
    ],
)
def test_refusals_are_one_line_and_leave_no_store(tmp_path, files, inputs, doc, extra, message):
    if doc is None:
        sf = tmp_path / "missing.json"
    elif isinstance(doc, str):
        sf = tmp_path / "bad.json"
        sf.write_text(doc)
    else:
        sf = _json(tmp_path, doc)
    out = tmp_path / "o.zarr"
    r = run(
        "tile",
        *[files[k] for k in inputs],
        "--out",
        out,
        "--patch",
        32,
        "--split-by-file",
        sf,
        *extra,
    )
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.output.startswith("Error: ") and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()
    assert not any(p.name.startswith(".o.zarr") for p in tmp_path.iterdir())


def test_overlap_check_wraps_the_antimeridian():
    boxes = np.array([[179.5, 0.0, 180.5, 1.0], [-180.2, 0.5, -179.0, 2.0], [10, 0, 11, 1]])
    with pytest.raises(ConfigError, match="w .train. and e .test. overlap"):
        splits.check_overlaps(["w", "e", "x"], boxes, np.array([0, 2, 1]))
    splits.check_overlaps(["w", "e", "x"], boxes, np.array([0, 0, 1]))  # same split: fine
    splits.check_overlaps(["w", "e"], boxes[:2], np.array([0, 2]), wrap=None)  # projected


def test_library_config_refuses_a_file_in_two_splits():
    with pytest.raises(ConfigError, match="two splits"):
        TileConfig(split_by_file=(("a", "train"), ("a", "val")))
    with pytest.raises(ConfigError, match="not one of"):
        TileConfig(split_by_file=(("a", "holdout"),))


def _open(path):
    from topoae.io import open_grid

    return open_grid(path)


def test_rd_trainer_reads_a_store_split_in_metres(tmp_path, files):
    pytest.importorskip("torch")
    from topoae.training import rd

    out = tmp_path / "rd.zarr"
    cfg = TileConfig(patch=32, split_by_file=(("a", "train"), ("b", "val"), ("c", "test")))
    tile([_open(files[k]) for k in "abc"], out, cfg)
    g, _ = open_store(out)
    source, row0, col0 = g["source"][:], g["row0"][:], g["col0"][:]
    for name, gi in (("train", 0), ("val", 1), ("test", 2)):
        got = rd.load_split(out, "ignored.json", name)
        grid = _open(files["abc"[gi]]).values
        idx = np.flatnonzero(source == gi)
        assert got.dtype == np.float32 and got.shape == (len(idx), 32, 32)
        want = np.stack(
            [grid[r : r + 32, c : c + 32] for r, c in zip(row0[idx], col0[idx], strict=True)]
        )
        np.testing.assert_allclose(got, want, atol=0.01)  # float32 on the global scale: ~1 mm
    train = rd.load_split(out, "", "train")
    crops, scales = rd.CropSampler(train, 16, seed=0).batch(3)
    assert crops.shape == (3, 16, 16) and np.isfinite(crops).all() and (scales > 0).all()
    wins, _ = rd.validation_windows(rd.load_split(out, "", "val"))
    assert wins.shape == (4, 32, 32)  # one window per 32-cell patch, not four copies
    with pytest.raises(ConfigError, match="crop 64 is larger"):
        rd.CropSampler(train, 64, seed=0)


def test_rd_trainer_refuses_a_split_file_with_a_store(tmp_path, capsys):
    pytest.importorskip("torch")
    from topoae.training import rd

    with pytest.raises(SystemExit):
        rd.main(
            ["--data", str(tmp_path / "x.zarr"), "--split", "s.json", "--out", str(tmp_path / "r")]
        )
    assert "carries its split" in capsys.readouterr().err
