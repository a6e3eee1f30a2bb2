"""The shipped model, ``topoae demo`` and the notebook, end to end on the bundled region."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.zoo import ETOPO5_REGION, SHIPPED, WEIGHTS

CARD = WEIGHTS / SHIPPED.replace(".pt", ".card.json")
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (WEIGHTS / SHIPPED).is_file(), reason="no shipped model in this checkout")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(CARD.read_text())


def test_shipped_model_loads_safely_and_matches_its_card(card):
    from topoae.checkpoint import load_checkpoint

    raw = torch.load(WEIGHTS / SHIPPED, weights_only=True)  # tensors and builtins only
    assert raw["format"] == "topoae-checkpoint" and raw["state"] is None  # no optimiser state shipped
    lm = load_checkpoint(WEIGHTS / SHIPPED)
    assert lm.model_id == card["model_id"]
    assert lm.model.latent_dim == card["latent_dim"] and lm.normalise["mode"] == card["normalise"]


def test_round_trip_on_bundled_region_within_card(card):
    import topoae
    from topoae import metrics
    from topoae.checkpoint import load_checkpoint
    from topoae.io import open_grid

    lm = load_checkpoint(WEIGHTS / SHIPPED)
    grid = open_grid(ETOPO5_REGION).load()
    rec = topoae.decode(topoae.encode(grid, lm, quantize="8bit"), lm)
    assert rec.shape == grid.shape and np.array_equal(rec.lat, grid.lat) and np.array_equal(rec.lon, grid.lon)
    m = metrics.compare(grid.values, rec.values)
    ref = card["bundled_region"]
    assert m.rmse == pytest.approx(ref["rmse_m"], rel=0.02)
    assert m.max_abs <= ref["max_abs_m"] * 1.02


@pytest.mark.slow
def test_demo_writes_everything_it_lists(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(cli, ["demo", "--out", str(out), "--members", "2"])
    assert r.exit_code == 0, r.output
    listed = [line.strip() for line in r.output.splitlines() if line.startswith("  ") and "topoae " not in line]
    assert {"comparison.png", "reconstruction.nc", "ensemble.nc", "exahype/bathymetry.nc"} <= set(listed)
    for name in listed:
        assert (out / name.rstrip("/")).exists(), name
    bounded = re.search(r"error-bounded \(--max-error 25\): max error ([0-9.]+) m", r.output)
    assert "RMSE" in r.output and bounded and float(bounded.group(1)) <= 25.0
    again = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch, card):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from topoae.io import open_grid

    nb = nbformat.read(REPO / "notebooks" / "walkthrough.ipynb", as_version=4)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's WORK = tempfile.mkdtemp(...)
    monkeypatch.chdir(tmp_path)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    outputs = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )

    def number(pattern: str) -> float:
        found = re.search(pattern, outputs)
        assert found, pattern
        value = float(found.group(1).replace(",", ""))
        assert np.isfinite(value), pattern
        return value

    ny, nx = open_grid(ETOPO5_REGION).shape  # 181 x 180
    assert f"(lat: {ny}, lon: {nx})" in outputs  # the grid cell's repr
    # tiling: the dataset sees the store's train split, as 1x96x96 patches
    train = number(r"patches \(train ([0-9,]+), val")
    assert train >= 1 and number(r"([0-9,]+) training patches of shape \(1, 96, 96\)") == train
    # encoding: every cell, and the payload ratio is float32 bytes / payload bytes
    assert number(r"([0-9,]+) cells \(") == ny * nx
    payload = number(r"([0-9,]+) payload bytes \(CR")
    assert number(r"payload bytes \(CR ([0-9.]+)x of float32") == pytest.approx(
        4 * ny * nx / payload, rel=0.01
    )
    # the shipped model's figures on this region, as its card records them (823.6 m on 2026-11-22)
    ref = card["bundled_region"]
    assert number(r"RMSE ([0-9.]+) m, max error") == pytest.approx(ref["rmse_m"], rel=0.02)
    assert number(r"m, max error ([0-9.]+) m, PSNR") <= ref["max_abs_m"] * 1.02
    assert number(r"PSNR ([0-9.]+) dB") == pytest.approx(ref["psnr_db"], abs=0.3)
    assert 0 < number(r"max error ([0-9.]+) m;") <= 25.0  # the error-bounded mode keeps its bound
    assert 0 < number(r"mean ensemble std ([0-9.]+) m") < ref["rmse_m"]  # measured 176 m
    assert number(r"with ([0-9]+) Axes") >= 3  # original / topoae / error panels
    (work,) = tmp_path.glob("topoae-nb-*")
    for written in ("patches.zarr", "latents.zarr", "exahype/bathymetry.nc"):
        assert (work / written).exists(), written
    assert "'bathymetry.nc'" in outputs
