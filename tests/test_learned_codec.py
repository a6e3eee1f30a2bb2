"""The learned codec: bitstreams, container, tiling, bounds, the CLI (tiny models made in code)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from topoae.checkpoint import load_checkpoint, save_checkpoint
from topoae.codec import container, learned, tables
from topoae.errors import ConfigError, ModelMismatchError, StoreError
from topoae.io.synthetic import synthetic_grid
from topoae.models.entropy import gaussian_likelihood
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.training.rd import RDTrainConfig

TINY = HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16)


def _tiny(seed: int = 0) -> HyperpriorModel:
    torch.manual_seed(seed)
    return HyperpriorModel(TINY).eval()


@pytest.fixture(scope="module")
def rd():
    return learned.as_rd_model(_tiny())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_checkpoint(path, _tiny(), RDTrainConfig(model=TINY), normalise={"mode": "offset-field"})
    return path


@pytest.fixture(scope="module")
def grid():
    return synthetic_grid(200, 260, seed=3)


def _rmse(a, b) -> float:
    return float(np.sqrt(np.nanmean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_round_trip_is_deterministic_and_keeps_the_grid(rd, grid):
    h1, s1 = learned.encode(grid, rd, level=2)
    h2, s2 = learned.encode(grid, rd, level=2)
    b1, b2 = learned.to_bytes(h1, s1), learned.to_bytes(h2, s2)
    assert b1 == b2
    header, streams = container.unpack(b1)
    out1 = learned.decode(header, streams, rd)
    out2 = learned.decode(header, streams, rd)
    assert np.array_equal(out1.values, out2.values)
    assert out1.shape == grid.shape and out1.dims == grid.dims
    for d in grid.dims:
        assert np.array_equal(out1[d].values, grid[d].values)
    assert out1.name == grid.name


def test_file_size_is_the_reported_size(rd, grid, tmp_path):
    h, s = learned.encode(grid, rd, level=1)
    n = learned.write(tmp_path / "r.tae", h, s)
    assert n == os.path.getsize(tmp_path / "r.tae") == len(learned.to_bytes(h, s))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_damaged_or_missing_streams_are_errors(rd, grid, tmp_path):
    h, s = learned.encode(grid, rd, level=1)
    data = bytearray(learned.to_bytes(h, s))
    flipped = bytearray(data)
    flipped[-10] ^= 0x40
    with pytest.raises(StoreError, match="damaged"):
        container.unpack(bytes(flipped))
    with pytest.raises(StoreError, match="truncated"):
        container.unpack(bytes(data[:-7]))
    with pytest.raises(StoreError, match="not a topoae"):
        container.unpack(b"PK\x03\x04" + bytes(data[4:]))
    header, streams = container.unpack(bytes(data))
    del streams["tile:0,0"]
    with pytest.raises(StoreError, match="tile:0,0"):
        learned.decode(header, streams, rd)


def test_header_dictionaries_are_frozen_and_version_1_to_4_files_still_read(rd, grid):
    import hashlib
    import json
    import zlib

    from topoae.codec import residual

    # the header dictionaries are part of the format: changing one breaks every file of its version
    assert hashlib.sha256(container.HEADER_DICT).hexdigest()[:16] == "b3b642099883d109"
    assert hashlib.sha256(container.HEADER_DICT_V3).hexdigest()[:16] == "c9d5937c5c392a56"
    assert hashlib.sha256(container.HEADER_DICT_V5).hexdigest()[:16] == "165b479fcb37f895"
    h, s = learned.encode(grid, rd, level=1)
    data = learned.to_bytes(h, s)
    assert data[3] == container.VERSION == 8
    header, streams = container.unpack(data)
    plain = residual.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(), 19)
    with_dict = container._compress_header(header)
    assert len(with_dict) < len(plain) - 100  # the dictionary earns its keep
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    # older files: the same streams, the header compressed without a dictionary (version 1) or
    # against version 2's
    for version, head in ((1, plain), (2, residual.compress(text, 19, dictionary=container.HEADER_DICT)),
                          (3, residual.compress(text, 19, dictionary=container.HEADER_DICT_V3))):
        parts = [head, *(streams[r] for r in header["streams"])]
        old = bytearray(container.MAGIC + bytes([version]))
        container._put_uvarint(old, len(parts))
        for p in parts:
            container._put_uvarint(old, len(p))
            old += zlib.crc32(p).to_bytes(4, "little")
        for p in parts:
            old += p
        h_old, s_old = container.unpack(bytes(old))
        assert h_old == header and s_old == streams
    # version 4: version 5's layout (one CRC for the file), the header frame without zstd's
    # magic against version 3's dictionary, and no synthesis edge in the codec settings
    old_header = {**header, "codec": {k: v for k, v in header["codec"].items() if k != "edge"}}
    old_text = json.dumps(old_header, separators=(",", ":"), sort_keys=True).encode()
    parts = [residual.compress(old_text, 19, dictionary=container.HEADER_DICT_V3, magicless=True),
             *(streams[r] for r in header["streams"])]
    v4 = bytearray(container.MAGIC + bytes([4]))
    container._put_uvarint(v4, len(parts))
    for p in parts:
        container._put_uvarint(v4, len(p))
    crc = zlib.crc32(bytes(v4))
    for p in parts:
        crc = zlib.crc32(p, crc)
    v4 += crc.to_bytes(4, "little") + b"".join(parts)
    assert container.unpack(bytes(v4)) == (old_header, streams)
    assert learned.RDCodecConfig(**old_header["codec"]).edge == "zero"
    with pytest.raises(StoreError, match="format version 9; this topoae reads versions 1–8 \\(a newer topoae wrote it\\)"):
        container.unpack(bytes(data[:3]) + bytes([9]) + bytes(data[4:]))


def test_one_checksum_guards_every_byte_of_a_version_4_file(rd, grid):
    h, s = learned.encode(grid, rd, level=1)
    data = learned.to_bytes(h, s)
    header, streams = container.unpack(data)
    # the fixed cost: magic and version, count, one length per stream, one CRC
    head = container._compress_header(header)
    table = bytearray()
    for n in (len(streams) + 1, len(head), *map(len, streams.values())):
        container._put_uvarint(table, n)
    assert len(data) == 4 + len(table) + 4 + len(head) + sum(map(len, streams.values()))
    assert container._compress_header(header)[:4] != bytes.fromhex("28b52ffd")  # no zstd magic
    for pos in range(4, len(data), max(1, len(data) // 97)):  # table, CRC, header and streams
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(StoreError):
            container.unpack(bytes(bad))
    with pytest.raises(StoreError, match="damaged|truncated"):
        container.unpack(data[:-1])
    with pytest.raises(StoreError, match="unexpected bytes|damaged"):
        container.unpack(data + b"\0")


def test_real_format_2_files_still_decode(rd):
    """Files written by the format-2 codec (zstd-coded residual and outlier frames, linspace
    coordinates, no outlier cost in the header) with the tiny test model: the bound holds and
    the spikes are corrected as that codec did (10 bits per correction)."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    g = synthetic_grid(96, 80, seed=41).round()
    x = np.asarray(g.values, np.float64).copy()
    rng = np.random.default_rng(1)
    ii, jj = rng.integers(0, 96, 12), rng.integers(0, 80, 12)
    x[ii, jj] += 2000.0
    h, s = learned.read(data / "format2_bounded.tae")
    assert (data / "format2_bounded.tae").read_bytes()[3] == 2 and h["model"] == rd.model_id[:16]
    out = learned.decode(h, s, rd)
    np.testing.assert_array_equal(out.lat.values, g.lat.values)
    assert np.max(np.abs(out.values.astype(np.float64) - x)) <= 4.0
    h, s = learned.read(data / "format2_outliers.tae")
    assert "outlier_bits" not in h["codec"] and any(k.startswith("out:") for k in s)
    step = learned.outlier_step(rd, learned.RDCodecConfig(**h["codec"]))
    err = np.abs(learned.decode(h, s, rd, dtype="float32").values.astype(np.float64) - x)[ii, jj]
    # corrected spikes within step/2, the others below the threshold step; the 2,000 m spikes
    # decoded with a 6-bit step would miss by hundreds of metres
    assert err.max() <= step + 1e-3


def test_a_tile_stream_decoded_with_other_tables_is_caught(rd, grid):
    h, s = learned.encode(grid, rd, level=1)
    other = learned.as_rd_model(_tiny(seed=5))
    with pytest.raises((StoreError, ModelMismatchError)):
        learned.decode(h, s, other)
    with pytest.raises(StoreError):  # forced: the symbol hash catches the desynchronised coder
        learned.decode(h, s, other, force=True)


def test_estimated_rate_matches_coded_size(rd):
    g = synthetic_grid(256, 256, seed=11)
    h, s = learned.encode(g, rd, level=3, tile=256)
    net = rd.net
    x = np.asarray(g.values, np.float64)
    from topoae import offset_field

    nodes = offset_field.compute_nodes(x, 64, 1.0)
    cfg = learned.RDCodecConfig(**h["codec"])
    r = (x - offset_field.expand(nodes, x.shape, 64, 1.0)) / (TINY.unit * cfg.scale)
    geo = learned.tile_layout(256, 256, 256, cfg.margin)
    y0 = learned._analyse_tile(rd.fast, g, nodes, geo, cfg, 0, 0)
    with torch.no_grad():
        y = torch.from_numpy(y0) * net.gains(3)[0]
        zh = torch.round(net.h_a(y[None]))
        mean, scale = net.hyper_params(zh)
        bits = -torch.log2(gaussian_likelihood(torch.round(y - mean[0]), scale[0])).sum()
        bits += -torch.log2(net.z_density.likelihood(zh)).sum()
    est = float(bits) / 8
    coded = len(s["tile:0,0"])
    assert r.shape == (256, 256)
    assert abs(coded - est) / est < 0.06, (coded, est)


def test_tiled_matches_one_shot(rd):
    g = synthetic_grid(256, 256, seed=4)
    h1, s1 = learned.encode(g, rd, level=4, tile=256)
    h2, s2 = learned.encode(g, rd, level=4, tile=128)
    a = learned.decode(h1, s1, rd).values
    b = learned.decode(h2, s2, rd).values
    x = np.asarray(g.values, np.float64)
    e1, e2 = _rmse(a, x), _rmse(b, x)
    assert abs(e1 - e2) / e1 < 0.05
    # on the cells along the tiled run's tile borders, its error is the one-shot's (within 5 %)
    border = np.zeros(x.shape, bool)
    border[124:132, :] = border[:, 124:132] = True
    eb = _rmse(b[border], x[border])
    ea = _rmse(a[border], x[border])
    assert abs(eb - ea) < 0.05 * ea


def test_levels_trade_bytes_for_error(ckpt):
    # a tiny model trained for a few steps: higher levels cost more bytes
    lm = load_checkpoint(ckpt)
    rdm = learned.as_rd_model(lm)
    g = synthetic_grid(128, 128, seed=2)
    sizes = [len(learned.to_bytes(*learned.encode(g, rdm, level=k))) for k in (0, 5)]
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize("max_error", [0.5, 3.0, 25.0])
def test_max_error_holds_on_every_cell_for_integer_input_in_int16_and_float(rd, grid, max_error):
    g = grid.round()
    h, s = learned.encode(g, rd, level=0, max_error=max_error)
    assert h["grid"]["integer"] and h["grid"]["dtype"] == "int16"
    x = np.asarray(g.values, np.float64)
    for dtype in ("float32", "int16"):
        out = learned.decode(h, s, rd, dtype=dtype)
        v = out.values.astype(np.float64)
        if dtype == "int16":
            v = np.round(v)
        assert np.nanmax(np.abs(v - x)) <= max_error
    assert learned.decode(h, s, rd).encoding["dtype"] == "int16"  # the input's dtype by default


def test_max_error_without_a_level_takes_the_smallest_file(rd, grid):
    g = grid.round()
    x = np.asarray(g.values, np.float64)
    h, s = learned.encode(g, rd, max_error=5.0)
    n = len(learned.to_bytes(h, s))
    lev = h["codec"]["level"]
    others = {c: len(learned.to_bytes(*learned.encode(g, rd, level=c, max_error=5.0)))
              for c in {lev - 1, lev + 1, learned.default_level(rd)} if 0 <= c < rd.levels}
    assert all(n <= m for m in others.values())  # a minimum, no larger than the default level's
    assert np.nanmax(np.abs(learned.decode(h, s, rd).values - x)) <= 5.0
    # a region larger than 2x2 tiles chooses on its central tiles, then codes the whole once
    h2, s2 = learned.encode(g, rd, max_error=5.0, tile=64)
    lev2 = h2["codec"]["level"]
    assert h2["codec"]["tile"] == 64
    assert np.nanmax(np.abs(learned.decode(h2, s2, rd).values - x)) <= 5.0
    probe = g.isel(lat=slice(36, 164), lon=slice(66, 194))  # the central 128x128 cells
    on_probe = {c: len(learned.to_bytes(*learned.encode(probe, rd, level=c, max_error=5.0, tile=64)))
                for c in (lev2 - 1, lev2, lev2 + 1) if 0 <= c < rd.levels}
    assert on_probe[lev2] == min(on_probe.values())  # a minimum there


def test_max_error_float_input_refuses_int16(rd, grid):
    g = grid + 0.37
    h, s = learned.encode(g, rd, level=0, max_error=2.0)
    out = learned.decode(h, s, rd)
    assert np.nanmax(np.abs(out.values.astype(np.float64) - g.values)) <= 2.0
    assert out.encoding["dtype"] == "float32"
    with pytest.raises(ConfigError, match="float32"):
        learned.decode(h, s, rd, dtype="int16")


def test_nan_cells_come_back_as_nan(rd):
    g = synthetic_grid(100, 120, seed=9)
    g[10:30, 40:90] = np.nan
    h, s = learned.encode(g, rd, level=2)
    out = learned.decode(h, s, rd)
    assert np.array_equal(np.isnan(out.values), np.isnan(g.values))


def test_georeferencing_and_attributes_are_kept(rd, grid, tmp_path):
    import rioxarray  # noqa: F401
    import xarray as xr

    g = grid.rio.write_crs("EPSG:4326")
    g.attrs.update(title="a test grid", history="made in a test")
    h, s = learned.encode(g, rd, level=1)
    out = learned.decode(h, s, rd)
    assert out.rio.crs.to_epsg() == 4326
    assert out.encoding["grid_mapping"] == "spatial_ref"
    out.to_netcdf(tmp_path / "plain.nc")  # a plain xarray write works (no duplicate grid_mapping)
    with xr.open_dataset(tmp_path / "plain.nc", decode_coords="all") as ds:
        assert ds[out.name].attrs.get("grid_mapping", ds[out.name].encoding.get("grid_mapping")) == "spatial_ref"
        assert ds[out.name].rio.crs.to_epsg() == 4326
    assert out.attrs["title"] == "a test grid"
    assert out.attrs["history"].startswith("made in a test\n")
    assert "reconstructed by topoae" in out.attrs["history"]
    h2, s2 = learned.encode(g, rd, level=1, keep_attrs=False)
    assert len(learned.to_bytes(h2, s2)) < len(learned.to_bytes(h, s))
    assert "title" not in learned.decode(h2, s2, rd).attrs


def test_encode_on_one_thread_decodes_on_two(rd, grid):
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        h, s = learned.encode(grid, rd, level=3)
        a = learned.decode(h, s, rd).values
        torch.set_num_threads(2)
        b = learned.decode(h, s, rd).values
    finally:
        torch.set_num_threads(old)
    assert np.allclose(a, b, atol=1e-3)


def test_scale_index_ties_are_flagged():
    s = tables.scale_table()
    mid = math.sqrt(s[10] * s[11])  # exactly between two table entries in log σ
    idx, flagged = tables.scale_indices(np.array([mid, s[10], s[11]]))
    assert flagged.tolist() == [True, False, False]
    assert idx[1:].tolist() == [10, 11]


def test_tables_sum_to_the_coder_precision(rd):
    for t in (*rd.tables.y, *rd.tables.z):
        assert t.sum() == 1 << tables.PRECISION and t.min() >= 1


def test_fitted_tables_code_the_same_grid_in_fewer_bytes_and_survive_their_stored_form(rd, grid, tmp_path):
    """Tables fitted to the symbols of training grids (per-level hyper-latent tables): the
    same reconstruction, fewer bytes on an unseen grid, and a file coded with them does
    not decode with the old tables."""
    from topoae.codec import table_fit

    train = [synthetic_grid(192, 192, seed=s) for s in (21, 22)]
    y_hist, z_hist = table_fit.collect(rd, train)
    assert len(z_hist) == rd.levels and sum(h.sum() for h in y_hist) > 0
    fitted = table_fit.fit(rd.tables, y_hist, z_hist)
    for t in (*fitted.y, *(t for lv in fitted.z_levels for t in lv)):
        assert t.sum() == 1 << tables.PRECISION and t.min() >= 1
    back = tables.Tables.from_arrays(fitted.to_arrays())  # the form stored in the weights file
    pairs = [*zip(back.y, fitted.y, strict=True), *zip(back.z, fitted.z, strict=True),
             *(p for a, b in zip(back.z_levels, fitted.z_levels, strict=True) for p in zip(a, b, strict=True))]
    assert len(back.z_levels) == rd.levels and all(np.array_equal(a, b) for a, b in pairs)
    rd2 = learned.RDModel(net=rd.net, tables=fitted, model_id="f" * 64)
    test = synthetic_grid(256, 256, seed=23)
    before = after = 0
    for lev in (0, 2, 5):
        h1, s1 = learned.encode(test, rd, level=lev)
        h2, s2 = learned.encode(test, rd2, level=lev)
        np.testing.assert_array_equal(learned.decode(h1, s1, rd).values, learned.decode(h2, s2, rd2).values)
        before += len(learned.to_bytes(h1, s1))
        after += len(learned.to_bytes(h2, s2))
        with pytest.raises(StoreError):  # the old tables desynchronise: caught by the symbol hash
            learned.decode(h2, s2, rd, force=True)
    assert after < before


def test_a_refitted_model_still_decodes_the_files_of_its_earlier_release(rd, grid):
    """Refitting the tables makes a new model id; files made before it still decode (the
    network is the same, the earlier tables are rebuilt from it), other models' do not."""
    from dataclasses import replace

    from topoae.codec import table_fit

    y_hist, z_hist = table_fit.collect(rd, [synthetic_grid(128, 128, seed=31)])
    refit = learned.RDModel(net=rd.net, tables=table_fit.fit(rd.tables, y_hist, z_hist),
                            model_id="e" * 64, network_of=rd.model_id)
    h, s = learned.encode(grid, rd, level=2)
    np.testing.assert_array_equal(learned.decode(h, s, refit).values, learned.decode(h, s, rd).values)
    h2, s2 = learned.encode(grid, refit, level=2)
    assert h2["model"] == "e" * 16
    with pytest.raises(ModelMismatchError):
        learned.decode(h2, s2, replace(refit, model_id="d" * 64))
    with pytest.raises(ModelMismatchError):  # the tables must match the ladder
        learned.RDModel(net=rd.net, tables=tables.Tables(y=rd.tables.y, z=rd.tables.z,
                                                         z_levels=(rd.tables.z,)), model_id="c" * 64)


def test_a_recalibrated_model_decodes_the_files_of_the_release_it_replaces(rd, grid):
    """A release that changes only what coding never reads (the ensemble's τ) lists the ids
    it replaces: their files decode with it, bit for bit; unlisted ids are still refused."""
    from dataclasses import replace

    h, s = learned.encode(grid, rd, level=1)
    newer = replace(rd, model_id="f" * 64, same_coding_as=("a" * 64, rd.model_id))
    np.testing.assert_array_equal(learned.decode(h, s, newer).values, learned.decode(h, s, rd).values)
    assert newer.for_file("a" * 16) is newer
    assert newer.for_file("b" * 16) is None
    with pytest.raises(ModelMismatchError):
        learned.decode(h, s, replace(rd, model_id="f" * 64, same_coding_as=("a" * 64,)))


def test_a_new_synthesis_decodes_the_files_of_the_releases_before_it(rd, grid, tmp_path):
    """A release whose synthesis alone was retrained (same latents, same bytes) keeps the old
    synthesis in its checkpoint: the old release's files (and those of the release the old one
    replaced) decode bit for bit as before, its own files with the new synthesis; the old
    release refuses the new files."""
    net = _tiny()
    with torch.no_grad():
        for p in net.g_s.parameters():
            p.add_(0.05 * torch.randn_like(p))
    old_extra = {"same_coding_as": ["a" * 64]}
    extra = {"earlier_synthesis": {"model_id": rd.model_id, "extra": old_extra,
                                   "synthesis": {k: v.clone() for k, v in rd.net.state_dict().items()
                                                 if k.startswith("g_s.")}}}
    path = tmp_path / "new.pt"
    save_checkpoint(path, net, RDTrainConfig(model=TINY), normalise={"mode": "offset-field"}, extra=extra)
    new = learned.as_rd_model(load_checkpoint(path))
    assert new.model_id != rd.model_id
    h, s = learned.encode(grid, rd, level=2)
    before = learned.decode(h, s, rd).values
    np.testing.assert_array_equal(learned.decode(h, s, new).values, before)
    assert new.for_file("a" * 16) is new.for_file(rd.model_id[:16]) is new.earlier_synthesis
    assert new.for_file("b" * 16) is None
    h2, s2 = learned.encode(grid, new, level=2)
    assert h2["model"] == new.model_id[:16]
    # not the outlier or loop-filter streams, which follow the synthesis
    latents = {k: v for k, v in s.items() if not k.startswith("out:") and k != "filter"}
    assert {k: v for k, v in s2.items() if k in latents} == latents  # the same latents, same bytes
    after = learned.decode(h2, s2, new).values
    assert not np.array_equal(after, before)
    with pytest.raises(ModelMismatchError):
        learned.decode(h2, s2, rd)
    # a record that does not fit the network is refused, not half-loaded
    partial = {**extra["earlier_synthesis"]}
    partial["synthesis"] = dict(list(partial["synthesis"].items())[1:])
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, net, RDTrainConfig(model=TINY), normalise={"mode": "offset-field"},
                    extra={"earlier_synthesis": partial})
    with pytest.raises(ModelMismatchError, match="earlier synthesis"):
        learned.as_rd_model(load_checkpoint(bad))


def test_a_release_with_a_new_hyper_synthesis_and_gains_keeps_the_replaced_ones(rd, grid, tmp_path):
    """A release that retrained the hyper-synthesis and gains too (``synth --hyper``) keeps
    the replaced ones with the replaced synthesis: the old release's files decode bit for bit
    as before; without them in the record the old files do not decode (the record is what
    makes them decode), and a record with part of the hyper-synthesis is refused."""
    net = _tiny()
    with torch.no_grad():
        for p in [*net.g_s.parameters(), *net.h_s.parameters(), net.gain]:
            p.add_(0.05 * torch.randn_like(p))
    own = rd.net.state_dict()

    def release(keys) -> Path:
        rec = {"model_id": rd.model_id, "extra": {},
               "synthesis": {k: own[k].clone() for k in own if k.split(".")[0] in keys}}
        path = tmp_path / f"{'-'.join(keys)}.pt"
        save_checkpoint(path, net, RDTrainConfig(model=TINY), normalise={"mode": "offset-field"},
                        extra={"earlier_synthesis": rec})
        return path

    h, s = learned.encode(grid, rd, level=2)
    before = learned.decode(h, s, rd).values
    new = learned.as_rd_model(load_checkpoint(release(("g_s", "h_s", "gain"))))
    np.testing.assert_array_equal(learned.decode(h, s, new).values, before)
    h2, s2 = learned.encode(grid, new, level=2)
    assert s2["tile:0,0"] != s["tile:0,0"]  # the new hyper-synthesis and gains code otherwise
    again = learned.as_rd_model(load_checkpoint(release(("g_s", "h_s", "gain"))))
    np.testing.assert_array_equal(learned.decode(h2, s2, again).values,
                                  learned.decode(h2, s2, new).values)
    with pytest.raises(ModelMismatchError):
        learned.decode(h2, s2, rd)
    only_g_s = learned.as_rd_model(load_checkpoint(release(("g_s",))))
    try:
        wrong = learned.decode(h, s, only_g_s).values
    except StoreError:
        pass  # the symbols' hash caught the desynchronised decoder
    else:
        assert not np.array_equal(wrong, before)
    partial = load_checkpoint(release(("g_s", "h_s")))
    rec = partial.extra["earlier_synthesis"]["synthesis"]
    rec.pop(next(k for k in rec if k.startswith("h_s.")))
    with pytest.raises(ModelMismatchError, match="earlier synthesis"):
        learned.as_rd_model(partial)
    wrong_dtype = load_checkpoint(release(("g_s", "gain")))
    rec = wrong_dtype.extra["earlier_synthesis"]["synthesis"]
    rec["gain"] = rec["gain"].double()
    with pytest.raises(ModelMismatchError, match="earlier synthesis"):
        learned.as_rd_model(wrong_dtype)


def test_every_record_of_a_release_chain_is_checked_when_the_weights_load(rd, tmp_path):
    """The releases of a chain are made only when a file needs one, but a damaged record (its
    tables, its τ, or a record nested in it) is refused when the weights load, with one clear
    error, not a traceback while an old file decodes."""
    net = _tiny()
    own = rd.net.state_dict()
    good_tables = {k: torch.from_numpy(v) for k, v in rd.tables.to_arrays().items()}

    def rec(**change) -> dict:
        return {"model_id": rd.model_id, "extra": {},
                "synthesis": {k: own[k].clone() for k in own if k.startswith("g_s.")}, **change}

    def load(record) -> learned.RDModel:
        path = tmp_path / "chain.pt"
        save_checkpoint(path, net, RDTrainConfig(model=TINY), normalise={"mode": "offset-field"},
                        extra={"earlier_synthesis": record})
        return learned.as_rd_model(load_checkpoint(path))

    fine = load(rec(tables=good_tables, extra={"earlier_synthesis": rec(), "sample_tau": [1.1] * 3}))
    assert fine.replaced is not None and fine._replaced is None  # checked, not made
    older = fine.for_file("0" * 16)  # no file of that id: the whole chain is walked
    assert older is None and fine.earlier_synthesis is not None
    assert fine.earlier_synthesis.sample_tau == (1.1,) * 3
    broken_tables = {k: v for k, v in good_tables.items() if k != "z_lengths"}
    for bad in (rec(tables=broken_tables), rec(extra={"sample_tau": ["wide"]}),
                rec(extra={"earlier_synthesis": rec(tables=broken_tables)}),
                rec(extra={"earlier_synthesis": {"model_id": "x"}})):
        with pytest.raises(ModelMismatchError):
            load(bad)


def test_an_old_release_s_files_are_sampled_with_its_own_tau(rd, grid, tmp_path):
    """τ is in gained-latent units, which a release may retrain: the record keeps the replaced
    release's τ (``extra["sample_tau"]``), and sampling one of its files uses it; a record
    without one inherits the weights' τ (releases before the record kept it)."""
    from topoae.codec import ensemble

    own = rd.net.state_dict()
    levels = rd.levels

    def release(rec_extra: dict) -> learned.RDModel:
        rec = {"model_id": rd.model_id, "extra": rec_extra,
               "synthesis": {k: v.clone() for k, v in own.items() if k.startswith("g_s.")}}
        path = tmp_path / f"tau{len(rec_extra)}.pt"
        save_checkpoint(path, _tiny(), RDTrainConfig(model=TINY), normalise={"mode": "offset-field"},
                        extra={"earlier_synthesis": rec, "sample_tau": [2.0] * levels})
        return learned.as_rd_model(load_checkpoint(path))

    kept = release({"sample_tau": [0.5] * levels})
    h, s = learned.encode(grid, rd, level=1)
    old = kept.for_file(h["model"])
    assert old is kept.earlier_synthesis and old is not None
    assert ensemble.tau_for(kept, 1, old) == 0.5
    assert ensemble.tau_for(kept, 1, kept) == 2.0
    inherited = release({})
    assert ensemble.tau_for(inherited, 1, inherited.for_file(h["model"])) == 2.0
    a = ensemble.sample(h, s, kept, n=2, seed=3)
    assert "tau 0.5 " in a.attrs["topoae_ensemble"]


def test_tables_stored_as_int32_read_as_the_int64_ones_of_older_releases(rd):
    """Tables are written as int32 now; older weights hold int64: both read as the same tables."""
    a = rd.tables.to_arrays()
    assert all(v.dtype == np.int32 for v in a.values())
    old = tables.Tables.from_arrays({k: v.astype(np.int64) for k, v in a.items()})
    new = tables.Tables.from_arrays(a)
    for x, y in zip(old.y + old.z, new.y + new.z, strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype == np.int64


def test_a_release_with_a_new_analysis_and_tables_keeps_the_tables_of_the_release_before(rd, grid, tmp_path):
    """A release that retrained the analysis and synthesis and fitted its tables again keeps
    the replaced release's synthesis and tables in its record: that release's files decode bit
    for bit as before (with its tables, not the new ones), the new files with the new tables."""
    from topoae.codec import table_fit

    net = _tiny()
    with torch.no_grad():
        for p in [*net.g_s.parameters(), *net.g_a.parameters(), *net.h_a.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    y_hist, z_hist = table_fit.collect(learned.RDModel(net=net, tables=rd.tables, model_id="c" * 64),
                                       [synthetic_grid(128, 128, seed=5)])
    fitted = table_fit.fit(rd.tables, y_hist, z_hist)
    assert fitted.z_levels and not rd.tables.z_levels  # per-level hyper-latent tables now
    extra = {"tables": {k: torch.from_numpy(v) for k, v in fitted.to_arrays().items()},
             "earlier_synthesis": {"model_id": rd.model_id, "extra": {},
                                   "tables": {k: torch.from_numpy(v) for k, v in rd.tables.to_arrays().items()},
                                   "synthesis": {k: v.clone() for k, v in rd.net.state_dict().items()
                                                 if k.startswith("g_s.")}}}
    path = tmp_path / "new.pt"
    save_checkpoint(path, net, RDTrainConfig(model=TINY), normalise={"mode": "offset-field"}, extra=extra)
    new = learned.as_rd_model(load_checkpoint(path))
    h, s = learned.encode(grid, rd, level=2)
    np.testing.assert_array_equal(learned.decode(h, s, new).values, learned.decode(h, s, rd).values)
    assert new.earlier_synthesis is not None and not new.earlier_synthesis.tables.z_levels
    assert new.tables.z_levels
    # the new release codes with the fitted tables: the same network with the old ones gives
    # other bytes, and its files decode as what the encoder saw (the outliers bound them)
    h2, s2 = learned.encode(grid, new, level=2)
    old_tables = learned.RDModel(net=net, tables=rd.tables, model_id=new.model_id)
    h3, s3 = learned.encode(grid, old_tables, level=2)
    assert s2["tile:0,0"] != s3["tile:0,0"]
    np.testing.assert_array_equal(learned.decode(h2, s2, new).values, learned.decode(h3, s3, old_tables).values)


def test_default_level_is_the_best_that_reaches_100x_on_validation(rd):
    from dataclasses import replace

    assert learned.default_level(replace(rd, level_ratios=(500.0, 300.0, 130.0, 99.0, 60.0))) == 2
    assert learned.default_level(replace(rd, level_ratios=(90.0, 50.0, 20.0))) == 0
    assert learned.default_level(replace(rd, level_ratios=())) == rd.levels // 2


def test_ratio_picks_the_best_quality_step_that_reaches_it(rd, grid):
    raw = grid.size * 4
    n = learned.LEVEL_STEPS
    sizes = {k: len(learned.to_bytes(*learned.encode(grid, rd, level=learned.quality_level(k / n))))
             for k in range(2 * n, 3 * n + 1)}  # levels 2 to 3 in steps of 1/8
    target = raw / sizes[2 * n] * 0.999
    h, s, reached = learned.encode_to_ratio(grid, rd, target)
    assert reached
    k = round(h["codec"]["level"] * n)
    assert 2 * n <= k < 3 * n and raw / len(learned.to_bytes(h, s)) >= target
    assert raw / sizes[k + 1] < target  # the next step up does not reach it
    if k > 2 * n:
        assert isinstance(h["codec"]["level"], float)
    h, s, reached = learned.encode_to_ratio(grid, rd, 1e9)
    assert not reached and h["codec"]["level"] == 0


def test_quality_between_levels(rd, grid):
    """A quality between two trained levels: gains interpolated, a file between theirs in
    size, decoded exactly by the stored level; trained levels stay ints in the header (their
    files are byte for byte what they were); a step off the 1/8 grid is refused."""
    x = np.asarray(grid.values, np.float64)
    out = {}
    for q in (2, 2.5, 3):
        h, s = learned.encode(grid, rd, level=q)
        data = learned.to_bytes(h, s)
        h2, s2 = container.unpack(data)
        y = learned.decode(h2, s2, rd).values.astype(np.float64)
        out[q] = (len(data), float(np.sqrt(np.nanmean((y - x) ** 2))))
        assert h2["codec"]["level"] == q and type(h2["codec"]["level"]) is type(q)
    assert out[2][0] < out[2.5][0] < out[3][0]
    assert out[2][1] > out[2.5][1] > out[3][1]
    assert learned.to_bytes(*learned.encode(grid, rd, level=3.0)) == learned.to_bytes(
        *learned.encode(grid, rd, level=3))
    assert learned.quality_level(2.375) == 2.375 and learned.quality_level(4.0) == 4
    for bad in (2.3, rd.levels - 1 + 1 / 8, -0.125, float("nan"), float("inf"), 1e308, "3", True):
        with pytest.raises(ConfigError, match="--quality"):
            learned.encode(grid, rd, level=bad)


def test_a_header_with_an_invalid_quality_is_a_store_error(rd, grid):
    from topoae.codec import ensemble

    h, s = learned.encode(grid, rd, level=2.5)
    for bad in (None, "2.5", 2.5000000001, 2.3, rd.levels, -1, True, [2]):
        hb = {**h, "codec": {**h["codec"], "level": bad}}
        with pytest.raises(StoreError, match="quality level"):
            learned.decode(hb, s, rd)
        with pytest.raises(StoreError, match="quality level"):
            ensemble.sample(hb, s, rd, n=2)


def test_ratio_out_of_reach_gives_the_smallest_file_tried(rd, grid, monkeypatch):
    real = learned.encode
    sizes = {}

    def fake(g, model, **kw):  # level 0 made larger than the others, as --max-error can
        h, s = real(g, model, **kw)
        if kw.get("level") == 0:
            s = {**s, "pad:0,0": bytes(5000)}
            h = {**h, "streams": [*h.get("streams", []), "pad:0,0"]}
        sizes[kw.get("level")] = len(learned.to_bytes(h, s))
        return h, s

    monkeypatch.setattr(learned, "encode", fake)
    h, s, reached = learned.encode_to_ratio(grid, rd, 1e9)
    assert not reached and len(learned.to_bytes(h, s)) == min(sizes.values()) < sizes[0]


def test_a_tiny_model_lowers_its_loss():
    from topoae.models.hyperprior import rd_loss
    from topoae.training.rd import prepare

    torch.manual_seed(0)
    net = HyperpriorModel(TINY)
    from topoae.training.rd import tile_scales

    w = np.stack([synthetic_grid(64, 64, seed=k).values.astype(np.float64) for k in range(4)])
    x = torch.from_numpy(prepare(w, tile_scales(w), TINY))
    level = torch.tensor([0, 2, 4, 5])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def loss() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(rd_loss(net, net(x, level), x, level)["loss"])

    before = loss()
    for _ in range(40):
        out = rd_loss(net, net(x, level), x, level)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert loss() < 0.8 * before


def test_cli_encode_decode_round_trip(ckpt, gebco_nc, tmp_path):
    from topoae.cli.main import cli

    r = CliRunner()
    out = tmp_path / "r.tae"
    res = r.invoke(cli, ["encode", str(gebco_nc), "--model", str(ckpt), "--out", str(out),
                         "--quality", "2"])
    assert res.exit_code == 0, res.output
    assert f"{os.path.getsize(out):,} bytes on disk" in res.output
    rec = tmp_path / "r.nc"
    res = r.invoke(cli, ["decode", str(out), "--model", str(ckpt), "--out", str(rec)])
    assert res.exit_code == 0, res.output
    import xarray as xr

    with xr.open_dataset(rec) as ds, xr.open_dataset(gebco_nc) as orig:
        assert ds["elevation"].encoding["dtype"] == np.int16
        assert ds["elevation"].shape == orig["elevation"].shape
        # the file's global attributes come back as global attributes, plus a history line
        assert orig.attrs and "history" not in orig.attrs
        for k, v in orig.attrs.items():
            assert ds.attrs[k] == v
        assert ds.attrs["history"].startswith("20") and "reconstructed by topoae" in ds.attrs["history"]
        assert str(gebco_nc) not in str(dict(ds["elevation"].attrs))  # the path read is not data
    # bad input: one line, non-zero exit, no output left behind
    res = r.invoke(cli, ["encode", str(gebco_nc), "--model", str(ckpt), "--out",
                         str(tmp_path / "x.nc"), "--quality", "1"])
    assert res.exit_code != 0 and "must end in .tae" in res.output
    assert not (tmp_path / "x.nc").exists()
    res = r.invoke(cli, ["encode", str(gebco_nc), "--model", str(ckpt), "--out",
                         str(tmp_path / "y.tae"), "--quality", "9"])
    assert res.exit_code != 0 and "--quality must be" in res.output
    assert not (tmp_path / "y.tae").exists()
    bad = tmp_path / "bad.tae"
    bad.write_bytes(out.read_bytes()[:-20])
    res = r.invoke(cli, ["decode", str(bad), "--model", str(ckpt), "--out", str(tmp_path / "b.nc")])
    assert res.exit_code != 0 and "truncated" in res.output
    assert not (tmp_path / "b.nc").exists()


def test_cli_encode_reads_feet_with_units_ft(ckpt, feet_nc, tmp_path):
    from topoae.cli.main import cli
    from topoae.io import open_grid

    out, rec = tmp_path / "f.tae", tmp_path / "f.nc"
    args = ["encode", str(feet_nc), "--model", str(ckpt), "--out", str(out), "--quality", "2"]
    res = CliRunner().invoke(cli, [*args, "--max-error", "1", "--units", "ft"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["decode", str(out), "--model", str(ckpt), "--out", str(rec)])
    assert res.exit_code == 0, res.output
    metres = open_grid(feet_nc, units="ft").values
    assert np.abs(open_grid(rec).values - metres).max() <= 1.0


def test_outlier_corrections_fix_spikes_and_count_in_the_file(rd):
    g = synthetic_grid(128, 128, seed=6)
    g = g.copy(data=g.values.copy())
    rng = np.random.default_rng(0)
    ii, jj = rng.integers(0, 128, 40), rng.integers(0, 128, 40)
    g.values[ii, jj] += 3000.0  # isolated spikes a smooth transform cannot follow
    h0, s0 = learned.encode(g, rd, level=6, outliers=False)
    h1, s1 = learned.encode(g, rd, level=6)
    assert "out:0,0" in s1 and "out:0,0" not in s0
    x = np.asarray(g.values, np.float64)
    e0 = np.abs(learned.decode(h0, s0, rd).values - x)[ii, jj]
    e1 = np.abs(learned.decode(h1, s1, rd).values - x)[ii, jj]
    step = learned.outlier_step(rd, learned.RDCodecConfig(**h1["codec"]))
    assert e1.max() <= step / 2 + 1e-3
    assert e1.mean() < 0.1 * e0.mean()
    # the corrections are part of the file: it grows by their stream (the compressed header,
    # which names one more stream, may differ by a few bytes)
    grown = len(learned.to_bytes(h1, s1)) - len(learned.to_bytes(h0, s0))
    assert abs(grown - len(s1["out:0,0"])) <= 16
    # a format-2 header carries no outlier cost: its files were made with 10 bits per correction
    assert h1["codec"]["outlier_bits"] == learned.OUTLIER_BITS
    old = {**h1, "codec": {k: v for k, v in h1["codec"].items() if k != "outlier_bits"}}
    old_step = learned.outlier_step(rd, learned.RDCodecConfig(**old["codec"]))
    assert old_step == pytest.approx(step * math.sqrt(10.0 / learned.OUTLIER_BITS))


def test_zarr_store_decodes_like_the_file_and_catches_a_missing_chunk(rd, grid, tmp_path):
    import json
    import shutil

    from topoae.codec import latent_store

    h, s = learned.encode(grid, rd, level=2)
    p = latent_store.save(tmp_path / "r.zarr", h, s, rd)
    h2, s2 = latent_store.load(p)
    assert learned.to_bytes(h2, s2) == learned.to_bytes(h, s)
    assert np.array_equal(learned.decode(h2, s2, rd).values, learned.decode(h, s, rd).values)
    import zarr

    lat = zarr.open_group(str(p), mode="r")["latents"]
    # the coded grid: 200×260 cells padded to whole latents (16 cells)
    assert lat.shape == (TINY.latent_channels, 208 // 16, 272 // 16) and lat.dtype == np.int32
    for name in ("latents", "hyper"):  # the analysis arrays are checked too
        q = tmp_path / f"{name}.zarr"
        shutil.copytree(p, q)
        arr = zarr.open_array(str(q / name), mode="r+")  # (chunks equal to the fill value are
        arr[(0,) * arr.ndim] = int(arr[(0,) * arr.ndim]) + 7  # not stored: damage a value instead)
        with pytest.raises(StoreError, match=f"array '{name}' is damaged"):
            latent_store.load(q)
    # a store names its kind: earlier readers refuse format 8's (they would misread its 16 m
    # offset nodes); stores of format 6's and 7's kinds still read; an unknown later kind is named
    meta = json.loads(zarr.open_group(str(p), mode="r").attrs["topoae"])
    assert meta["kind"] == latent_store.KIND != "topoae-rd-store" and meta["container_version"] == container.VERSION == 8
    for kind, ok in (("topoae-rd-store", True), ("topoae-rd-store-7", True), ("topoae-rd-store-9", False)):
        q = tmp_path / f"{kind}.zarr"
        shutil.copytree(p, q)
        zarr.open_group(str(q), mode="r+").attrs["topoae"] = json.dumps({**meta, "kind": kind})
        if ok:
            assert latent_store.load(q)[1] == s
        else:
            with pytest.raises(StoreError, match="newer topoae"):
                latent_store.load(q)
    chunk = next((p / "streams" / "tile_0_0").rglob("c/*"))
    chunk.unlink() if chunk.is_file() else shutil.rmtree(chunk)
    with pytest.raises(StoreError, match="tile:0,0"):
        latent_store.load(p)


@pytest.mark.parametrize("integer", [True, False])
def test_coastline_exact_keeps_every_sign_in_every_dtype(rd, integer):
    g = synthetic_grid(160, 200, seed=8)  # coast, shelf and land
    g = g.round() if integer else g + 0.25
    h0, s0 = learned.encode(g, rd, level=1)
    x = np.asarray(g.values, np.float64)
    plain = learned.decode(h0, s0, rd, dtype="float32").values.astype(np.float64)
    assert (np.sign(plain) != np.sign(x)).any()  # the plain reconstruction moves the coastline
    h, s = learned.encode(g, rd, level=1, coastline="exact")
    coast = sum(len(v) for k, v in s.items() if k.startswith("coast:"))
    assert coast > 0 and not any(k.startswith("coast:") for k in s0)
    dtypes = ("float32", "int16") if integer else ("float32",)
    for dtype in dtypes:
        v = learned.decode(h, s, rd, dtype=dtype).values.astype(np.float64)
        if dtype == "int16":
            v = np.rint(v)
        assert np.array_equal(np.sign(v), np.sign(x))
    if not integer:
        with pytest.raises(ConfigError, match="float32"):
            learned.decode(h, s, rd, dtype="int16")


def test_coastline_stream_is_absent_when_nothing_needs_correcting(rd):
    g = synthetic_grid(96, 96, seed=1)
    g = g.copy(data=np.full(g.shape, -4000.0, dtype=np.float32) + 30 * np.sin(np.arange(96) / 9.0)[None, :])
    h, s = learned.encode(g, rd, level=3, coastline="exact")
    assert not any(k.startswith("coast:") for k in s)


@pytest.mark.parametrize("integer", [True, False])
def test_depth_relative_bound_holds_on_every_cell(rd, integer):
    g = synthetic_grid(160, 200, seed=8)
    g = g.round() if integer else g + 0.37
    x = np.asarray(g.values, np.float64)
    e, r, a = 25.0, 0.05, 0.5
    h, s = learned.encode(g, rd, level=0, max_error=e, relative_error=r, floor=a)
    bound = np.minimum(e, np.maximum(a, r * np.abs(x)))
    for dtype in ("float32", "int16") if integer else ("float32",):
        v = learned.decode(h, s, rd, dtype=dtype).values.astype(np.float64)
        if dtype == "int16":
            v = np.rint(v)
        assert np.all(np.abs(v - x) <= bound + 1e-9)
    plain = learned.to_bytes(*learned.encode(g, rd, level=0, max_error=e))
    assert len(learned.to_bytes(h, s)) > len(plain)  # the shallow cells cost more bytes
    with pytest.raises(ConfigError, match="needs --max-error"):
        learned.encode(g, rd, level=0, relative_error=r)


def test_lazy_decode_is_the_eager_decode_and_writes_the_same_file(rd, tmp_path):
    """Decoding tile row by tile row (dask) gives the same values, in any row order."""
    import dask
    import xarray as xr

    from topoae.codec import files as codec_io

    g = synthetic_grid(300, 260, seed=4)
    h, s = learned.encode(g, rd, level=2, tile=128, max_error=8.0)
    eager = learned.decode(h, s, rd)
    lazy = learned.decode(h, s, rd, lazy=True)
    assert lazy.chunks is not None and len(lazy.chunks[0]) == 3  # one chunk per tile row
    with dask.config.set(scheduler="synchronous"):  # rows on this thread, as the CLI does
        np.testing.assert_array_equal(lazy[200:].values, eager.values[200:])  # last row first
        np.testing.assert_array_equal(lazy.values, eager.values)
        a = codec_io.save_grid(eager, tmp_path / "a.nc")
        b = codec_io.save_grid(lazy, tmp_path / "b.nc")

    def no_history(ds):  # the history line carries the decoding time
        ds.attrs.pop("history", None)
        for v in ds.variables.values():
            v.attrs.pop("history", None)
        return ds

    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        xr.testing.assert_identical(no_history(da.load()), no_history(db.load()))


@pytest.mark.parametrize("projected", [False, True])
def test_decoded_file_keeps_the_inputs_row_order(rd, tmp_path, projected):
    """A file whose rows run north to south (y or lat descending) comes back that way."""
    import xarray as xr

    from topoae.codec import files as codec_io
    from topoae.io import open_grid

    g = synthetic_grid(70, 50, seed=5)
    if projected:
        g = g.rename(lat="y", lon="x").assign_coords(y=4.0e6 + 100.0 * np.arange(70),
                                                      x=5.0e5 + 100.0 * np.arange(50))
    src = tmp_path / "desc.nc"
    g.isel({g.dims[0]: slice(None, None, -1)}).to_dataset(name="elevation").to_netcdf(src)
    grid = open_grid(src)
    out = codec_io.save_grid(learned.decode(*learned.encode(grid, rd, level=3), rd), tmp_path / "o.nc")
    with xr.open_dataset(src) as a, xr.open_dataset(out) as b:
        ydim = a["elevation"].dims[0]
        assert a[ydim].values[0] > a[ydim].values[-1]
        np.testing.assert_array_equal(b[ydim].values, a[ydim].values)
        assert "history" in b.attrs and "history" not in b["elevation"].attrs


def test_depth_weights_favour_the_coastline_and_average_one():
    from topoae.training.rd import depth_weights

    z = np.array([[[-4000.0, -200.0, -20.0, -1.0, 0.0, 3.0, 900.0, np.nan]]])
    w = depth_weights(z, 9.0, 50.0)
    assert w.shape == (1, 1, 1, 8)
    v = w[0, 0, 0]
    assert v[-1] == 0.0  # NaN cells carry no weight
    np.testing.assert_allclose(v.mean(), 1.0, rtol=1e-6)
    assert v[4] > v[3] > v[2] > v[1] > v[0] and v[4] > v[5] > v[6]
    np.testing.assert_allclose(v[4] / v[0], 10.0, rtol=1e-6)  # 1 + 9 at the shoreline
    np.testing.assert_allclose(depth_weights(z, 0.0, 50.0)[0, 0, 0, :7], 8 / 7, rtol=1e-6)


def test_one_unmarked_fill_value_barely_moves_the_roughness_scale():
    """The roughness sets the whole region's quantisation scale; one cell of 99999 (a fill value
    nobody marked) may add at most its four capped steps to it, not 4 × 100 km."""
    from topoae import offset_field

    z = np.asarray(synthetic_grid(128, 128, seed=12).values, np.float64)
    spiked = z.copy()
    spiked[40, 60] = 99999.0
    pairs = 2 * 128 * 127
    clean, dirty = offset_field.roughness(z), offset_field.roughness(spiked)
    assert clean < dirty <= clean + 2.0 * 4 * offset_field.STEP_CAP / pairs
    assert offset_field.scale_exponent(dirty) - offset_field.scale_exponent(clean) <= 4  # ≤ 2×


def test_low_levels_take_coarse_offset_nodes_and_old_headers_the_models_step(rd, grid):
    """Below COARSE_OFFSET_BELOW the offset field's nodes are in COARSE_OFFSET_STEP metres, above
    in the model's step; a header without the setting (formats up to 7) means the model's step,
    and a damaged one is a StoreError."""
    from topoae import offset_field
    from topoae.codec import residual

    low, high = 0, min(learned.COARSE_OFFSET_BELOW, rd.levels - 1)
    h0, s0 = learned.encode(grid, rd, level=low)
    h1, s1 = learned.encode(grid, rd, level=high)
    assert h0["codec"]["offset_step"] == learned.COARSE_OFFSET_STEP == 16.0
    assert h1["codec"]["offset_step"] == (rd.net.config.offset_step if high >= learned.COARSE_OFFSET_BELOW
                                          else learned.COARSE_OFFSET_STEP)
    shape = offset_field.node_shape(grid.shape, rd.net.config.offset_stride)
    coarse = residual.decode_residual(s0["offset"], shape)
    fine = offset_field.compute_nodes(grid.values.astype(np.float64), rd.net.config.offset_stride,
                                      rd.net.config.offset_step)
    assert np.abs(coarse * 16.0 - fine).max() <= 8.5  # the same block means, rounded to 16 m
    y = learned.decode(h0, s0, rd).values
    assert np.isfinite(y).all() and y.shape == grid.shape
    # the same file read as a format-7 header (no setting): the model's 1 m step, another grid
    old = {**h0, "codec": {k: v for k, v in h0["codec"].items() if k != "offset_step"}}
    assert not np.array_equal(learned.decode(old, s0, rd).values, y)
    for bad in (-1.0, "16", float("nan"), True):
        with pytest.raises(StoreError, match="offset step"):
            learned.decode({**h0, "codec": {**h0["codec"], "offset_step": bad}}, s0, rd)
