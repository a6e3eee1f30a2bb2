"""The shipped learned-codec model (the default of encode / decode / sample / demo)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from topoae import zoo

PATH = zoo.WEIGHTS / zoo.REGISTRY[zoo.DEFAULT]
pytestmark = pytest.mark.skipif(not PATH.is_file(), reason="no shipped learned model in this checkout")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(zoo.card_path(zoo.DEFAULT).read_text())


def test_loads_safely_with_frozen_tables_and_calibration(card):
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    raw = torch.load(PATH, weights_only=True)
    assert raw["state"] is None  # no optimiser state shipped
    lm = load_checkpoint(zoo.default_model_path())
    assert lm.model_id == card["model_id"]
    rd = learned.as_rd_model(lm)
    assert len(rd.tables.y) == 64 and len(rd.tables.z) == rd.net.config.hyper_channels
    assert len(lm.extra["sample_tau"]) == rd.levels == len(card["level_ratios_val"])
    assert 0 <= learned.default_level(rd) < rd.levels


def test_demo_region_codes_as_the_card_says(card):
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid

    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    grid = open_grid(zoo.DEMO_REGION).load()
    h, s = learned.encode(grid, rd)
    data = learned.to_bytes(h, s)
    assert data == learned.to_bytes(*learned.encode(grid, rd))  # same input, same bytes
    ref = card["demo_region"]
    assert h["codec"]["level"] == ref["level"]
    assert len(data) == pytest.approx(ref["bytes"], rel=0.02)
    rec = learned.decode(h, s, rd)
    x = np.asarray(grid.values, np.float64)
    rmse = float(np.sqrt(np.mean((rec.values.astype(np.float64) - x) ** 2)))
    assert rmse == pytest.approx(ref["rmse_m"], rel=0.02)
    assert rec.encoding["dtype"] == "int16"  # GEBCO int16 in, int16 out by default


@pytest.mark.parametrize("model", [
    # before the latent context
    "0f9a82ed211e0c09",
    # format 5, level 4: a later release retrained the synthesis and the analysis and fitted its
    # tables again, keeping 6c195abf's synthesis and tables for its files
    "6c195abf3f8c180e",
    # format 5, level 4: the release after it retrained the hyper-synthesis and the gains too
    # (``synth --hyper``), keeping 2c6c7a13's with its synthesis and tables
    "2c6c7a1344bb96d9",
])
def test_files_of_earlier_releases_decode_bit_for_bit(model):
    """A stored file of an earlier release (a 128×160 corner of the demo region) decodes with
    the shipped model exactly as that release decoded it, by the release it kept, not itself."""
    from pathlib import Path

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    data = Path(__file__).parent / "data"
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    h, s = learned.read(data / f"release_{model[:8]}.tae")
    assert h["model"] == model
    assert rd.for_file(h["model"]) is not rd  # decoded by the kept release, not the new one
    got = learned.decode(h, s, rd).values
    np.testing.assert_array_equal(got, np.load(data / f"release_{model[:8]}_decoded.npy"))


def test_earlier_releases_are_made_only_when_a_file_needs_one():
    """Each kept release is a whole network with its float64 copies: a file of the current
    release must not pay for them (the chain once took 180 MB at load)."""
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    assert rd.replaced is not None and rd._replaced is None  # a chain, not made yet
    h, s = learned.encode(zoo_demo_corner(), rd, level=0)
    learned.decode(h, s, rd)
    assert rd.for_file(h["model"]) is rd and rd._replaced is None
    old = rd.for_file("2c6c7a1344bb96d9")
    assert old is not None and old is rd.earlier_synthesis is rd._replaced  # made once, kept
    assert old.net is not rd.net and old.model_id.startswith("2c6c7a13")


def test_a_format_6_file_of_this_release_decodes_bit_for_bit():
    """A format-6 file (a 128×160 corner of the demo region at level 5, made by 5b1d502: a
    primed outlier frame, no loop filter) decodes with format 7's reader exactly as before."""
    from pathlib import Path

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    data = Path(__file__).parent / "data"
    raw = (data / "format6_47575084.tae").read_bytes()
    assert raw[3] == 6
    h, s = learned.read(data / "format6_47575084.tae")
    assert "filter" not in s and s["out:0,0"][0] == 4  # a primed frame, varint escapes
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    np.testing.assert_array_equal(learned.decode(h, s, rd).values,
                                  np.load(data / "format6_47575084_decoded.npy"))


def test_a_format_7_file_of_this_release_decodes_bit_for_bit():
    """A format-7 file (the same corner at level 8 in 64-cell tiles, made by session 16: loop
    filters of radius 1 on four of its six tiles, an outlier frame with Exp-Golomb escapes)
    decodes exactly as it did: a later change to the filter or the coder shows here."""
    from pathlib import Path

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.codec import loop_filter as lf

    data = Path(__file__).parent / "data"
    h, s = learned.read(data / "format7_47575084.tae")
    assert (data / "format7_47575084.tae").read_bytes()[3] == 7
    kept = lf.unpack(s["filter"], 6)
    assert [None if q is None else lf.radius(q) for q in kept] == [1, 1, None, 1, 1, None]
    assert any(v[0] in (5, 6) for k, v in s.items() if k.startswith("out:"))
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    np.testing.assert_array_equal(learned.decode(h, s, rd).values,
                                  np.load(data / "format7_47575084_decoded.npy"))


def test_a_format_8_file_of_this_release_decodes_bit_for_bit():
    """A format-8 file (the same corner at level 2 in 64-cell tiles, made by session 17: the
    header in its binary form with range-coded text, offset-field nodes in 16 m steps) decodes
    exactly as it did: a later change to the header's form or the offset field shows here."""
    from pathlib import Path

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    data = Path(__file__).parent / "data"
    raw = (data / "format8_47575084.tae").read_bytes()
    assert raw[3] == 8
    h, s = learned.read(data / "format8_47575084.tae")
    assert h["codec"]["offset_step"] == 16.0 and h["codec"]["level"] == 2
    assert h["grid"]["global_attrs"]["title"].startswith("GEBCO 15 arc-second grid subset")
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    np.testing.assert_array_equal(learned.decode(h, s, rd).values,
                                  np.load(data / "format8_47575084_decoded.npy"))


def zoo_demo_corner():
    from topoae.io import open_grid

    return open_grid(zoo.DEMO_REGION).isel(lat=slice(0, 64), lon=slice(0, 64)).load()


def test_format_3_files_with_the_context_decode_bit_for_bit():
    """A format-3 file of this release (latent context, error-bounded, made before format 4 and
    before the coder's sparse context pass, from a 128×160 corner of the demo region at level
    4 with --max-error 20) decodes exactly as it did then, within its bound."""
    from pathlib import Path

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid

    data = Path(__file__).parent / "data"
    raw = (data / "release_00dd0eac.tae").read_bytes()
    assert raw[3] == 3
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    h, s = learned.read(data / "release_00dd0eac.tae")
    if rd.for_file(h["model"]) is None:
        pytest.skip("the shipped model no longer decodes this release's files")
    got = learned.decode(h, s, rd).values
    np.testing.assert_array_equal(got, np.load(data / "release_00dd0eac_decoded.npy"))
    x = open_grid(zoo.DEMO_REGION).load().isel(lat=slice(0, 128), lon=slice(0, 160)).values
    assert np.abs(got.astype(np.float64) - x).max() <= 20.0


def test_mirrored_edges_cut_the_error_at_the_region_edges():
    """The synthesis sees mirrored latents past the region's edges (files from format 5): on
    the demo region (202×201 cells, so the right and bottom edges fall inside the padding) the
    cells within 8 of an edge come out closer than with the convolutions' zero padding, and the
    whole grid too; a file says which it used, and a "zero" file still decodes as "zero"."""
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.errors import StoreError
    from topoae.io import open_grid

    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    grid = open_grid(zoo.DEMO_REGION).load()
    x = np.asarray(grid.values, np.float64)
    h, s = learned.encode(grid, rd, level=3, outliers=False, loop_filter=False)
    assert h["codec"]["edge"] == "mirror"
    zero = {**h, "codec": {**h["codec"], "edge": "zero"}}
    err = {}
    for name, head in (("mirror", h), ("zero", zero)):
        e2 = (learned.decode(head, s, rd).values.astype(np.float64) - x) ** 2
        band = np.zeros(x.shape, bool)
        band[:8], band[-8:], band[:, :8], band[:, -8:] = True, True, True, True
        err[name] = (float(e2[band].mean()), float(e2.mean()), float(e2[~band].mean()))
    assert err["mirror"][0] < 0.9 * err["zero"][0]  # measured: 17 % less squared error
    assert err["mirror"][1] < 0.98 * err["zero"][1]  # 4 % less over the grid
    # the interior is the same synthesis (the latents' reach ends within 8 cells)
    assert err["mirror"][2] == pytest.approx(err["zero"][2], rel=0.02)
    h_old = {k: v for k, v in zero["codec"].items() if k != "edge"}  # a file from before format 5
    old = learned.decode({**h, "codec": h_old}, s, rd).values
    np.testing.assert_array_equal(old, learned.decode(zero, s, rd).values)
    for bad in ("wrap", "Mirror", 1, None, ["mirror"], {"a": 1}):
        with pytest.raises(StoreError, match="synthesis edge"):
            learned.decode({**h, "codec": {**h["codec"], "edge": bad}}, s, rd)


def test_format_4_files_decode_bit_for_bit_with_their_zero_edges():
    """A format-4 file of this release (made with the code of commit 0f13f28 from a 128×160 crop
    of the demo region at level 2, outlier corrections on) decodes exactly as it did then: its
    header says nothing of the synthesis' edge, so the edges stay the zeros of the padding they
    were coded against; decoding it as "mirror" would give another grid."""
    from pathlib import Path

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    data = Path(__file__).parent / "data"
    assert (data / "release_00dd0eac_v4.tae").read_bytes()[3] == 4
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    h, s = learned.read(data / "release_00dd0eac_v4.tae")
    if rd.for_file(h["model"]) is None:
        pytest.skip("the shipped model no longer decodes this release's files")
    assert "edge" not in h["codec"]
    want = np.load(data / "release_00dd0eac_v4_decoded.npy")
    np.testing.assert_array_equal(learned.decode(h, s, rd).values, want)
    mirrored = learned.decode({**h, "codec": {**h["codec"], "edge": "mirror"}}, s, rd).values
    assert not np.array_equal(mirrored, want)


def test_ragged_regions_pad_to_whole_latents_not_hyper_latents(monkeypatch):
    """Format 5 pads a region to a multiple of 16 cells (one latent), not 64 (one hyper-latent):
    the demo region's 202×201 cells are coded as 208×208 instead of 256×256, so its file
    shrinks by a fifth or more at the same quality; files padded to 64 still decode."""
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.errors import StoreError
    from topoae.io import open_grid

    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    grid = open_grid(zoo.DEMO_REGION).load()
    x = np.asarray(grid.values, np.float64)
    got = {}
    for align in (16, 64):
        monkeypatch.setattr(learned, "ALIGN", align)
        h, s = learned.encode(grid, rd, level=3)
        assert h["codec"]["align"] == align
        rec = learned.decode(h, s, rd).values.astype(np.float64)
        got[align] = (len(learned.to_bytes(h, s)), float(np.sqrt(np.mean((rec - x) ** 2))))
    assert got[16][0] < 0.85 * got[64][0]  # measured: 1,401 against 1,851 bytes
    assert got[16][1] < 1.05 * got[64][1]
    for bad in (32, 0, "16", None):
        with pytest.raises(StoreError, match="alignment"):
            learned.decode({**h, "codec": {**h["codec"], "align": bad}}, s, rd)
