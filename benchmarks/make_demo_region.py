"""Write the demo's bundled region: ETOPO5 5' crop 135–150E, 30–45N (Japan trench), as GEBCO-style int16 NetCDF.

    python benchmarks/make_demo_region.py  # writes topoae/assets/japan_trench_etopo5.nc
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from topoae.io import open_grid
from topoae.regions import TRAINING_EXCLUSION_BOX

REPO = Path(__file__).resolve().parents[1]
SRC = REPO.parent / "shared" / "data" / "etopo_global" / "etopo5_global_5min_ferret.cdf"
OUT = REPO / "topoae" / "assets" / "japan_trench_etopo5.nc"


def main() -> None:
    da = open_grid(SRC, bbox=TRAINING_EXCLUSION_BOX).load()
    values = da.values
    assert np.isfinite(values).all() and np.array_equal(values, np.round(values))
    ds = da.astype(np.int16).rename("elevation").to_dataset()
    ds = ds.drop_vars("spatial_ref", errors="ignore")
    ds["elevation"].attrs = {"standard_name": "height_above_mean_sea_level", "long_name": "Elevation relative to sea level", "units": "m"}
    ds["lat"].attrs = {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"}
    ds["lon"].attrs = {"standard_name": "longitude", "units": "degrees_east", "axis": "X"}
    ds.attrs = {"Conventions": "CF-1.6", "title": "ETOPO5 5-minute relief, Japan trench crop 135-150E 30-45N",
                "source": "NOAA ETOPO5 (public domain), from Debian package ferret-datasets (etopo5.cdf, variable ROSE); "
                          "cropped by topoae benchmarks/make_demo_region.py, values unchanged",
                "history": "open_grid(etopo5_global_5min_ferret.cdf, bbox=(135,30,150,45)); stored as int16 metres"}
    enc = {"elevation": {"zlib": True, "complevel": 9, "dtype": "int16"}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(OUT, encoding=enc)
    print(OUT, ds["elevation"].shape, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
