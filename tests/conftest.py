"""Shared fixtures: tiny real-format grids made in code, and the optional real data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def gebco_nc(tmp_path_factory) -> Path:
    """A 300×420 synthetic GEBCO-format NetCDF (int16 ``elevation(lat, lon)``)."""
    from topoae.io.synthetic import write_synthetic_gebco

    path = tmp_path_factory.mktemp("grids") / "gebco_synthetic.nc"
    return write_synthetic_gebco(path, 300, 420, seed=7)


@pytest.fixture(scope="session")
def feet_nc(tmp_path_factory) -> Path:
    """A 48×64 GEBCO-like NetCDF in feet that does not say so (``elevation`` without units):
    ``--units ft`` is what makes it metres (``open_grid(path, units="ft")``)."""
    from topoae.io.synthetic import synthetic_grid

    path = tmp_path_factory.mktemp("grids") / "feet.nc"
    da = synthetic_grid(48, 64, seed=5, lon0=150.0, lat0=30.0)
    da = da.copy(data=(da.values / 0.3048).astype("float32"))
    da.attrs = {}
    da.to_dataset(name="elevation").to_netcdf(path)
    return path


@pytest.fixture
def shared_data() -> Path:
    """The real grids of ``../shared/data``; skips the test where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
