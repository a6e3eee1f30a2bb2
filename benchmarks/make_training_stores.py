"""Build the real-data patch stores used to train and evaluate topoae's models.

Reads every real grid in ``../shared/data`` (see its README), keeps the
Japan hold-out box 135–150E, 30–45N out of every patch (it contains the Tohoku
box 139–147E, 34–42N, the project's evaluation region, the Suruga Bay 15″
GEBCO tile used to evaluate the codec, and the demo's bundled region), and
writes two stores with spatial-block splits: one with the thesis'
global GEBCO_2019 normalisation and one with per-patch normalisation.

    python benchmarks/make_training_stores.py --out /work/stores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from topoae.data.tiling import TileConfig, tile
from topoae.io import open_grid
from topoae.regions import TRAINING_EXCLUSION_BOX

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# (relative path, open_grid keyword arguments)
GRIDS = [
    ("etopo_global/etopo5_global_5min_ferret.cdf", {}),
    ("etopo_global/etopo1_bed_global_0.1deg_pybacktrack.grd", {}),
    ("etopo_global/etopo1_global_10min_gmtcache.nc", {}),
    ("gebco_15s/gebco2014_30s_hebrides_9.5W-5.5W_56.4-56.9N.nc", {}),
    ("gmt_regional/USEast_Coast.nc", {}),
    ("gmt_regional/depth_pixel.nc", {}),
    ("gmt_regional/App_O_topo5.nc", {}),
    ("gmt_regional/FR+IT.nc", {}),
    ("gmt_regional/bathy_1m.nc", {}),
    ("gmt_regional/spac_33.nc", {}),
    ("gmt_regional/india_topo.nc", {}),
    ("gmt_regional/GMT_App_O.nc", {}),
    ("gmt_regional/Iceland.nc", {}),
    ("gmt_regional/AFR.nc", {}),
    ("gmt_regional/txtclip.nc", {}),
    ("gmt_regional/BEDMAP_elevation.nc", {}),
    ("land_dem/trinidad_colorado_3s_feet_ncarg.nc", {"units": "ft"}),
    ("land_dem/us_30s_tut_relief_gmtcache.nc", {}),
    ("land_dem/topo_32_30s_gmtcache.nc", {}),
    ("misc/isobath_sample_westindia_2min.nc", {}),
    ("misc/etopo_10min_chile_120W-60W_60S-0S.asc", {}),
    ("misc/tsunamibayes_banda_etopo_1min.tt3", {}),
    ("misc/etopo1_bohai_117-123E_37-41N.nc", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/stores")
    ap.add_argument("--stride", type=int, default=96)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grids = []
    for rel, kw in GRIDS:
        path = DATA / rel
        if not path.exists():
            print(f"skip (absent): {rel}")
            continue
        g = open_grid(path, **kw)
        if min(g.shape) >= 96:
            grids.append(g)
    for mode in ("global", "patch"):
        cfg = TileConfig(stride=args.stride, normalise=mode, exclude=(TRAINING_EXCLUSION_BOX,), seed=0)
        t = time.perf_counter()
        s = tile(grids, out / f"real_{mode}.zarr", cfg, overwrite=args.overwrite)
        print(f"{mode}: {s.line()} ({time.perf_counter() - t:.1f} s)")
    (out / "READY").write_text("real_global.zarr real_patch.zarr\n")


if __name__ == "__main__":
    main()
