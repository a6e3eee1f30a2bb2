"""How many bytes does a tsunami run really need? Gauge fidelity against file size.

    python benchmarks/simulation_fidelity.py [--model PATH] [--cells 64] [--ensemble 16]

Regions (native 15″, no block averaging): the Suruga Bay tile (held out of all
training) and two held-out coastal test tiles of ``benchmarks/rd_split.json``. In each,
a ``--cells``-square window is chosen automatically (the deepest window with 10–45 %
land that holds water of every gauge depth) and compressed as the region itself, so
every byte of each file counts (topoae's ``.tae`` with coordinates and CRS but
without the file's attributes, ``--no-attrs``: SPERR's and SZ3's frames carry neither). A 1 m Gaussian hump sits offshore (deepest cell away
from the edges); gauges are the cells nearest the source at 5, 20, 50, 200 and 1000 m
of water (±25 %, the 3×3 neighbourhood wet). ANUGA runs each reconstruction on the window's own local grid.

Codecs and modes, each swept over a fixed set of settings (file sizes ~5–400×):
``topoae`` (plain, ``--ratio``), ``topoae coast`` (``--coastline exact``), ``topoae
bounded`` (``--max-error E`` at the same bounds as SPERR and SZ3, at the level the
encoder picks: its smallest file), ``topoae relative`` (``--max-error 50 --relative-error r``),
``sperr`` / ``sz3`` at absolute bounds, and SPERR as the base under the same corrections (``sperr coast``, ``sperr
relative``: SPERR's bytes + the correction stream + a 4-byte length), so the learned
base's share is visible.

A run passes when every gauge keeps its peak within 2 % of the original's and its
arrival (first |η| above 5 % of the original's peak) within 5 s; a dry gauge fails.
Per codec the settings are run from the smallest file up and stop at the first pass
(the answer: the smallest passing file of the sweep). Optionally (``--ensemble N``, on
Suruga) N members of ``topoae sample`` at the plain default level run too, and the
check reports whether the 5–95 % band of gauge series holds the original's.

Writes ``simulation_fidelity.json``, ``.md`` and ``.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TILES = REPO.parent / "shared" / "data" / "gebco_15s" / "tiles"
COASTAL = ("Tile_-2.08_41.29", "Tile_17.0_82.62")  # held-out coastal test tiles (rd_split.json)
GAUGE_DEPTHS = (5.0, 20.0, 50.0, 200.0, 1000.0)
RATIOS = (5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 400.0)
BOUNDS = (50.0, 25.0, 10.0, 5.0, 2.0, 1.0, 0.5)
#: relative bounds, loosest first (r < 1: signs kept): 0.7, 0.5 and 0.35 were added in session 17,
#: when r = 0.2 passed on every window (the sweep did not reach the smallest passing file)
RELATIVE = (0.7, 0.5, 0.35, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
REL_MAX = 50.0
AMP_TOL, ARRIVAL_TOL = 0.02, 5.0


def regions() -> dict[str, Path]:
    from topoae.regions import DEMO_REGION

    out = {"suruga": Path(DEMO_REGION)}
    for n in COASTAL:
        out[n] = TILES / f"{n}.nc"
    return out


def at_depth(z: np.ndarray, d: float) -> np.ndarray:
    """Cells within ±25 % of ``d`` m of water whose 3×3 neighbourhood is wet (> d/2 deep)."""
    from scipy.ndimage import maximum_filter

    shallowest = maximum_filter(z, size=3, mode="nearest")
    return (z < -0.75 * d) & (z > -1.25 * d) & (shallowest < -0.5 * d)


def pick_window(z: np.ndarray, w: int) -> tuple[int, int]:
    """Row/col of the deepest ``w``-square window with 10–45 % land holding every gauge depth."""
    best, where = -1.0, None
    for r in range(0, z.shape[0] - w + 1, w // 4):
        for c in range(0, z.shape[1] - w + 1, w // 4):
            win = z[r:r + w, c:c + w]
            land = float(np.mean(win >= 0))
            has = all(at_depth(win, d)[3:-3, 3:-3].any() for d in GAUGE_DEPTHS)
            if 0.10 <= land <= 0.45 and has and -float(win.min()) > best:
                best, where = -float(win.min()), (r, c)
    if where is None:
        raise SystemExit("no window holds land and every gauge depth")
    return where


def setup(grid, local, cells: int):
    """Source at the deepest interior cell; gauges nearest to it at each depth; duration.

    Picked on the native (geographic) cells, then placed on the simulation's local grid."""
    from topoae.simulation.projection import local_points
    from topoae.simulation.sources import GaussianSource, source_on_grid

    z = grid.values.astype(np.float64)
    lat, lon = grid[grid.dims[0]].values, grid[grid.dims[1]].values
    km_y = (lat - lat.mean()) * 110.57e3
    km_x = (lon - lon.mean()) * 111.32e3 * math.cos(math.radians(float(lat.mean())))
    gx, gy = np.meshgrid(km_x, km_y)
    m = max(3, cells // 8)
    inner = np.full(z.shape, np.inf)
    inner[m:-m, m:-m] = z[m:-m, m:-m]
    si = np.unravel_index(np.argmin(inner), z.shape)
    dist = np.hypot(gx - gx[si], gy - gy[si])
    edge = np.zeros(z.shape, bool)
    edge[3:-3, 3:-3] = True
    picks, travel, depths = [], [], []
    for d in GAUGE_DEPTHS:
        ok = edge & at_depth(z, d)
        if not ok.any():
            raise SystemExit(f"no cell at {d:g} m of water")
        k = np.unravel_index(np.argmin(np.where(ok, dist, np.inf)), z.shape)
        picks.append((float(lon[k[1]]), float(lat[k[0]])))
        depths.append(float(-z[k]))
        # travel time along the straight line from the source, c = sqrt(g h)
        n = 200
        rr = np.rint(np.linspace(si[0], k[0], n)).astype(int)
        cc = np.rint(np.linspace(si[1], k[1], n)).astype(int)
        h = np.maximum(-z[rr, cc], 2.0)
        travel.append(float(np.sum(dist[k] / n / np.sqrt(9.81 * h))))
    src = (float(lon[si[1]]), float(lat[si[0]]))
    sx, sy = local_points([src], local)[0]
    gauges = local_points(picks, local)
    spacing = float(local.attrs["spacing_m"])
    radius = max(4000.0, 3 * spacing)
    eta0 = source_on_grid(GaussianSource(amplitude=1.0, radius=radius, x=sx, y=sy), local)
    duration = float(min(1500.0, 5 * math.ceil((1.3 * max(travel) + 240.0) / 5)))
    return eta0, gauges, duration, {"source_lonlat": src, "radius_m": radius, "gauges_lonlat": picks,
                                   "gauge_depths_m": depths}


def score(t, ref, other) -> tuple[bool, float, list[dict]]:
    """Pass/fail, the worst gauge's error in units of the tolerance (≤ 1 passes), per gauge rows."""
    from topoae.simulation.gauges import compare_series

    worst, rows = 0.0, []
    for g in range(ref.shape[1]):
        m = compare_series(t, ref[:, g], other[:, g], rel_threshold=0.05)
        a = abs(m.max_amplitude_error) / (AMP_TOL * abs(m.max_amplitude_ref))
        b = abs(m.arrival_time_error) / ARRIVAL_TOL
        e = max(a, b) if math.isfinite(a) and math.isfinite(b) else math.inf
        rows.append({"gauge": g, "amp_err_m": m.max_amplitude_error, "amp_ref_m": m.max_amplitude_ref,
                     "arrival_err_s": m.arrival_time_error, "score": e})
        worst = max(worst, e)
    return worst <= 1.0, worst, rows


CODECS = ("topoae", "topoae coast", "topoae bounded", "topoae relative", "sperr", "sz3", "sperr coast",
          "sperr relative")


def candidates(grid, z: np.ndarray, rd, integer: bool, only: tuple[str, ...] = CODECS, refine: int = 0):
    """``(codec, setting, bytes, reconstruction)`` for every codec, mode and setting in ``only``."""
    from topoae.baselines import get_baseline
    from topoae.codec import corrections, learned

    def tae(h, s):
        n = len(learned.to_bytes(h, s))
        return n, learned.decode(h, s, rd).values.astype(np.float64)

    seen = set()
    for mode in [m for m in ("topoae", "topoae coast") if m in only]:
        for r in RATIOS:
            h, s, _ = learned.encode_to_ratio(grid, rd, r, coastline="exact" if "coast" in mode else None,
                                             keep_attrs=False, refine=refine)
            key = (mode, h["codec"]["level"])
            if key in seen:  # the same level as a lower target: the same file
                continue
            seen.add(key)
            n, rec = tae(h, s)
            yield mode, f"level {h['codec']['level']}", n, rec
    for e in BOUNDS if "topoae bounded" in only else ():  # the encoder picks the smallest file
        h, s = learned.encode(grid, rd, max_error=e, keep_attrs=False, refine=refine)
        n, rec = tae(h, s)
        yield "topoae bounded", f"E={e:g} m", n, rec
    for r in RELATIVE if "topoae relative" in only else ():
        h, s = learned.encode(grid, rd, max_error=REL_MAX, relative_error=r, floor=0.5,
                              keep_attrs=False, refine=refine)
        n, rec = tae(h, s)
        yield "topoae relative", f"r={r:g}", n, rec
    sperr, sz3 = get_baseline("sperr"), get_baseline("sz3")
    for name, codec in (("sperr", sperr), ("sz3", sz3)):
        for e in BOUNDS if name in only else ():
            enc = codec.at_error(z, e)
            yield name, f"E={e:g} m", enc.nbytes, codec.decode(enc.blob).astype(np.float64)
    for r in RATIOS if "sperr coast" in only else ():
        enc = sperr.at_ratio(z, r)
        base = sperr.decode(enc.blob).astype(np.float64)
        blob = corrections.encode_coast(z, base, integer) or b""
        rec = corrections.apply_coast(blob, base, integer) if blob else base
        yield "sperr coast", f"{r:g}x base", enc.nbytes + 4 + len(blob), rec
    if "sperr relative" not in only:
        return
    enc = sperr.at_error(z, REL_MAX)
    base = sperr.decode(enc.blob).astype(np.float64)
    if integer:
        base = np.rint(base)  # whole metres, still within E for integer input
    for r in RELATIVE:
        rule = corrections.RelativeRule(REL_MAX, r, 0.5)
        blob = corrections.encode_relative(z, base, rule, integer) or b""
        rec = corrections.apply_relative(blob, base, rule, integer) if blob else base
        yield "sperr relative", f"r={r:g}", enc.nbytes + 4 + len(blob), rec


def run_region(name: str, path: Path, rd, args) -> dict:
    from topoae.io import open_grid
    from topoae.simulation.engines import get_engine
    from topoae.simulation.projection import regrid_like, to_local_grid

    full = open_grid(path).load()
    r0, c0 = pick_window(full.values, args.cells)
    grid = full.isel({full.dims[0]: slice(r0, r0 + args.cells), full.dims[1]: slice(c0, c0 + args.cells)})
    z = grid.values.astype(np.float64)
    integer = bool(np.all(z[np.isfinite(z)] == np.rint(z[np.isfinite(z)])))
    local = to_local_grid(grid, max_cells=None)
    eta0, gauges, duration, info = setup(grid, local, args.cells)
    engine = get_engine("anuga")
    cfg = engine.make_config(duration=duration, every=args.every, threads=1)
    raw = 4 * z.size

    def simulate(values: np.ndarray):
        da = grid.copy(data=values.astype(np.float32))
        t0 = time.perf_counter()
        run = engine.run(regrid_like(da, local), eta0, gauges, cfg)
        return run, time.perf_counter() - t0

    ref, wall = simulate(z)
    print(f"{name}: window {args.cells}² at row {r0} col {c0}, local grid {local.shape}, "
          f"{duration:.0f} s simulated, original run {wall:.0f} s", flush=True)
    by_codec: dict[str, list] = {}
    for codec, setting, nbytes, rec in candidates(grid, z, rd, integer, args.codecs, args.refine):
        err = rec - z
        ok = np.isfinite(z)
        by_codec.setdefault(codec, []).append({
            "setting": setting, "bytes": int(nbytes), "ratio": raw / nbytes,
            "rmse_m": float(np.sqrt(np.mean(err[ok] ** 2))), "max_err_m": float(np.max(np.abs(err[ok]))),
            "sign_flips": int(np.sum(np.sign(rec[ok]) != np.sign(z[ok]))), "_rec": rec})
    out: dict = {"window": {"row": r0, "col": c0, "cells": args.cells}, "local_shape": list(local.shape),
                 "spacing_m": float(local.attrs["spacing_m"]), "duration_s": duration, **info,
                 "original_run_s": wall, "codecs": {}}
    for codec, rows in by_codec.items():
        rows.sort(key=lambda r: r["bytes"])
        best = None
        for row in rows:
            run, wall = simulate(row.pop("_rec"))
            ok, worst, gauges_rows = score(ref.time, ref.eta, run.eta)
            row.update(passes=ok, worst=worst, gauges=gauges_rows, run_s=wall)
            print(f"  {codec:15s} {row['setting']:14s} {row['bytes']:7d} B {row['ratio']:6.1f}x "
                  f"RMSE {row['rmse_m']:7.2f} m  worst {worst:6.2f} {'PASS' if ok else 'fail'} "
                  f"({wall:.0f} s)", flush=True)
            if ok:
                best = row
                break
        for row in rows:
            row.pop("_rec", None)
        out["codecs"][codec] = {"sweep": rows, "smallest_passing": best}
    if args.ensemble and name == "suruga":
        from topoae.codec import ensemble, learned

        h, s = learned.encode(grid, rd)
        ds = ensemble.sample(h, s, rd, n=args.ensemble, seed=0)
        var = [v for v in ds.data_vars if "member" in ds[v].dims][0]
        series = []
        for k in range(args.ensemble):
            run, _ = simulate(ds[var].isel(member=k).values.astype(np.float64))
            series.append(run.eta)
        series = np.stack(series)
        lo, hi = np.nanquantile(series, 0.05, axis=0), np.nanquantile(series, 0.95, axis=0)
        inside = (ref.eta >= lo - 1e-6) & (ref.eta <= hi + 1e-6)
        out["ensemble"] = {"members": args.ensemble, "level": h["codec"]["level"],
                           "inside_fraction": float(np.mean(inside)),
                           "inside_fraction_per_gauge": [float(v) for v in inside.mean(axis=0)],
                           "all_inside": bool(inside.all())}
        print(f"  ensemble: {100 * np.mean(inside):.1f} % of gauge samples inside the 5-95 % band",
              flush=True)
    return out


def write(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "simulation_fidelity.json").write_text(json.dumps(results, indent=1, default=float))
    regs = results["regions"]
    fig, axes = plt.subplots(1, len(regs), figsize=(5 * len(regs), 4), squeeze=False)
    for ax, (name, reg) in zip(axes[0], regs.items(), strict=True):
        for codec, c in reg["codecs"].items():
            xs = [r["bytes"] for r in c["sweep"] if "worst" in r]
            ys = [min(r["worst"], 1e3) for r in c["sweep"] if "worst" in r]
            ax.plot(xs, ys, "o-", label=codec)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="bytes on disk", ylabel="worst gauge error / tolerance",
               title=name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "simulation_fidelity.png", dpi=110)
    lines = [
        "## Simulation fidelity: the smallest file whose tsunami run keeps every gauge (issue 14)",
        "",
        f"Date {results['date']}. Machine: {results['machine']}. Model `{results['model']}`. "
        f"`python benchmarks/simulation_fidelity.py --cells {results['cells']}`.",
        "",
        "Native 15″ windows, ANUGA (DE0, reflective walls), 1 m Gaussian hump offshore, gauges at "
        "5/20/50/200/1000 m of water. Pass: every gauge's peak within 2 % and arrival within 5 s "
        "of the original's run; a dry gauge fails. Sweeps run from the smallest file up and stop "
        "at the first pass (— : nothing in the sweep passed). Bytes are whole files.",
        "",
    ]
    codecs = list(next(iter(regs.values()))["codecs"])
    lines.append("| codec / mode | " + " | ".join(regs) + " |")
    lines.append("|---|" + "---|" * len(regs))
    for codec in codecs:
        cells = []
        for reg in regs.values():
            b = reg["codecs"][codec]["smallest_passing"]
            cells.append("—" if b is None else f"{b['bytes']:,} B ({b['ratio']:.0f}×, {b['setting']})")
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, reg in regs.items():
        lines.append(f"**{name}**: window {reg['window']['cells']}² cells at row {reg['window']['row']}, "
                     f"col {reg['window']['col']}; {reg['spacing_m']:.0f} m spacing; "
                     f"{reg['duration_s']:.0f} s simulated; gauge depths "
                     + ", ".join(f"{d:.0f}" for d in reg["gauge_depths_m"]) + " m.")
        if "ensemble" in reg:
            e = reg["ensemble"]
            lines.append(f"Ensemble ({e['members']} members, level {e['level']}): "
                         f"{100 * e['inside_fraction']:.1f} % of gauge samples inside the 5–95 % band "
                         f"(per gauge " + ", ".join(f"{100 * v:.0f} %" for v in e["inside_fraction_per_gauge"])
                         + ").")
        lines.append("")
    lines.append("Plot: `benchmarks/results/simulation_fidelity.png` (bytes vs worst gauge error).")
    (out / "simulation_fidelity.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="learned model (default: the shipped one)")
    ap.add_argument("--cells", type=int, default=64, help="window edge in 15″ cells")
    ap.add_argument("--every", type=float, default=1.0, help="gauge sampling (s)")
    ap.add_argument("--ensemble", type=int, default=16, help="members on Suruga (0: skip)")
    ap.add_argument("--only", default=None, help="comma-separated region names")
    ap.add_argument("--reuse", action="store_true", help="keep regions already in --out's JSON")
    ap.add_argument("--codecs", default=",".join(CODECS), help="comma-separated subset of " + ", ".join(CODECS))
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="topoae modes encode with --refine STEPS (use another --out)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    args.codecs = tuple(c.strip() for c in args.codecs.split(","))
    if bad := [c for c in args.codecs if c not in CODECS]:
        raise SystemExit(f"unknown codec(s) {bad}; known: {', '.join(CODECS)}")
    import torch

    torch.set_num_threads(1)
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.zoo import resolve_model

    path = resolve_model(args.model)
    lm = load_checkpoint(path)
    rd = learned.as_rd_model(lm)
    regs = regions()
    if args.only:
        regs = {k: v for k, v in regs.items() if k in args.only.split(",")}
    results = {"date": dt.date.today().isoformat(),
               "machine": f"{platform.machine()} {platform.processor() or ''} 2-core CPU, shared".strip(),
               "model": lm.model_id[:16], "cells": args.cells, "refine": args.refine, "regions": {}}
    done = {}
    prev = args.out / "simulation_fidelity.json"
    if args.reuse and prev.exists():  # regions already measured with this model and window
        old = json.loads(prev.read_text())
        if old.get("model") == results["model"] and old.get("cells") == args.cells:
            done = old["regions"]
    for name, p in regs.items():
        results["regions"][name] = done[name] if name in done else run_region(name, p, rd, args)
        write(results, args.out)


if __name__ == "__main__":
    main()
