"""The whole pipeline on the bundled region, with the shipped model: what ``topoae demo`` runs.

Encode → decode → metrics → hillshaded figure → a small ensemble → ExaHyPE inputs.
Everything is written under one folder, atomically (a failed demo leaves nothing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from topoae._atomic import atomic_path


@dataclass
class DemoResult:
    """What the demo wrote and measured."""

    out: Path
    files: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0


def run_demo(out: str | os.PathLike = "topoae-demo", *, model: str | os.PathLike | None = None,
             region: str | os.PathLike | None = None, members: int = 16, max_error: float = 25.0,
             overwrite: bool = False, echo: Callable[[str], None] = print,
             units: str | None = None) -> DemoResult:
    """Run the demo into folder ``out`` and return what it wrote.

    Parameters
    ----------
    model
        Checkpoint; the shipped model when ``None``.
    region
        Grid to compress; the bundled ETOPO5 Japan-trench crop when ``None``.
    members
        Ensemble size drawn with :func:`topoae.sample`.
    units
        ``"ft"`` when ``region`` is in feet and does not say so (see :func:`topoae.io.open_grid`).
    max_error
        Bound (metres) of the error-bounded variant that is also written.
    """
    import numpy as np

    from topoae import codec, metrics, plotting, sampling
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import files as codec_io
    from topoae.errors import TopoAEError
    from topoae.io import open_grid
    from topoae.simulation import export_exahype
    from topoae.zoo import DEMO_REGION, resolve_model

    t0 = time.perf_counter()
    model_path = resolve_model(model)
    region_path = Path(region) if region is not None else DEMO_REGION
    lm = load_checkpoint(model_path, map_location="cpu")
    from topoae.codec import learned

    if learned.is_rd_model(lm):
        return _learned_demo(out, lm, model_path, region_path, members=members, max_error=max_error,
                             overwrite=overwrite, echo=echo, t0=t0, units=units)
    grid = open_grid(region_path, units=units).load()
    echo(f"region {region_path.name}: {grid.shape[0]}x{grid.shape[1]} cells, "
         f"{float(grid.min()):.0f} to {float(grid.max()):.0f} m; model {model_path.name} ({lm.model_id[:12]})")
    final = Path(out)
    result = DemoResult(out=final)
    with atomic_path(final, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        ds = codec.encode(grid, lm, quantize="8bit")
        codec_io.save_latents(ds, tmp / "latents.zarr")
        size = codec_io.summary(ds, tmp / "latents.zarr")
        echo("encode: " + codec_io.summary_line(size))
        recon = codec.decode(ds, lm)
        codec_io.save_grid(recon, tmp / "reconstruction.nc")
        m = metrics.compare(grid.values, recon.values)
        echo(f"decode: RMSE {m.rmse:.1f} m, MAE {m.mae:.1f} m, max error {m.max_abs:.1f} m, "
             f"PSNR {m.psnr:.1f} dB at {size['cr_payload_bytes']:.1f}x (payload bytes)")
        bounded = codec.encode(grid, lm, quantize="8bit", max_error=max_error)
        codec_io.save_latents(bounded, tmp / "latents_bounded.zarr")
        bsize = codec_io.summary(bounded, tmp / "latents_bounded.zarr")
        brecon = codec.decode(bounded, lm)
        bmax = float(np.nanmax(np.abs(brecon.values - grid.values)))
        echo(f"error-bounded (--max-error {max_error:g}): max error {bmax:.1f} m at "
             f"{bsize['cr_payload_bytes']:.1f}x (payload bytes)")
        fig = plotting.panel_figure(grid, recon, title=f"{region_path.name}: original / topoae / error")
        plotting.save_figure(fig, tmp / "comparison.png")
        try:
            with_var = codec.encode(grid, lm, keep_logvar=True)
        except TopoAEError as exc:  # a plain autoencoder has no q(z|x) to sample
            spread = float("nan")
            echo(f"sample: skipped ({exc})")
        else:
            ens = sampling.sample(with_var, lm, n=members, seed=0)
            codec_io.save_ensemble(ens, tmp / "ensemble.nc")
            std_name = next(v for v in ens.data_vars if str(v).endswith("_std"))
            spread = float(ens[std_name].mean())
            echo(f"sample: {members} members, mean spread (std) {spread:.1f} m")
        export_exahype(recon, tmp / "exahype", provenance={"model_id": lm.model_id,
                                                           "source": str(region_path)})
        echo("export: ExaHyPE inputs (ASAGI NetCDF, data_gmt.yaml, spec file) in exahype/")
        result.files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")
                              if p.is_file() and ".zarr" not in str(p.relative_to(tmp)))
        result.files += ["latents.zarr/", "latents_bounded.zarr/"]
        result.metrics = {"rmse_m": m.rmse, "mae_m": m.mae, "max_abs_m": m.max_abs, "psnr_db": m.psnr,
                          "cr_payload_bytes": size["cr_payload_bytes"], "cr_values": size["cr_values"],
                          "bounded_max_abs_m": bmax, "bounded_cr_payload_bytes": bsize["cr_payload_bytes"],
                          "ensemble_mean_std_m": spread}
    result.seconds = time.perf_counter() - t0
    return result


def _learned_demo(out, lm, model_path: Path, region_path: Path, *, members: int, max_error: float,
                  overwrite: bool, echo: Callable[[str], None], t0: float,
                  units: str | None = None) -> DemoResult:
    """The demo with the learned codec: one .tae file, SPERR at the same bytes beside it."""
    import numpy as np

    from topoae import metrics, plotting
    from topoae.baselines import get_baseline
    from topoae.codec import ensemble, learned, refine
    from topoae.codec import files as codec_io
    from topoae.io import open_grid
    from topoae.simulation import export_exahype

    grid = open_grid(region_path, units=units).load()
    rd = learned.as_rd_model(lm)
    echo(f"region {region_path.name}: {grid.shape[0]}x{grid.shape[1]} cells, "
         f"{float(grid.min()):.0f} to {float(grid.max()):.0f} m; model {model_path.name} ({lm.model_id[:12]})")
    final = Path(out)
    result = DemoResult(out=final)
    x = np.asarray(grid.values, dtype=np.float64)
    raw = x.size * 4
    with atomic_path(final, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        header, streams = learned.encode(grid, rd)
        nbytes = learned.write(tmp / "region.tae", header, streams)
        ratio = raw / nbytes
        recon = learned.decode(header, streams, rd)
        codec_io.save_grid(recon, tmp / "reconstruction.nc", dtype=recon.encoding["dtype"])
        m = metrics.compare(x, recon.values.astype(np.float64))
        echo(f"encode: {nbytes:,} bytes on disk (CR {ratio:.1f}x of float32), quality "
             f"{header['codec']['level']}")
        echo(f"decode: RMSE {m.rmse:.1f} m, MAE {m.mae:.1f} m, max error {m.max_abs:.1f} m, "
             f"PSNR {m.psnr:.1f} dB")
        sperr = get_baseline("sperr")
        enc = sperr.at_ratio(x.astype(np.float32), ratio)
        sz = sperr.decode(enc.blob).astype(np.float64)
        ms = metrics.compare(x, sz)
        echo(f"SPERR at the same bytes ({enc.nbytes:,} bytes, CR {enc.ratio:.1f}x): RMSE {ms.rmse:.1f} m, "
             f"max error {ms.max_abs:.1f} m")
        steps = refine.STEPS
        hr, sr = learned.encode(grid, rd, level=header["codec"]["level"], refine=steps)
        rbytes = learned.write(tmp / "region_refined.tae", hr, sr)
        mr = metrics.compare(x, learned.decode(hr, sr, rd).values.astype(np.float64))
        encr = sperr.at_ratio(x.astype(np.float32), raw / rbytes)
        msr = metrics.compare(x, sperr.decode(encr.blob).astype(np.float64))
        echo(f"refined (--refine {steps}): {rbytes:,} bytes (CR {raw / rbytes:.1f}x), RMSE {mr.rmse:.1f} m; "
             f"SPERR at the same bytes: RMSE {msr.rmse:.1f} m")
        hb, sb = learned.encode(grid, rd, level=0, max_error=max_error)
        bbytes = learned.write(tmp / "region_bounded.tae", hb, sb)
        brecon = learned.decode(hb, sb, rd)
        bmax = float(np.nanmax(np.abs(brecon.values.astype(np.float64) - x)))
        echo(f"error-bounded (--max-error {max_error:g}): max error {bmax:.1f} m at "
             f"{raw / bbytes:.1f}x ({bbytes:,} bytes)")
        title = (f"{region_path.name}: topoae {ratio:.0f}x, RMSE {m.rmse:.1f} m "
                 f"(SPERR at the same bytes: {ms.rmse:.1f} m)")
        plotting.save_figure(plotting.panel_figure(grid, recon.values, title=title), tmp / "comparison.png")
        sp_grid = grid.copy(data=sz.astype(np.float32))
        plotting.save_figure(plotting.panel_figure(grid, sp_grid.values, title=(
            f"SPERR at the same {enc.nbytes:,} bytes: RMSE {ms.rmse:.1f} m")), tmp / "comparison_sperr.png")
        ens = ensemble.sample(header, streams, lm, n=members, seed=0)
        codec_io.save_ensemble(ens, tmp / "ensemble.nc")
        name = str(recon.name or "elevation")
        spread = float(ens[f"{name}_std"].mean())
        cov = ensemble.coverage(x, ens[name].values.astype(np.float64)) if members >= 2 else float("nan")
        echo(f"sample: {members} members, mean spread (std) {spread:.1f} m, "
             f"{cov:.0%} of cells inside the 5-95 % band")
        export_exahype(recon.astype(np.float32), tmp / "exahype",
                       provenance={"model_id": lm.model_id, "source": str(region_path)})
        echo("export: ExaHyPE inputs (ASAGI NetCDF, data_gmt.yaml, spec file) in exahype/")
        result.files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        result.metrics = {"rmse_m": m.rmse, "mae_m": m.mae, "max_abs_m": m.max_abs, "psnr_db": m.psnr,
                          "ratio": ratio, "bytes": nbytes, "sperr_rmse_m": ms.rmse,
                          "refined_bytes": rbytes, "refined_rmse_m": mr.rmse,
                          "refined_sperr_rmse_m": msr.rmse,
                          "bounded_max_abs_m": bmax, "bounded_ratio": raw / bbytes,
                          "ensemble_mean_std_m": spread, "ensemble_coverage": cov}
    result.seconds = time.perf_counter() - t0
    return result
