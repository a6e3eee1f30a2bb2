"""Bad input to every command: exit status 1, one ``Error:`` line, and no output left behind.

One table of cases (issue 12). Each names the command line, a pattern the ``Error:`` line
must match and the output it asks for; the test then checks that

- the exit status is 1 and came from the CLI's own error path (``SystemExit``), not from
  an exception that escaped it;
- what the user sees is exactly one line, ``Error: ...`` (a click usage error, marked
  ``usage``, is the usage, a hint and one ``Error:`` line); warnings count, written as the
  console script writes them (``Warning: ...``), since they reach the same terminal;
- the line is whole: not the first line of a longer text cut off after a colon, no
  traceback, nothing about torch's ``weights_only``;
- the output does not exist afterwards (an output that existed before is untouched), and
  no temporary ``.NAME.tmp-*`` of it is left next to it.

Inputs are small grids made in code and the shipped models; nothing is trained.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from topoae.cli.main import cli

#: a regional grid: lon -30.0 .. -29.74, lat -40.0 .. -39.74 (64 cells of 15")
W_GT_E = "-29.8,-39.95,-29.9,-39.8"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # "{name}": an input of :class:`_Inputs`, "{out}": the output
    error: str  # regex the Error line must match (re.search)
    out: str  # the output's name, in the test's own folder
    usage: bool = False  # a click usage error: usage, hint, then the Error line
    exists: str | None = None  # "file" / "dir": the output exists before the run
    xfail: str | None = None  # a known defect: the reason


def C(id: str, argv: str, error: str, out: str, **kw) -> Case:
    return Case(id, tuple(argv.split()), error, out, **kw)


CASES = [
    # --- missing or unreadable input
    C("encode-missing", "encode {missing} --out {out}", r"missing\.nc does not exist", "a.tae"),
    C("tile-missing", "tile {missing} --out {out}", r"missing\.nc does not exist", "a.zarr"),
    C("export-missing", "export geoclaw {missing} --out {out}", r"missing\.nc does not exist",
      "gc"),
    C("simulate-missing", "simulate --bathymetry {missing} --out {out}",
      r"missing\.nc does not exist", "sim"),
    C("evaluate-missing", "evaluate {missing} --out {out}",
      r"Invalid value for 'SOURCE': Path .*missing\.nc' does not exist", "rep", usage=True),
    C("decode-missing", "decode {missing_tae} --out {out}", r"missing\.tae not found", "d.nc"),
    C("encode-garbage-tif", "encode {garbage_tif} --out {out}",
      r"cannot read .*garbage\.tif as a raster", "a.tae"),
    C("encode-garbage-nc", "encode {garbage_nc} --out {out}",
      r"cannot read .*garbage\.nc as NetCDF: not a NetCDF or HDF5 file", "a.tae"),
    C("tile-garbage-nc", "tile {garbage_nc} --out {out}", r"cannot read .*garbage\.nc as NetCDF",
      "a.zarr"),
    C("decode-garbage-tae", "decode {garbage_tae} --out {out}", r"is not a topoae \.tae file",
      "d.nc"),
    C("decode-a-grid", "decode {g64} --out {out}", r"not a topoae latent file", "d.nc"),
    # --- a variable that does not say it is elevation, an unknown --var
    *[
        C(f"{name}-temperature-only", f"{cmd} --out {{out}}",
          r"'temperature', does not say it is elevation.*pass --var temperature", out)
        for name, cmd, out in [
            ("encode", "encode {temperature}", "a.tae"),
            ("tile", "tile {temperature}", "a.zarr"),
            ("evaluate", "evaluate {temperature} --no-figures", "rep"),
            ("simulate", "simulate --bathymetry {temperature}", "sim"),
            ("export-geoclaw", "export geoclaw {temperature}", "gc"),
        ]
    ],
    C("encode-unknown-var", "encode {g64} --var depth --out {out}",
      r"variable 'depth' not in .*; candidates: elevation", "a.tae"),
    # --- boxes
    C("encode-bbox-w-gt-e", f"encode {{g64}} --bbox {W_GT_E} --out {{out}}",
      r"crosses the antimeridian, but the grid is regional", "a.tae"),
    C("tile-bbox-w-gt-e", f"tile {{g64}} --bbox {W_GT_E} --out {{out}}",
      r"crosses the antimeridian, but the grid is regional", "a.zarr"),
    C("encode-bbox-outside", "encode {g64} --bbox 100,0,110,10 --out {out}",
      r"bbox .* is outside the grid", "a.tae"),
    C("tile-bbox-outside", "tile {g64} --bbox 100,0,110,10 --out {out}",
      r"bbox .* is outside the grid", "a.zarr"),
    C("encode-bbox-three-numbers", "encode {g64} --bbox 1,2,3 --out {out}",
      r"bbox '1,2,3' must have four numbers W,S,E,N, got 3", "a.tae"),
    C("encode-bbox-not-numbers", "encode {g64} --bbox a,b,c,d --out {out}",
      r"bbox 'a,b,c,d' is not four numbers W,S,E,N", "a.tae"),
    C("encode-bbox-south-above-north", "encode {g64} --bbox -30,-39.8,-29.8,-39.9 --out {out}",
      r"south \(-39\.8\) must be below north", "a.tae"),
    # --- grids the codec cannot take
    C("encode-10x10", "encode {small10} --out {out}",
      r"10x10 cells is too small: the learned codec needs at least 16x16", "a.tae"),
    C("encode-10x10-patch-model", "encode {small10} --model vae-default --out {out}",
      r"10x10 cells is too small: this model needs at least 96x96", "a.zarr"),
    C("encode-nan-only", "encode {nan} --out {out}", r"no valid \(non-NaN\) cell", "a.tae"),
    C("encode-inf-cell", "encode {inf_cell} --max-error 10 --out {out}",
      r"1 cell\(s\) hold values that are not elevations in metres \(e\.g\. inf at row 5, column 7",
      "a.tae"),
    C("encode-fill-value-1e30", "encode {huge_cell} --out {out}",
      r"not elevations in metres \(e\.g\. 1e\+30 at row 5, column 7.*mark missing cells as NaN",
      "a.tae"),
    C("tile-nan-only", "tile {nan} --patch 32 --out {out}",
      r"no patch left to store: the region is all NaN", "a.zarr"),
    # --- outputs
    C("encode-existing-output", "encode {g64} --out {out}",
      r"exists\.tae exists \(pass --overwrite to replace it\)", "exists.tae", exists="file"),
    C("decode-existing-output", "decode {tae} --out {out}",
      r"exists\.nc exists \(pass --overwrite to replace it\)", "exists.nc", exists="file"),
    C("tile-existing-output", "tile {g64} --out {out}",
      r"exists\.zarr exists \(pass --overwrite to replace it\)", "exists.zarr", exists="dir"),
    C("encode-wrong-suffix", "encode {g64} --out {out}",
      r"x\.nc must end in \.tae \(or \.zarr", "x.nc"),
    C("decode-wrong-suffix", "decode {tae} --out {out}", r"d\.xyz must end in \.nc or \.tif",
      "d.xyz"),
    C("sample-wrong-suffix", "sample {tae} --out {out}", r"s\.txt must end in \.nc or \.zarr",
      "s.txt"),
    C("encode-overwrite-a-folder", "encode {g64} --overwrite --out {out}",
      r"folder\.tae is a directory; --overwrite replaces files, not folders", "folder.tae",
      exists="dir"),
    # --- codec options
    C("encode-quality-9", "encode {g64} --quality 9 --out {out}",
      r"--quality must be 0\.\.8, got 9", "a.tae"),
    C("encode-ratio-negative", "encode {g64} --ratio -3 --out {out}",
      r"--ratio must be a positive number, got -3", "a.tae"),
    C("encode-quality-and-ratio", "encode {g64} --quality 1 --ratio 3 --out {out}",
      r"give --quality or --ratio, not both", "a.tae"),
    C("encode-max-error-0", "encode {g64} --max-error 0 --out {out}",
      r"--max-error must be a positive number of metres, got 0", "a.tae"),
    C("encode-relative-error-alone", "encode {g64} --relative-error 0.01 --out {out}",
      r"--relative-error needs --max-error", "a.tae"),
    C("encode-floor-alone", "encode {g64} --floor 2 --out {out}",
      r"--floor is the smallest bound of --relative-error; give both", "a.tae"),
    C("encode-patch-option-to-learned-codec", "encode {g64} --batch 0 --out {out}",
      r"--batch: for the thesis patch models only; the learned codec does not take it", "a.tae"),
    C("decode-patch-options-to-learned-codec", "decode {tae} --device bogus --scheduler x --out {out}",
      r"--device, --scheduler: for the thesis patch models only; the learned codec does not take them",
      "d.nc"),
    C("sample-negative-seed", "sample {tae} --seed -1 --out {out}",
      r"--seed must be a non-negative integer, got -1", "s.nc"),
    C("sample-negative-temperature", "sample {tae} --temperature -1 --out {out}",
      r"--temperature must be a non-negative number, got -1", "s.nc"),
    # --- damaged or mismatched latent files
    C("decode-truncated-tae", "decode {tae_truncated} --out {out}",
      r"tae_truncated\.tae: stream \d+ is truncated", "d.nc"),
    C("decode-flipped-byte-tae", "decode {tae_flipped} --out {out}",
      r"tae_flipped\.tae is damaged \(checksum mismatch\)", "d.nc"),
    C("decode-tae-with-patch-model", "decode {tae} --model vae-default --out {out}",
      r"needs a hyperprior model", "d.nc"),
    C("decode-tae-with-other-model", "decode {tae} --model {tiny_ckpt} --out {out}",
      r"made with model [0-9a-f]+, not [0-9a-f]+ \(pass the right --model, or --force\)",
      "d.nc"),
    C("decode-store-missing-chunk", "decode {store_damaged} --out {out}",
      r"stream 'tile:0,0' is damaged or has a missing chunk", "d.nc"),
    C("decode-patch-store-missing-mu-chunk", "decode {patch_damaged} --out {out}",
      r"array 'mu' is damaged \(checksum mismatch", "d.nc"),
    C("decode-int16-of-float-bound", "decode {tae_float_bound} --dtype int16 --out {out}",
      r"holds for float32 output only .*decode with --dtype float32", "d.nc"),
    C("decode-int16-beyond-its-range", "decode {tae_high} --dtype int16 --out {out}",
      r"values from \d+ to \d+, beyond int16's ±32767: write it as float32", "d.nc"),
    # --- checkpoints that are not topoae's
    C("encode-random-bytes-model", "encode {g64} --model {random_pt} --out {out}",
      r"random\.pt is not a (readable|topoae) checkpoint(?!: it holds objects)", "a.tae"),
    C("decode-truncated-checkpoint-model", "decode {tae} --model {truncated_pt} --out {out}",
      r"truncated\.pt is not a readable checkpoint \(corrupted or truncated\)", "d.nc"),
    C("encode-pickled-object-model", "encode {g64} --model {object_pt} --out {out}",
      r"object\.pt is not a topoae checkpoint: it holds objects other than tensors and plain "
      r"data \(argparse\.Namespace\)", "a.tae"),
    C("decode-pickled-object-model-protocol-4",
      "decode {tae} --model {object_p4_pt} --out {out}",
      r"object_p4\.pt is not a topoae checkpoint: it holds objects other than tensors and plain "
      r"data \(argparse\.Namespace\)", "d.nc"),
    # --- tsunami sources and engines
    C("export-displacement-elsewhere", "export geoclaw {g64} --displacement {displ_far} "
      "--out {out}", r"displacement grid .* does not overlap the bathymetry", "gc"),
    C("export-displacement-500m", "export geoclaw {g64} --displacement {displ_500m} --out {out}",
      r"displacement grid reaches 500 m; more than 100 m .* not plausible", "gc"),
    C("simulate-engine-bogus", "simulate --bathymetry {g64} --engine bogus --out {out}",
      r"Invalid value for '--engine': 'bogus' is not one of 'anuga', 'geoclaw'", "sim",
      usage=True),
    C("simulate-all-land", "simulate --bathymetry {land} --out {out}",
      r"no cell below sea level", "sim"),
    C("export-unordered-coordinates", "export anuga {unordered} --out {out}",
      r"coordinate lat must increase strictly", "an"),
    C("simulate-unordered-coordinates", "simulate --bathymetry {unordered} --out {out}",
      r"coordinate lat must increase strictly", "sim"),
    # --- training data
    C("tile-split-file-naming-no-input", "tile {g64} --patch 32 --split-by-file {split_json} "
      "--out {out}", r"input g64 is in no split of the split file", "a.zarr"),
    C("train-patch-not-multiple-of-16", "train {patches24} --epochs 1 --quiet --device cpu "
      "--out {out}", r"the store has 24x24 patches; the patch models take a multiple of 16", "run"),
]


#: a Zarr array's metadata files (v3, v2): what is not one of them is a chunk
_METADATA = ("zarr.json", ".zarray", ".zattrs")


def _invoke(argv: list[str]):
    return CliRunner().invoke(cli, argv)


class _Inputs:
    """Each input made on first use, once per session."""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._made:
            self._made[name] = str(getattr(self, f"_{name}")())
        return self._made[name]

    def _write(self, name: str, da: xr.DataArray, var: str = "elevation") -> Path:
        path = self.root / name
        da.to_dataset(name=var).to_netcdf(path)
        return path

    def _cli(self, *argv: str) -> None:
        r = _invoke(list(argv))
        assert r.exit_code == 0, r.output

    def _missing(self):
        return self.root / "missing.nc"

    def _missing_tae(self):
        return self.root / "missing.tae"

    def _garbage_nc(self):
        (path := self.root / "garbage.nc").write_bytes(b"not a grid\n" * 20)
        return path

    def _garbage_tif(self):
        (path := self.root / "garbage.tif").write_bytes(b"not a grid\n" * 20)
        return path

    def _garbage_tae(self):
        (path := self.root / "garbage.tae").write_bytes(b"not a grid\n" * 20)
        return path

    def _g64(self):
        from topoae.io.synthetic import write_synthetic_gebco

        return write_synthetic_gebco(self.root / "g64.nc", 64, 64, seed=3)

    def _temperature(self):
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(32, 32, seed=1)
        da.attrs = {}  # no units, names or anything else that says elevation
        return self._write("temperature.nc", da, var="temperature")

    def _small10(self):
        from topoae.io.synthetic import synthetic_grid

        return self._write("small10.nc", synthetic_grid(10, 10, seed=2))

    def _nan(self):
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(64, 64, seed=4)
        return self._write("nan.nc", da.copy(data=np.full(da.shape, np.nan, np.float32)))

    def _with_cell(self, name: str, value: float) -> Path:
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(32, 32, seed=5)
        v = da.values.copy()
        v[5, 7] = value
        return self._write(name, da.copy(data=v))

    def _inf_cell(self):
        return self._with_cell("inf_cell.nc", np.inf)

    def _huge_cell(self):
        return self._with_cell("huge_cell.nc", 1e30)

    def _tae_high(self):
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(32, 32, seed=6)
        grid = self._write("high.nc", da.copy(data=np.abs(da.values) + np.float32(38000.5)))
        self._cli("encode", str(grid), "--out", str(path := self.root / "high.tae"))
        return path

    def _unordered(self):
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(32, 32, seed=7)
        lat = da[da.dims[0]].values.copy()
        lat[[3, 4]] = lat[[4, 3]]
        return self._write("unordered.nc", da.assign_coords({da.dims[0]: lat}))

    def _land(self):
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(64, 64, seed=4)
        return self._write("land.nc", da.copy(data=np.abs(da.values) + 10))

    def _tae(self):
        self._cli("encode", self["g64"], "--out", str(path := self.root / "tae.tae"))
        return path

    def _tae_truncated(self):
        data = Path(self["tae"]).read_bytes()
        (path := self.root / "tae_truncated.tae").write_bytes(data[: len(data) // 2])
        return path

    def _tae_flipped(self):
        data = bytearray(Path(self["tae"]).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (path := self.root / "tae_flipped.tae").write_bytes(bytes(data))
        return path

    def _tae_float_bound(self):
        from topoae.io.synthetic import synthetic_grid

        da = synthetic_grid(64, 64, seed=4)
        grid = self._write("float.nc", da.copy(data=da.values + np.float32(0.37)))
        path = self.root / "float_bound.tae"
        self._cli("encode", str(grid), "--max-error", "1.5", "--out", str(path))
        return path

    def _store_damaged(self):
        path = self.root / "store.zarr"
        self._cli("encode", self["g64"], "--out", str(path))
        chunks = [p for p in (path / "streams" / "tile_0_0").rglob("*")
                  if p.is_file() and p.name not in _METADATA]
        assert chunks
        for p in chunks:
            p.unlink()
        return path

    def _patch_damaged(self):
        from topoae.io.synthetic import write_synthetic_gebco

        grid = write_synthetic_gebco(self.root / "g96.nc", 96, 96, seed=3)
        path = self.root / "patch.zarr"
        self._cli("encode", str(grid), "--model", "vae-default", "--out", str(path))
        chunks = [p for p in (path / "mu").rglob("*") if p.is_file() and p.name not in _METADATA]
        assert chunks
        chunks[0].unlink()
        return path

    def _tiny_ckpt(self):
        import torch

        from topoae.checkpoint import save_checkpoint
        from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
        from topoae.training.rd import RDTrainConfig

        tiny = HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16)
        torch.manual_seed(0)
        path = self.root / "tiny.pt"
        save_checkpoint(path, HyperpriorModel(tiny).eval(), RDTrainConfig(model=tiny),
                        normalise={"mode": "offset-field"})
        return path

    def _random_pt(self):
        (path := self.root / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
        return path

    def _truncated_pt(self):
        data = Path(self["tiny_ckpt"]).read_bytes()
        (path := self.root / "truncated.pt").write_bytes(data[: len(data) // 2])
        return path

    def _pickled(self, name: str, protocol: int) -> Path:
        import argparse
        import pickle

        with (path := self.root / name).open("wb") as f:
            pickle.dump({"model": argparse.Namespace(x=1)}, f, protocol=protocol)
        return path

    def _object_pt(self):
        return self._pickled("object.pt", 2)  # torch.save's protocol

    def _object_p4_pt(self):
        return self._pickled("object_p4.pt", 4)  # pickle's own default

    def _displ(self, name: str, value: float, dlat: float, dlon: float) -> Path:
        from topoae.io.synthetic import synthetic_grid

        g = synthetic_grid(32, 32, seed=1)
        ds = xr.Dataset(
            {"uplift": (("lat", "lon"), np.full((32, 32), value, np.float32))},
            coords={"lat": g.lat.values + dlat, "lon": g.lon.values + dlon},
        )
        ds.to_netcdf(path := self.root / name)
        return path

    def _displ_far(self):
        return self._displ("displ_far.nc", 1.0, 50.0, 100.0)

    def _displ_500m(self):
        return self._displ("displ_500m.nc", 500.0, 0.0, 0.0)

    def _split_json(self):
        splits = {"train": ["other_a"], "val": ["other_b"], "test": ["other_c"]}
        (path := self.root / "split.json").write_text(json.dumps(splits))
        return path

    def _patches24(self):
        self._cli("tile", self["g64"], "--patch", "24", "--out", str(p := self.root / "p24.zarr"))
        return p


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> _Inputs:
    return _Inputs(tmp_path_factory.mktemp("bad_inputs"))


class _Lazy(dict):
    """``str.format_map`` mapping: ``{out}`` and the case's own names, else an input."""

    def __init__(self, names: dict[str, str], inputs: _Inputs):
        super().__init__(names)
        self.inputs = inputs

    def __missing__(self, key: str) -> str:
        return self.inputs[key]


#: what the console script shows by default (DeprecationWarning and the like are hidden)
_HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _seen(argv: list[str]):
    """Run ``argv``; return the result and every line the user sees, warnings included."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in _HIDDEN:
            warnings.simplefilter("ignore", category)
        r = _invoke(argv)
    shown = list(dict.fromkeys(f"Warning: {w.message}" for w in caught))
    return r, shown + [ln for ln in r.output.splitlines() if ln.strip()]


def _params() -> list:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)]
                     if c.xfail else [])
        for c in CASES
    ]


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, bad_inputs: _Inputs, tmp_path: Path):
    out = tmp_path / case.out
    if case.exists == "file":
        out.write_bytes(b"keep me")
    elif case.exists == "dir":
        out.mkdir()
        (out / "keep").write_bytes(b"keep me")
    argv = [a.format_map(_Lazy({"out": str(out)}, bad_inputs)) for a in case.argv]

    r, lines = _seen(argv)

    shown = "\n".join(lines)
    # exit 1 through the CLI's error path; an escaped exception also gives 1 under CliRunner
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (repr(r.exception), shown)
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, shown
    if case.usage:
        assert lines[0].startswith("Usage: ") and lines[1].startswith("Try ") and len(lines) == 3
    else:
        assert lines == errors, f"more than the one Error line:\n{shown}"
    line = errors[0]
    assert re.search(case.error, line), line
    assert not line.rstrip().endswith(":"), f"a message cut off after its first line: {line}"
    assert "Traceback" not in shown and "weights_only" not in shown, shown
    # nothing left behind: the output as it was, and no temporary of it
    if case.exists == "file":
        assert out.read_bytes() == b"keep me"
    elif case.exists == "dir":
        assert [p.name for p in out.iterdir()] == ["keep"]
    else:
        assert not out.exists(), f"{out} was left behind"
    assert not list(out.parent.glob(f".{out.name}.tmp-*")), "a temporary was left behind"


def test_every_case_id_is_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
