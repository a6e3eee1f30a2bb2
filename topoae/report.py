"""The evaluation report: ``results.json``, ``report.md`` and figures, written atomically.

:func:`run_evaluation` runs :func:`topoae.evaluation.evaluate` inside a
temporary directory that becomes ``out`` only when everything is written.
Figures are drawn as each codec finishes, so no reconstruction is kept:

- ``maps/<codec>_<ratio>x.png``: hillshaded original / reconstruction / error;
- ``worst/<codec>_<ratio>x.png``: the same for the tile with the largest error;
- ``histogram_<ratio>x.png``: error histograms of every codec at that ratio;
- ``rate_distortion.png`` / ``rate_distortion_max.png``: RMSE and max error vs ratio.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from topoae import metrics, plotting
from topoae._atomic import atomic_path

HIST_SAMPLES = 200_000


def ratio_tag(r: float) -> str:
    """``92x``, ``369x``, ``287.35x``."""
    return f"{round(r, 2):g}x"


def group_of(rec: dict[str, Any]) -> float:
    """The target ratio a record belongs to (topoae's own ratio for topoae)."""
    return rec["target_ratio"] if rec["target_ratio"] is not None else round(rec["ratio"], 2)


def rows_at(res: dict[str, Any], ratio: float) -> list[dict[str, Any]]:
    """The runs of the table at ``ratio``: those that reached it first, then by RMSE."""
    rows = [r for r in res["runs"] if group_of(r) == ratio]
    return sorted(rows, key=lambda x: (not x["reached"], x["metrics"]["rmse"] or 0))


def row_name(rec: dict[str, Any]) -> str:
    """A codec's name in a table, marked when it could not reach the target ratio."""
    return rec["codec"] if rec["reached"] else f"{rec['codec']} (cannot reach)"


class FigureWriter:
    """Collects figures while an evaluation runs (pass :meth:`on_result` to ``evaluate``)."""

    def __init__(
        self, folder: Path, *, patch: int = metrics.PATCH, max_plot_cells: int = 1_500_000
    ):
        self.folder = Path(folder)
        self.patch = patch
        self.max_plot_cells = max_plot_cells
        self.paths: list[str] = []
        self.samples: dict[float, dict[str, np.ndarray]] = {}

    def _save(self, fig, rel: str) -> None:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        plotting.save_figure(fig, path, overwrite=True)
        self.paths.append(rel)

    def on_result(self, rec: dict[str, Any], da: Any, recon: np.ndarray) -> None:
        """Draw the map and worst-tile figures of one run and keep an error sample."""
        tag = f"{rec['codec']}_at_{ratio_tag(group_of(rec))}"
        z = np.asarray(da.values, dtype=np.float32)
        m = rec["metrics"]
        title = (
            f"{rec['codec']} at {rec['ratio']:.1f}x: RMSE {m['rmse']:.2f} m, "
            f"max {m['max_abs']:.1f} m"
        )
        step = max(1, math.ceil(math.sqrt(z.size / self.max_plot_cells)))
        sub = da.isel({d: slice(None, None, step) for d in da.dims}) if step > 1 else da
        self._save(
            plotting.panel_figure(sub, recon[::step, ::step], title=title), f"maps/{tag}.png"
        )
        err = metrics.patch_errors(z, recon, patch=self.patch)
        i, j = np.unravel_index(int(np.argmax(err)), err.shape)
        win = {
            da.dims[0]: slice(i * self.patch, (i + 1) * self.patch),
            da.dims[1]: slice(j * self.patch, (j + 1) * self.patch),
        }
        tile = da.isel(win)
        rt = recon[win[da.dims[0]], win[da.dims[1]]]
        wt = (
            f"{rec['codec']} {rec['ratio']:.1f}x, worst tile ({i}, {j}): L2 {err[i, j]:.3f} "
            f"[0,1 scale], RMSE {metrics.rmse(tile.values, rt):.1f} m"
        )
        self._save(plotting.panel_figure(tile, rt, title=wt), f"worst/{tag}.png")
        if not rec["reached"]:  # its errors would only stretch the histogram's range
            return
        d = (recon.astype(np.float64) - z)[np.isfinite(z)]
        self.samples.setdefault(group_of(rec), {})[rec["codec"]] = d[
            :: max(1, d.size // HIST_SAMPLES)
        ]

    def finish(self, results: dict[str, Any]) -> None:
        """Histograms per ratio and the rate-distortion plots."""
        for r, errs in sorted(self.samples.items()):
            self._save(plotting.error_histogram(errs), f"histogram_{ratio_tag(r)}.png")
        for key, name, label in (
            ("rmse", "rate_distortion.png", "RMSE (m)"),
            ("max_abs", "rate_distortion_max.png", "max abs error (m)"),
        ):
            curves: dict[str, list[tuple[float, float]]] = {}
            for rec in results["runs"]:
                v = rec["metrics"][key]
                if rec["reached"] and v is not None:
                    curves.setdefault(rec["codec"], []).append((rec["ratio"], v))
            if curves:
                fig = plotting.rate_distortion(curves, ylabel=label, title=_region_title(results))
                self._save(fig, name)


def _region_title(res: dict[str, Any]) -> str:
    src = Path(res["region"]["source"]).name or "region"
    return f"{src} ({res['region']['shape'][0]}x{res['region']['shape'][1]})"


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _setting(s: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in s.items()
        if v is not None
    )


def render_markdown(res: dict[str, Any]) -> str:
    """``report.md``: one table per target ratio, the bounded comparison, the figures."""
    reg, mach = res["region"], res["machine"]
    lines = [
        f"# topoae evaluation: {_region_title(res)}",
        "",
        f"- date: {res['date']}; machine: {mach['cpu']} ({mach['cores']} cores), {mach['platform']}",
        f"- region: `{reg['source'] or 'in-memory array'}`, {reg['shape'][0]}x{reg['shape'][1]} "
        f"cells ({reg['valid_cells']} valid), bounds {reg['bounds']}",
        f"- topoae model: `{res['model_id']}`"
        if res["model_id"]
        else "- topoae model: none (baselines only)",
        "- ratio = raw float32 bytes / compressed bytes, every byte of side information counted; "
        "baselines are swept to each target and never exceed its byte budget.",
        "- PSNR/SSIM peak = value range of the original; total L2 / max patch L2: thesis Table 5.1 "
        "metrics on the [0, 1] GEBCO_2019 scale over non-overlapping "
        f"{res['config']['patch']}x{res['config']['patch']} tiles.",
        "- MB/s: MB (10^6 B) of float32 input per second, one encode / one decode, single thread.",
    ]
    pca = next((r["info"].get("basis_fitted_on") for r in res["runs"] if r["codec"] == "pca"), None)
    if pca:
        lines.append(f"- PCA basis fitted on: {pca} (not counted in bytes, like model weights).")
    head = (
        "| codec | ratio | bytes | RMSE m | MAE m | max m | PSNR dB | SSIM | total L2 | "
        "max patch L2 | enc MB/s | dec MB/s | setting |"
    )
    for r in sorted({group_of(rec) for rec in res["runs"]}):
        lines += ["", f"## At {ratio_tag(r)}", "", head, "|" + "---|" * 13]
        for rec in rows_at(res, r):
            m = rec["metrics"]
            lines.append(
                f"| {row_name(rec)} | {rec['ratio']:.1f} | {rec['nbytes']} | {_f(m['rmse'], '.2f')} | "
                f"{_f(m['mae'], '.2f')} | {_f(m['max_abs'], '.1f')} | {_f(m['psnr'], '.2f')} | "
                f"{_f(m['ssim'], '.4f')} | {_f(m['total_l2'], '.3f')} | {_f(m['max_patch_l2'], '.3f')} | "
                f"{_f(rec['encode_mbs'], '.1f')} | {_f(rec['decode_mbs'], '.1f')} | {_setting(rec['setting'])} |"
            )
    if res["bounded"]:
        e = res["bounded"][0]["max_error"]
        lines += [
            "",
            f"## Error-bounded: every cell within {e:g} m",
            "",
            "| codec | bytes | ratio | max abs error m | RMSE m |",
            "|---|---|---|---|---|",
        ]
        for b in sorted(res["bounded"], key=lambda x: x["nbytes"]):
            lines.append(
                f"| {b['codec']} | {b['nbytes']} | {b['ratio']:.1f} | "
                f"{_f(b['max_abs'], '.3f')} | {_f(b['rmse'], '.3f')} |"
            )
    if res.get("figures"):
        lines += ["", "## Figures", ""] + [f"- [{p}]({p})" for p in res["figures"]]
    return "\n".join(lines) + "\n"


def write_report(res: dict[str, Any], folder: str | os.PathLike) -> None:
    """Write ``results.json`` and ``report.md`` into an existing folder."""
    folder = Path(folder)
    (folder / "results.json").write_text(json.dumps(res, indent=1, allow_nan=False) + "\n")
    (folder / "report.md").write_text(render_markdown(res))


def run_evaluation(
    grid: Any,
    out: str | os.PathLike,
    *,
    model: Any = None,
    config: Any = None,
    contenders: Any = None,
    overwrite: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Evaluate and write ``out/`` (results.json, report.md, figures); nothing is left on failure.

    Arguments as for :func:`topoae.evaluation.evaluate`; ``out`` must not exist unless ``overwrite``.
    """
    from topoae.evaluation import EvaluateConfig, evaluate

    cfg = config or EvaluateConfig()
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        figs = (
            FigureWriter(tmp, patch=cfg.patch, max_plot_cells=cfg.max_plot_cells)
            if cfg.figures
            else None
        )
        res = evaluate(
            grid,
            model=model,
            config=cfg,
            contenders=contenders,
            progress=progress,
            on_result=figs.on_result if figs else None,
        )
        if figs is not None:
            figs.finish(res)
            res["figures"] = figs.paths
        write_report(res, tmp)
    return res
