"""``topoae tile`` and the CLI's behaviour on bad input; a LocalCluster run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.data.tiling import TileConfig, open_store


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_tile_writes_store_and_summary(tmp_path, gebco_nc):
    out = tmp_path / "p.zarr"
    r = run("tile", gebco_nc, "--out", out, "--stride", 48, "--normalise", "patch", "--seed", 2)
    assert r.exit_code == 0, r.output
    assert "patches (train" in r.output and str(out) in r.output
    g, attrs = open_store(out)
    assert attrs["normalise"]["mode"] == "patch" and attrs["stride"] == 48
    assert attrs["sources"][0]["source"].endswith("gebco_synthetic.nc")
    assert g["patches"].shape[0] == attrs["counts"]["patches"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.nc"], "does not exist"),
        (["{grid}", "--var", "depth"], "candidates: elevation"),
        (["{grid}", "--bbox", "100,0,110,10"], "outside the grid"),
        (["{grid}", "--bbox", "1,2,3"], "four numbers"),
        (["{grid}", "--patch", "512"], "smaller than one 512x512 patch"),
        (["{grid}", "--split", "0.5,0.5"], "three"),
        (["{grid}", "--stride", "200"], "stride <= patch"),
        (["{bad}"], "cannot read"),
    ],
)
def test_bad_input_gives_one_line_and_no_store(tmp_path, gebco_nc, args, message):
    bad = tmp_path / "bad.nc"
    bad.write_text("garbage")
    args = [a.format(grid=gebco_nc, bad=bad) for a in args]
    out = tmp_path / "o.zarr"
    r = run("tile", *args, "--out", out)
    # a TopoAEError becomes one "Error:" line and exit 1 (SystemExit); any other
    # exception would also give exit 1 under CliRunner, but as r.exception itself
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.output.startswith("Error: ") and message in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()
    assert not any(p.name.startswith(".o.zarr") for p in tmp_path.iterdir())


@pytest.mark.parametrize("patch", [32, 48])
def test_stride_defaults_to_the_patch_size(tmp_path, gebco_nc, patch):
    out = tmp_path / "p.zarr"
    r = run("tile", gebco_nc, "--out", out, "--patch", patch)
    assert r.exit_code == 0, r.output
    g, attrs = open_store(out)
    assert attrs["patch"] == patch and attrs["stride"] == patch
    assert g["patches"].shape[1:] == (patch, patch)
    assert attrs["config"]["stride"] == patch
    c = attrs["counts"]
    stored = c["patches"] + c["dropped_nan"] + c["dropped_guard"] + c["dropped_excluded"]
    assert stored == (300 // patch) * (420 // patch)  # side by side, none skipped
    assert TileConfig(patch=patch).stride == patch  # the library's default too


@pytest.mark.parametrize(
    "command", [["evaluate"], ["simulate"], ["tile"], ["export", "geoclaw"], ["export", "exahype"]]
)
def test_help_texts_print_no_doubled_percent(command):
    r = run(*command, "--help")
    assert r.exit_code == 0, r.output
    assert "%%" not in r.output
    if command[0] in ("evaluate", "simulate"):
        assert " % of" in r.output
    if command == ["tile"]:
        assert "grid's coordinates" in " ".join(r.output.split())  # --bbox: not only degrees


def test_existing_output_needs_overwrite(tmp_path, gebco_nc):
    out = tmp_path / "p.zarr"
    assert run("tile", gebco_nc, "--out", out).exit_code == 0
    r = run("tile", gebco_nc, "--out", out)
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert run("tile", gebco_nc, "--out", out, "--overwrite").exit_code == 0


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys; from topoae.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'dask', 'xarray', 'zarr') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out and "tile" in out
    v = subprocess.run(
        [sys.executable, "-m", "topoae.cli.main", "--version"], capture_output=True, text=True
    )
    assert v.returncode == 0 and "topoae, version" in v.stdout


@pytest.mark.slow
def test_tile_through_a_local_cluster(tmp_path, gebco_nc):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client, distributed.get_task_stream(client) as ts:
            r = run(
                "tile",
                gebco_nc,
                "--out",
                tmp_path / "c.zarr",
                "--scheduler",
                cluster.scheduler_address,
            )
            workers = set(client.scheduler_info()["workers"])
        assert r.exit_code == 0, r.output
    # the tiling's own tasks ran on the cluster's workers, not in this process
    assert ts.data, "no task ran on the cluster"
    assert {t["worker"] for t in ts.data} <= workers
    assert run("tile", gebco_nc, "--out", tmp_path / "t.zarr").exit_code == 0
    a, _ = open_store(tmp_path / "c.zarr")
    b, _ = open_store(tmp_path / "t.zarr")
    np.testing.assert_array_equal(a["patches"][:], b["patches"][:])


def test_unreachable_scheduler(tmp_path, gebco_nc):
    r = run("tile", gebco_nc, "--out", tmp_path / "u.zarr", "--scheduler", "tcp://127.0.0.1:9")
    assert r.exit_code == 1 and "cannot reach the dask scheduler" in r.output


def test_train_takes_the_store_patch_size(tmp_path, gebco_nc):
    """``tile --patch 32`` then ``train``: the model is built for 32-cell patches."""
    from topoae.checkpoint import read_checkpoint

    store = tmp_path / "p32.zarr"
    assert run("tile", gebco_nc, "--out", store, "--patch", 32).exit_code == 0
    r = run("train", store, "--out", tmp_path / "run", "--epochs", 1, "--batch", 8, "--quiet",
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    payload, _ = read_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["config"]["model"]["patch_size"] == 32
