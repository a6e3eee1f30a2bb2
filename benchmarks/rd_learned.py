"""Rate–distortion of the learned codec against SPERR, JPEG2000, JPEG XL and SZ3 at equal bytes.

    python benchmarks/rd_learned.py --model runs/rd/best.pt [--out benchmarks/results] [--quick]

Regions: the held-out 15″ GEBCO test tiles of ``benchmarks/rd_split.json`` (whole
tiles, never seen in training) and the Suruga Bay 15″ tile (held out of all training).
Each region is read with :func:`topoae.io.open_grid` from its NetCDF file and coded
whole; topoae's size is the size of the ``.tae`` file (header, coordinates,
attributes and all), the baselines' the size of their self-contained frames.

Per region and quality level: bytes, ratio, RMSE, max error, PSNR. At 50×, 100×,
200×, 400×: topoae's RMSE interpolated in log–log between its levels (not
extrapolated) against each baseline run at that ratio; BD-rate against SPERR (log
bytes against log RMSE over the common RMSE range inside 50–400×; negative: topoae
needs fewer bytes). Error-bounded: bytes for every cell within 5, 10, 25 m (topoae:
at the level ``topoae encode --max-error`` picks, its smallest file). Throughput:
single-threaded Mcells/s on one tile, topoae and SPERR in the same run. Writes ``rd_learned.json``, ``rd_learned.md``
and ``rd_learned.png`` under --out.
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
DATA = REPO.parent / "shared" / "data" / "gebco_15s"
SURUGA = DATA / "gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc"
TARGETS = (50.0, 100.0, 200.0, 400.0)
BASELINES = ("sperr", "jpeg2000", "jpegxl", "sz3")
BOUNDS = (5.0, 10.0, 25.0)


def regions(quick: bool) -> dict[str, Path]:
    split = json.loads((REPO / "benchmarks" / "rd_split.json").read_text())
    out = {n: DATA / "tiles" / f"{n}.nc" for n in split["test"]}
    if quick:
        out = dict(list(out.items())[:4])
    out["suruga"] = SURUGA
    return out


def interp_rmse(ratios: list[float], rmses: list[float], target: float) -> float:
    """topoae's RMSE at ``target`` (log–log between levels; NaN outside its range)."""
    lr, le = np.log(ratios), np.log(rmses)
    order = np.argsort(lr)
    lr, le = lr[order], le[order]
    t = math.log(target)
    if t < lr[0] - 1e-9 or t > lr[-1] + 1e-9:
        return float("nan")
    return float(np.exp(np.interp(t, lr, le)))


def bd_rate(a_ratio, a_rmse, b_ratio, b_rmse, lo=50.0, hi=400.0) -> float:
    """Mean relative byte difference of A against B at equal RMSE (log–log, piecewise linear)."""
    def curve(r, e):
        r, e = np.asarray(r, float), np.asarray(e, float)
        keep = (r >= lo * 0.999) & (r <= hi * 1.001)
        r, e = r[keep], e[keep]
        o = np.argsort(e)
        return np.log(e[o]), -np.log(r[o])  # log bytes ∝ −log ratio

    ea, ba = curve(a_ratio, a_rmse)
    eb, bb = curve(b_ratio, b_rmse)
    if ea.size < 2 or eb.size < 2:
        return float("nan")
    lo_e, hi_e = max(ea[0], eb[0]), min(ea[-1], eb[-1])
    if hi_e <= lo_e:
        return float("nan")
    grid = np.linspace(lo_e, hi_e, 200)
    diff = np.interp(grid, ea, ba) - np.interp(grid, eb, bb)
    return float(math.exp(diff.mean()) - 1.0)


def run(model_path: Path, out: Path, quick: bool, refine: int = 0, threads: int = 1,
        only: tuple[str, ...] = (), max_level: int | None = None,
        baselines: tuple[str, ...] = BASELINES, speed: bool = True) -> dict:
    import torch

    from topoae import metrics
    from topoae.baselines import get_baseline
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid

    torch.set_num_threads(threads)
    rd = learned.as_rd_model(load_checkpoint(model_path))
    res: dict = {"model": str(model_path), "model_id": rd.model_id, "date": dt.date.today().isoformat(),
                 "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {threads} "
                            f"thread{'s' if threads > 1 else ''}",
                 "refine": refine, "max_level": max_level, "baselines": list(baselines), "regions": {}}
    stem = "rd_learned_refine" if refine else "rd_learned"
    for name, path in regions(quick).items():
        if only and name not in only:
            continue
        if not path.exists():
            print(f"skip {name}: {path} missing")
            continue
        grid = open_grid(path).load()
        x = np.asarray(grid.values, np.float64)
        rng_ = float(np.nanmax(x) - np.nanmin(x))
        raw = x.size * 4
        levels = []
        for lev in range(rd.levels if max_level is None else max_level + 1):
            t0 = time.perf_counter()
            h, s = learned.encode(grid, rd, level=lev, refine=refine)
            blob = learned.to_bytes(h, s)
            te = time.perf_counter() - t0
            t0 = time.perf_counter()
            y = learned.decode(h, s, rd).values.astype(np.float64)
            td = time.perf_counter() - t0
            row = {"level": lev, "bytes": len(blob), "ratio": raw / len(blob),
                   "rmse": metrics.rmse(x, y), "max": metrics.max_abs_error(x, y),
                   "psnr": metrics.psnr(x, y, data_range=rng_),
                   "enc_mcells_s": x.size / te / 1e6, "dec_mcells_s": x.size / td / 1e6}
            if not refine:  # the same level without the grid's attributes (`--no-attrs`)
                h2, s2 = learned.encode(grid, rd, level=lev, keep_attrs=False)
                y2 = learned.decode(h2, s2, rd).values.astype(np.float64)
                row |= {"bytes_no_attrs": len(learned.to_bytes(h2, s2)), "rmse_no_attrs": metrics.rmse(x, y2)}
            levels.append(row)
        r = {"shape": list(x.shape), "kind": _kind(name), "levels": levels, "at": {}, "same_bytes": {}}
        # baselines at the byte count of each topoae file (the fair pairing), and at the targets
        for b in baselines:
            codec = get_baseline(b)
            pts = []
            for lv in levels:
                enc = codec.at_ratio(x.astype(np.float32), lv["ratio"])
                yb = codec.decode(enc.blob).astype(np.float64)
                pts.append({"ratio": enc.ratio, "rmse": metrics.rmse(x, yb), "reached": enc.reached})
            r["same_bytes"][b] = pts
        for t in TARGETS:
            row = {"topoae": interp_rmse([lv["ratio"] for lv in levels], [lv["rmse"] for lv in levels], t)}
            for b in BASELINES:
                if b not in baselines:
                    row[b] = float("nan")
                    continue
                codec = get_baseline(b)
                enc = codec.at_ratio(x.astype(np.float32), t)
                yb = codec.decode(enc.blob).astype(np.float64)
                row[b] = metrics.rmse(x, yb) if enc.reached else float("nan")
            r["at"][str(int(t))] = row
        sp = r["same_bytes"]["sperr"]
        r["bd_rate_vs_sperr"] = bd_rate([lv["ratio"] for lv in levels], [lv["rmse"] for lv in levels],
                                        [p["ratio"] for p in sp], [p["rmse"] for p in sp])
        if not refine:  # the files without the grid's attributes, against the same SPERR runs
            na_ratio = [raw / lv["bytes_no_attrs"] for lv in levels]
            na_rmse = [lv["rmse_no_attrs"] for lv in levels]
            r["no_attrs"] = {"at": {str(int(t)): interp_rmse(na_ratio, na_rmse, t) / r["at"][str(int(t))]["sperr"]
                                    for t in TARGETS},
                             "bd_rate_vs_sperr": bd_rate(na_ratio, na_rmse, [p["ratio"] for p in sp],
                                                         [p["rmse"] for p in sp])}
        # error-bounded (not with refinement: benchmarks/refine_bounded.py measures those)
        r["bounded"] = {}
        for e in BOUNDS if not refine else ():
            # the level is the encoder's own choice: the smallest whole file (learned.encode)
            best = len(learned.to_bytes(*learned.encode(grid, rd, max_error=e)))
            row = {"topoae": best}
            for b in ("sperr", "sz3"):
                row[b] = get_baseline(b).at_error(x.astype(np.float32), e).nbytes
            r["bounded"][str(int(e))] = row
        res["regions"][name] = r
        at = r["at"]
        print(f"{name:22s} " + " ".join(
            f"{t}x {at[t]['topoae']:.1f}/{at[t]['sperr']:.1f}" for t in at) +
            f" BD {r['bd_rate_vs_sperr']:+.2f}", flush=True)
        out.mkdir(parents=True, exist_ok=True)  # after each region: a stopped run keeps its regions
        (out / f"{stem}.partial.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    torch.set_num_threads(1)
    res["throughput"] = throughput(rd, refine) if speed else None
    (out / f"{stem}.partial.json").unlink(missing_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / f"{stem}.md").write_text(markdown(res, _plain(out, res) if refine else None))
    plot(res, out / f"{stem}.png")
    return res


def _kind(name: str) -> str:
    if name == "suruga":
        return "coast (Suruga Bay)"
    split = json.loads((REPO / "benchmarks" / "rd_split.json").read_text())
    return split["kinds"].get(name, "?")


def throughput(rd, refine: int = 0) -> dict:
    """Single-threaded Mcells/s on a 1024×1024 mosaic of test tiles, topoae vs SPERR (topoae
    after one untimed pass: the first run of each shape pays oneDNN's set-up)."""
    import xarray as xr

    from topoae.baselines import get_baseline
    from topoae.codec import learned
    from topoae.io import open_grid

    names = list(regions(False))[:4]
    tiles = [np.asarray(open_grid(DATA / "tiles" / f"{n}.nc").values, np.float32) for n in names]
    z = np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]])
    g = xr.DataArray(z, dims=("lat", "lon"), coords={"lat": np.arange(1024.0), "lon": np.arange(1024.0)},
                     name="elevation")
    lev = learned.default_level(rd)
    if not refine:  # one untimed pass first: the first run of each shape pays oneDNN's set-up
        learned.decode(*learned.encode(g, rd, level=lev), rd)
    t0 = time.perf_counter()
    h, s = learned.encode(g, rd, level=lev, refine=refine)
    te = time.perf_counter() - t0
    n = len(learned.to_bytes(h, s))
    t0 = time.perf_counter()
    learned.decode(h, s, rd)
    td = time.perf_counter() - t0
    sp = get_baseline("sperr")
    enc = sp.at_ratio(z, z.size * 4 / n)
    t0 = time.perf_counter()
    blob = sp.encode(z, **enc.setting)
    tse = time.perf_counter() - t0
    t0 = time.perf_counter()
    sp.decode(blob)
    tsd = time.perf_counter() - t0
    return {"seams": seams(rd, lev, refine), "cells": int(z.size), "ratio": z.size * 4 / n, "level": lev,
            "topoae_enc": z.size / te / 1e6, "topoae_dec": z.size / td / 1e6,
            "sperr_enc": z.size / tse / 1e6, "sperr_dec": z.size / tsd / 1e6}


#: a contiguous held-out 15″ region for the seam check: 1024×832 cells of the Arabian Sea grid
#: (67.9–71.4°E, 16.4–20.7°N), used nowhere in training and overlapping no training tile
SEAM_REGION = (DATA / "gebco15_arabian_sea_shiva.nc", slice(56, 1080), slice(0, 832))


def seams(rd, level: int, refine: int = 0) -> dict:
    """The tiled decode (512-cell tiles) against a one-shot pass (one 1024-cell tile) on real,
    continuous terrain, and the error of cells within 4 of a tile border against the rest."""
    from topoae.codec import learned
    from topoae.io import open_grid

    path, rows, cols = SEAM_REGION
    g = open_grid(path).isel(lat=rows, lon=cols).load()
    zz = np.asarray(g.values, np.float64)
    rec = learned.decode(*learned.encode(g, rd, level=level, refine=refine), rd).values.astype(np.float64)
    one = learned.decode(*learned.encode(g, rd, level=level, tile=1024, refine=refine),
                         rd).values.astype(np.float64)
    border = np.zeros(zz.shape, bool)
    border[508:516, :] = True
    border[:, 508:516] = True

    real = np.isfinite(zz)  # the grid's empty cells stay empty in both decodes

    def rmse(a: np.ndarray, where: np.ndarray | None = None, b: np.ndarray = zz) -> float:
        keep = real if where is None else real & where
        return float(np.sqrt(np.mean((a - b)[keep] ** 2)))

    return {"region": f"{path.name}[{rows.start}:{rows.stop}, {cols.start}:{cols.stop}]",
            "shape": list(zz.shape), "empty_cells": int((~real).sum()),
            "tiled_vs_one_shot_rmse_m": rmse(rec, b=one),
            "tiled_rmse_m": rmse(rec), "one_shot_rmse_m": rmse(one),
            "border_rmse_m": rmse(rec, border), "border_rmse_one_shot_m": rmse(one, border),
            "interior_rmse_m": rmse(rec, ~border), "interior_rmse_one_shot_m": rmse(one, ~border)}


def _plain(out: Path, res: dict) -> dict | None:
    """The plain (unrefined) run of the same model in ``out``, if there is one."""
    p = out / "rd_learned.json"
    if not p.exists():
        return None
    plain = json.loads(p.read_text())
    return plain if plain.get("model_id") == res["model_id"] else None


def _refine_lines(res: dict, plain: dict) -> list[str]:
    """Refined against plain encodes on the same regions (same model, same SPERR)."""
    regs = {n: r for n, r in res["regions"].items() if n in plain["regions"]}
    lines = ["## Refined against plain encodes (same model, same regions)", "",
             "topoae RMSE / SPERR RMSE at equal bytes, plain → refined; BD-rate against SPERR, and of "
             "the refined encodes against the plain ones (negative: fewer bytes for the same RMSE).", "",
             "| region | " + " | ".join(f"{int(t)}×" for t in TARGETS) + " | BD vs SPERR | BD vs plain |",
             "|---|" + "---|" * (len(TARGETS) + 2)]
    per_t: dict[str, list[tuple[float, float]]] = {str(int(t)): [] for t in TARGETS}
    bd_p, bd_r, bd_rp = [], [], []
    for n, r in regs.items():
        p = plain["regions"][n]
        cells = []
        for t in TARGETS:
            k = str(int(t))
            a, b = p["at"][k], r["at"][k]
            qa, qb = a["topoae"] / a["sperr"], b["topoae"] / b["sperr"]
            if qa == qa and qb == qb:
                per_t[k].append((qa, qb))
            cells.append("—" if qa != qa or qb != qb else f"{qa:.2f} → {qb:.2f}")
        lv, lp = r["levels"], p["levels"]
        rp = bd_rate([v["ratio"] for v in lv], [v["rmse"] for v in lv],
                     [v["ratio"] for v in lp], [v["rmse"] for v in lp])
        bd_p.append(p["bd_rate_vs_sperr"])
        bd_r.append(r["bd_rate_vs_sperr"])
        bd_rp.append(rp)
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {p['bd_rate_vs_sperr']:+.0%} → "
                     f"{r['bd_rate_vs_sperr']:+.0%} | {rp:+.1%} |")

    def mean(v: list[float]) -> float:
        v = [x for x in v if x == x]
        return float(np.mean(v)) if v else float("nan")

    lines.append("| **mean** | " + " | ".join(
        f"**{mean([a for a, _ in per_t[str(int(t))]]):.2f} → {mean([b for _, b in per_t[str(int(t))]]):.2f}**"
        for t in TARGETS) + f" | **{mean(bd_p):+.0%} → {mean(bd_r):+.0%}** | **{mean(bd_rp):+.1%}** |")
    return lines + [""]


def markdown(res: dict, plain: dict | None = None) -> str:
    regs = res["regions"]
    refine = res.get("refine", 0)
    how = f", latents refined at encode time ({refine} steps per tile, `--refine {refine}`)" if refine else ""
    lines = [f"# Learned codec against the classic compressors ({res['date']}, {res['machine']})", "",
             f"Model `{res['model_id'][:16]}`{how}. RMSE in metres at equal bytes (topoae / SPERR / "
             "JPEG2000 / JPEG XL / SZ3); topoae interpolated between its levels, `—` outside them.", ""]
    for t in TARGETS:
        k = str(int(t))
        lines += [f"## At {k}×", "", "| region | kind | topoae | SPERR | JPEG2000 | JPEG XL | SZ3 | topoae/SPERR |",
                  "|---|---|---|---|---|---|---|---|"]
        ratios = []
        for n, r in regs.items():
            a = r["at"][k]
            q = a["topoae"] / a["sperr"] if a["sperr"] == a["sperr"] and a["topoae"] == a["topoae"] else float("nan")
            ratios.append(q)
            cells = " | ".join("—" if v != v else f"{v:.1f}" for v in (a["topoae"], a["sperr"], a["jpeg2000"],
                                                                        a["jpegxl"], a["sz3"]))
            lines.append(f"| {n} | {r['kind']} | {cells} | {'—' if q != q else f'{q:.2f}'} |")
        fin = [q for q in ratios if q == q]
        below = sum(q < 1 for q in fin)
        lines += ["", f"Mean topoae/SPERR: {np.mean(fin):.2f} over {len(fin)} of {len(ratios)} regions "
                  f"covered; below 1 on {below} of {len(ratios)}." if fin else "", ""]
    if plain is not None:
        lines += _refine_lines(res, plain)
    bds = [r["bd_rate_vs_sperr"] for r in regs.values() if r["bd_rate_vs_sperr"] == r["bd_rate_vs_sperr"]]
    lines += ["## BD-rate against SPERR (50–400×)", "", "| region | BD-rate |", "|---|---|"]
    lines += [f"| {n} | {r['bd_rate_vs_sperr']:+.1%} |" for n, r in regs.items()]
    if bds:
        lines += ["", f"Mean BD-rate: {np.mean(bds):+.1%} (negative: topoae needs fewer bytes)."]
    lines += _no_attrs_lines(regs)
    lines += ["", "## Quality levels (bytes on disk)", "",
              "| region | " + " | ".join(f"q{lv['level']} ratio / RMSE / max" for lv in next(iter(regs.values()))["levels"]) + " |",
              "|---|" + "---|" * len(next(iter(regs.values()))["levels"])]
    for n, r in regs.items():
        lines.append(f"| {n} | " + " | ".join(f"{lv['ratio']:.0f}× / {lv['rmse']:.1f} / {lv['max']:.0f}"
                                              for lv in r["levels"]) + " |")
    lines += _bounded_lines(regs)
    t = res["throughput"]
    if t is None:
        return "\n".join(lines + ["", "Throughput: not measured in this run.", ""])
    lines += ["", "## Throughput (one thread, 1024×1024 cells of test tiles)", "",
              f"topoae quality {t['level']} ({t['ratio']:.0f}×): encode {t['topoae_enc']:.2f}, decode "
              f"{t['topoae_dec']:.2f} Mcells/s; SPERR at the same bytes: encode {t['sperr_enc']:.1f}, "
              f"decode {t['sperr_dec']:.1f} Mcells/s.", "",
              "## Seams (512-cell tiles against one 1024-cell tile)", ""]
    sm = t["seams"]
    if "region" not in sm:  # runs before the seam check moved to a continuous region
        lines += [f"Tiled vs one-shot decode: {sm['tiled_vs_one_shot_rmse_m']:.3f} m RMSE apart on the "
                  "mosaic of test tiles (its joins are cliffs in the data).", ""]
        return "\n".join(lines)
    lines += [f"On {sm['shape'][0]}×{sm['shape'][1]} cells of continuous held-out terrain "
              f"(`{sm['region']}`), level {t['level']}: tiled and one-shot decodes are "
              f"{sm['tiled_vs_one_shot_rmse_m']:.2f} m RMSE apart (two encodes; whole-grid RMSE "
              f"{sm['tiled_rmse_m']:.2f} tiled, {sm['one_shot_rmse_m']:.2f} one-shot). Cells within 4 of "
              f"the tile borders: {sm['border_rmse_m']:.2f} m tiled, {sm['border_rmse_one_shot_m']:.2f} m "
              f"one-shot, where they are interior cells ({sm['border_rmse_m'] / sm['border_rmse_one_shot_m'] - 1:+.1%}); "
              f"the other cells: {sm['interior_rmse_m']:.2f} m tiled, {sm['interior_rmse_one_shot_m']:.2f} m "
              "one-shot.", ""]
    return "\n".join(lines)


def _no_attrs_lines(regs: dict) -> list[str]:
    """The same comparison for the files ``--no-attrs`` writes (the grid's attributes dropped;
    coordinates, CRS and the rest of the header kept): SPERR's stream keeps neither."""
    got = {n: r["no_attrs"] for n, r in regs.items() if "no_attrs" in r}
    if not got:
        return []
    lines = ["", "## Without the grid's attributes (`--no-attrs`)", "",
             "The same levels encoded with `--no-attrs` (the header keeps the coordinates, CRS and "
             "codec settings, not the NetCDF attributes; SPERR's stream holds none of these), against "
             "the same SPERR runs.", "", "| | " + " | ".join(f"{int(t)}×" for t in TARGETS) + " | BD-rate |",
             "|---|" + "---|" * (len(TARGETS) + 1)]
    cells = []
    for t in TARGETS:
        v = [g["at"][str(int(t))] for g in got.values() if g["at"][str(int(t))] == g["at"][str(int(t))]]
        cells.append(f"{np.mean(v):.2f} (below 1 on {sum(q < 1 for q in v)} of {len(got)})" if v else "—")
    bds = [g["bd_rate_vs_sperr"] for g in got.values() if g["bd_rate_vs_sperr"] == g["bd_rate_vs_sperr"]]
    share = [1 - lv["bytes_no_attrs"] / lv["bytes"] for r in regs.values() for lv in r["levels"]
             if "bytes_no_attrs" in lv]
    lines += ["| mean topoae/SPERR RMSE | " + " | ".join(cells) + f" | {np.mean(bds):+.1%} |", "",
              f"The attributes are {np.mean(share):.1%} of a file on average ({min(share):.1%}–"
              f"{max(share):.1%}).", ""]
    return lines


def _bounded_lines(regs: dict) -> list[str]:
    if not all(r.get("bounded") for r in regs.values()):
        return ["", "Error-bounded sizes: not measured in this run."]
    lines = ["", "## Error-bounded: bytes for every cell within E", "",
             "| region | 5 m topoae / SPERR / SZ3 | 10 m | 25 m |", "|---|---|---|---|"]
    for n, r in regs.items():
        lines.append(f"| {n} | " + " | ".join(
            f"{r['bounded'][str(int(e))]['topoae']:,} / {r['bounded'][str(int(e))]['sperr']:,} / "
            f"{r['bounded'][str(int(e))]['sz3']:,}" for e in BOUNDS) + " |")
    for e in BOUNDS:
        k = str(int(e))
        wins = sum(r["bounded"][k]["topoae"] < min(r["bounded"][k]["sperr"], r["bounded"][k]["sz3"])
                   for r in regs.values())
        tot = sum(r["bounded"][k]["topoae"] for r in regs.values())
        sp = sum(r["bounded"][k]["sperr"] for r in regs.values())
        sz = sum(r["bounded"][k]["sz3"] for r in regs.values())
        lines.append(f"\nAt {k} m: topoae smallest on {wins} of {len(regs)} regions; total bytes "
                     f"topoae {tot:,}, SPERR {sp:,}, SZ3 {sz:,}.")
    return lines


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regs = res["regions"]
    names = list(regs)
    n = len(names)
    cols = 4
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        r = regs[name]
        lv = r["levels"]
        ax.loglog([v["ratio"] for v in lv], [v["rmse"] for v in lv], "o-", color="k", label="topoae")
        for b, c in zip(BASELINES, ("tab:red", "tab:blue", "tab:green", "tab:orange"), strict=True):
            pts = [p for p in r["same_bytes"].get(b, []) if p["reached"]]
            if pts:
                ax.loglog([p["ratio"] for p in pts], [p["rmse"] for p in pts], ".--", color=c, label=b)
        ax.set_title(f"{name} ({r['kind']})", fontsize=8)
        ax.set_xlabel("ratio (bytes on disk)", fontsize=7)
        ax.set_ylabel("RMSE m", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def coverage(model_path: Path, out: Path, members: int | None = None) -> dict:
    """Ensemble calibration on held-out data: the share of cells inside the members' 5–95 % band
    (target 90 % ± 5 %), per level, on a 256×256 corner of four test tiles and on Suruga."""
    import torch

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import ensemble, learned
    from topoae.io import open_grid

    torch.set_num_threads(1)
    members = ensemble.MEMBERS if members is None else members  # what τ is calibrated for
    lm = load_checkpoint(model_path)
    rd = learned.as_rd_model(lm)
    regs = regions(False)
    names = [n for n in regs if n != "suruga"][:4] + ["suruga"]
    res: dict = {"model_id": rd.model_id, "members": members, "date": dt.date.today().isoformat(),
                 "levels": {}}
    for lev in range(rd.levels):
        tau = ensemble.tau_for(lm, lev)
        covs = {}
        for n in names:
            g = open_grid(regs[n]).load().isel(lat=slice(0, 256), lon=slice(0, 256))
            h, s = learned.encode(g, rd, level=lev)
            ens = np.stack([ensemble.member(h, s, lm, seed=0, index=k, tau=tau).values
                            for k in range(members)]).astype(np.float64)
            covs[n] = ensemble.coverage(np.asarray(g.values, np.float64), ens)
        res["levels"][str(lev)] = {"tau": tau, "coverage": covs, "mean": float(np.mean(list(covs.values())))}
        print(f"level {lev}: tau {tau:.2f} coverage {res['levels'][str(lev)]['mean']:.1%}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rd_coverage.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = [f"# Ensemble coverage on held-out tiles ({res['date']}, {members} members, seed 0)", "",
             "Share of cells inside the members' 5–95 % band (target 90 % ± 5 %); τ calibrated on "
             "validation tiles.", "", "| level | τ | " + " | ".join(names) + " | mean |",
             "|---|---|" + "---|" * (len(names) + 1)]
    for lev, r in res["levels"].items():
        lines.append(f"| {lev} | {r['tau']:.2f} | " + " | ".join(f"{r['coverage'][n]:.1%}" for n in names)
                     + f" | {r['mean']:.1%} |")
    (out / "rd_coverage.md").write_text("\n".join(lines) + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--quick", action="store_true", help="4 test tiles and Suruga only")
    ap.add_argument("--coverage", action="store_true",
                    help="only the ensemble coverage on held-out tiles (needs a shipped model's τ)")
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="encode with latent refinement (topoae encode --refine); writes "
                         "rd_learned_refine.*, without the error-bounded sizes "
                         "(benchmarks/refine_bounded.py)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the sweep (throughput is always one thread)")
    ap.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated subset")
    ap.add_argument("--no-speed", action="store_true", help="skip the throughput and seam run")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the throughput and seam run, into the results of the last full run")
    ap.add_argument("--only", default="", help="comma-separated region names (default: all)")
    ap.add_argument("--max-level", type=int, default=None,
                    help="code levels 0..N only (e.g. 6: the levels that span 50-400x)")
    a = ap.parse_args()
    chosen = tuple(b for b in a.baselines.split(",") if b)
    if "sperr" not in chosen or not set(chosen) <= set(BASELINES):
        raise SystemExit(f"--baselines: a subset of {','.join(BASELINES)} that includes sperr "
                         "(the BD-rate and the pairing are against SPERR)")
    if a.coverage:
        coverage(a.model, a.out)
    elif a.speed_only:  # the throughput and seams again, into the last full run's results
        import torch

        from topoae.checkpoint import load_checkpoint
        from topoae.codec import learned

        torch.set_num_threads(1)
        stem = "rd_learned_refine" if a.refine else "rd_learned"
        res = json.loads((a.out / f"{stem}.json").read_text())
        lm = load_checkpoint(a.model)
        if lm.model_id[:16] != res["model_id"][:16]:
            raise SystemExit(f"{stem}.json is of model {res['model_id'][:16]}, not {lm.model_id[:16]}")
        res["throughput"] = throughput(learned.as_rd_model(lm), a.refine)
        res["throughput"]["date"] = dt.date.today().isoformat()
        (a.out / f"{stem}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
        (a.out / f"{stem}.md").write_text(markdown(res, _plain(a.out, res) if a.refine else None))
    else:
        run(a.model, a.out, a.quick, a.refine, a.threads,
            tuple(n for n in a.only.split(",") if n), a.max_level,
            chosen, not a.no_speed)


if __name__ == "__main__":
    main()
