"""The engine interface and registry: what ``topoae simulate`` and the check run through.

No engine runs here: a stub engine registered for the test stands in for one (as ExaHyPE
would be added: one class, one registry entry, its own settings).
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.constants import DEFAULT_ENGINE, ENGINES
from topoae.errors import ConfigError, DependencyError
from topoae.simulation import engines
from topoae.simulation.base import Engine, EngineConfig, GaugeRun
from topoae.simulation.engines import REGISTRY, engine_class, get_engine, parse_engine


def test_registry_lists_the_engines_the_cli_offers():
    assert tuple(REGISTRY) == ENGINES == ("anuga", "geoclaw")
    assert DEFAULT_ENGINE in ENGINES
    option = next(p for p in cli.get_command(None, "simulate").params if p.name == "engine")
    assert tuple(option.type.choices) == ENGINES and option.default == DEFAULT_ENGINE


def test_cli_start_up_imports_no_engine():
    code = (
        "import sys, topoae.cli.simulate, topoae.simulation.engines; "
        "print(sorted(m for m in ('numpy', 'xarray', 'anuga', 'clawpack', "
        "'topoae.simulation.engine', 'topoae.simulation.geoclaw_engine') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ENGINES)
def test_each_engine_satisfies_the_interface(name):
    cls = engine_class(name)
    assert issubclass(cls, Engine) and not inspect.isabstract(cls)
    engine = get_engine(name)
    assert engine.name == name and isinstance(engine.label, str) and engine.label
    cfg_cls = engine.config_class
    assert dataclasses.is_dataclass(cfg_cls) and cfg_cls.__dataclass_params__.frozen
    cfg = engine.make_config(duration=10.0, every=5.0)
    assert isinstance(cfg, cfg_cls) and isinstance(cfg_cls(), cfg_cls)
    # one signature and one docstring, the interface's
    base = inspect.signature(Engine.run).parameters
    assert list(inspect.signature(cls.run).parameters) == list(base)
    assert inspect.getdoc(engine.run) == inspect.getdoc(Engine.run)
    assert inspect.getdoc(engine.prepare) == inspect.getdoc(Engine.prepare)
    # available here, or a one-line reason why not
    try:
        engine.prepare()
    except DependencyError as exc:
        assert len(str(exc).strip().splitlines()) == 1


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown engine 'fluent'; known: anuga, geoclaw$"):
        parse_engine("fluent")
    assert get_engine("ANUGA").name == "anuga"
    from topoae.simulation.check import CheckConfig

    with pytest.raises(ConfigError, match="known: anuga, geoclaw"):
        CheckConfig(engine_name="fluent")
    assert CheckConfig(engine_name="GeoClaw").engine_name == "geoclaw"


def test_simulate_cli_refuses_an_unknown_engine_in_one_line(tmp_path):
    args = ["simulate", "--bathymetry", "x.nc", "--out", str(tmp_path / "o"), "--engine", "fluent"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1  # a usage error, as everywhere in the CLI
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert "'fluent'" in line and all(f"'{n}'" in line for n in ENGINES)
    assert not (tmp_path / "o").exists()


def test_simulate_cli_prepares_the_chosen_engine_first(tmp_path, monkeypatch):
    """A missing engine is one ``Error:`` line, before any input is read."""
    cls = engine_class("geoclaw")

    def missing(self, progress=None):
        progress("preparing")
        raise DependencyError("GeoClaw needs clawpack: pip install clawpack")

    monkeypatch.setattr(cls, "prepare", missing)
    args = ["simulate", "--bathymetry", str(tmp_path / "absent.nc"), "--engine", "geoclaw"]
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "  preparing ..." in res.output
    assert res.output.strip().splitlines()[-1] == (
        "Error: GeoClaw needs clawpack: pip install clawpack"
    )


# --- a stub engine with its own settings, registered for the test ------------------------


@dataclasses.dataclass(frozen=True)
class StubConfig:
    end_time: float = 100.0
    probe_every: float = 10.0


class StubEngine(Engine):
    """η = 1 mm per 100 m of depth under the gauge, times sin(t / 100 s)."""

    name = "stub"
    label = "Stub"
    config_class = StubConfig

    def prepare(self, progress=None) -> None:
        return None

    def make_config(self, *, duration, every, **_ignored) -> StubConfig:
        return StubConfig(end_time=duration, probe_every=every)

    def _solve(self, x, y, z, eta0, pts, cfg) -> GaugeRun:
        depth = [-z[np.abs(y - gy).argmin(), np.abs(x - gx).argmin()] for gx, gy in pts]
        t = np.arange(0.0, cfg.end_time + 1e-9, cfg.probe_every)
        eta = np.sin(t / 100.0)[:, None] * (np.asarray(depth) * 1e-5)[None, :]
        return GaugeRun(time=t, eta=eta, wall_s=0.0, triangles=0)


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setitem(REGISTRY, "stub", f"{__name__}:StubEngine")
    return get_engine("stub")


def shelf() -> xr.DataArray:
    x = np.linspace(-100e3, 100e3, 41)
    y = np.linspace(-50e3, 50e3, 21)
    gx, _ = np.meshgrid(x, y)
    return xr.DataArray(
        np.where(gx > 0, -400.0, -4000.0),
        dims=("y", "x"),
        coords={"x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"})},
        attrs={"source": "synthetic shelf"},
    )


def test_the_check_runs_a_registered_engine_with_its_own_settings(stub):
    from topoae.simulation.check import CheckConfig, shallow_water_check

    assert engines.parse_engine("stub") == "stub"
    cfg = CheckConfig(
        engine=stub.make_config(duration=200.0, every=10.0),
        engine_name="stub",
        gauges=((60e3, 0.0), (-60e3, 0.0)),
        origin=(0.0, 0.0),
    )
    res = shallow_water_check(shelf(), compared={"same": shelf()}, config=cfg)
    assert res.record["engine"] == "stub"
    assert res.record["config"]["engine"] == {"end_time": 200.0, "probe_every": 10.0}
    assert res.time.shape == (21,)
    np.testing.assert_array_equal(res.series["same"], res.series["original"])
    (flat,) = [n for n in res.series if n.startswith("flat")]
    peak = np.abs(res.series["original"]).max(axis=0)
    np.testing.assert_allclose(peak, [400e-5, 4000e-5], rtol=1e-3)  # 400 m and 4000 m deep
    assert not np.allclose(res.series[flat], res.series["original"])
    with pytest.raises(ConfigError, match="takes StubConfig settings, not EngineConfig"):
        CheckConfig(engine=EngineConfig(), engine_name="stub")
