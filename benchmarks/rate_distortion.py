"""Rate-distortion of topoae against the classic compressors on the real grids of ../shared/data.

Runs :func:`topoae.report.run_evaluation` (what ``topoae evaluate`` runs) on

- the real 15" GEBCO Suruga Bay tile (202x201, coast to trough), and
- the ETOPO5 5' global grid (2161x4320, whole grid, as in ../shared/ANCHORS.md),

at 92x and 369x, plus the error-bounded rate table of ANCHORS.md (bytes needed
by SZ3, SPERR, LERC, ZFP for a max-error bound on the whole ETOPO5 grid), and
prints Markdown tables. Full reports (JSON, report.md, figures) go under --out.

    python benchmarks/rate_distortion.py [--model CKPT] [--out build/rate_distortion]
                                         [--regions suruga,etopo5] [--no-figures]

Without --model the shipped model (topoae/weights/*.pt) is used when there is one;
otherwise only the baselines run and the summary says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REGIONS = {
    "suruga": DATA / "gebco_15s" / "gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc",
    "etopo5": DATA / "etopo_global" / "etopo5_global_5min_ferret.cdf",
}
# PCA basis: fitted on a real grid that is neither evaluated region (the Tohoku box is masked anyway).
PCA_FIT = DATA / "gmt_regional" / "USEast_Coast.nc"
BOUNDS = (1.0, 10.0, 50.0, 250.0)


def shipped_model() -> Path | None:
    from topoae.errors import CheckpointError
    from topoae.zoo import default_model_path

    try:
        return default_model_path()
    except CheckpointError:
        return None


def table(res: dict, ratio: float) -> list[str]:
    from topoae.report import row_name, rows_at

    out = [
        "| codec | ratio | RMSE m | max m | MAE m | PSNR dB | SSIM | total L2 | enc / dec MB/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows_at(res, ratio):
        m = r["metrics"]
        out.append(
            f"| {row_name(r)} | {r['ratio']:.1f} | {m['rmse']:.1f} | {m['max_abs']:.0f} | {m['mae']:.1f} | "
            f"{m['psnr']:.1f} | {m['ssim']:.3f} | {m['total_l2']:.2f} | "
            f"{r['encode_mbs']:.0f} / {r['decode_mbs']:.0f} |"
        )
    return out


def bounded_table(z) -> list[str]:
    from topoae import metrics
    from topoae.baselines import resolve

    codecs = resolve("sz3,sperr,lerc,zfp")
    out = [
        "| codec | " + " | ".join(f"{b:g} m" for b in BOUNDS) + " |",
        "|---|" + "---|" * len(BOUNDS),
    ]
    for c in codecs:
        cells = []
        for b in BOUNDS:
            enc = c.at_error(z, b)
            err = metrics.max_abs_error(z, c.decode(enc.blob))
            cells.append(f"{enc.ratio:.1f} (max {err:.3g})")
        out.append(f"| {c.name} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "rate_distortion")
    ap.add_argument("--regions", default="suruga,etopo5")
    ap.add_argument("--ratios", default="92,369")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--no-bounded", action="store_true")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not there: this benchmark needs the real grids")

    from topoae.evaluation import EvaluateConfig
    from topoae.io import open_grid
    from topoae.regions import TOHOKU_BOX, in_box
    from topoae.report import run_evaluation

    ckpt = args.model or shipped_model()
    model = None
    if ckpt is not None:
        from topoae.checkpoint import load_checkpoint

        model = load_checkpoint(ckpt)
    ratios = tuple(float(r) for r in args.ratios.split(","))
    from topoae.evaluation import _machine

    mach = _machine()
    lines = [
        f"Date {dt.date.today().isoformat()}; {mach['cpu']} ({mach['cores']} cores); "
        f"Python {mach['python']}; data: ../shared/data (real grids).",
        "",
        f"Model: `{ckpt}` ({model.model_id[:16]}…)"
        if model
        else "Model: none shipped yet (baselines only).",
        "",
    ]
    for name in args.regions.split(","):
        path = REGIONS[name]
        grid = open_grid(path).load()
        if grid.dims == ("lat", "lon"):
            # The Tohoku box is the project's held-out evaluation region: masked (NaN), never scored.
            grid = grid.where(~in_box(TOHOKU_BOX, grid["lat"], grid["lon"]))
        cfg = EvaluateConfig(ratios=ratios, figures=not args.no_figures, pca_fit=str(PCA_FIT))
        t0 = time.perf_counter()
        res = run_evaluation(
            grid,
            args.out / name,
            model=model,
            config=cfg,
            overwrite=True,
            progress=lambda s, n=name: print(f"[{n}] {s}", file=sys.stderr, flush=True),
        )
        secs = time.perf_counter() - t0
        lines += [
            f"## {path.name} ({grid.shape[0]}x{grid.shape[1]}), {secs:.0f} s",
            "",
            f"PCA basis: {next(r['info']['basis_fitted_on'] for r in res['runs'] if r['codec'] == 'pca')}",
        ]
        for r in res["ratios"]:
            lines += ["", f"### {r:g}x", "", *table(res, r)]
        if name == "etopo5" and not args.no_bounded:
            lines += ["", "### Error-bounded: compression ratio at a max-error bound", ""]
            lines += bounded_table(grid.values)
        lines.append("")
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    text = "\n".join(lines)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
