"""Bytes of the learned codec's correction streams: zstd against the context coder.

    python benchmarks/correction_coding.py [--model PATH] [--out benchmarks/results]

On the held-out 15″ test tiles of ``benchmarks/rd_split.json`` and the Suruga Bay tile,
the shipped model's reconstructions give the integer grids the codec stores beside
its latents: the sparse outlier corrections (levels 1, 3, 6, at the current
threshold) and the error-bounded residual (5, 10, 25 m, at the level the encoder would
pick). Each grid is coded four ways, as ``topoae.codec.residual`` can: zstd of the grid,
zstd of its Lorenzo difference (the format-2 choice: the smaller of the two), the
context coder (:mod:`topoae.codec.context_coder`), (format 6) the context coder primed
with counts fitted on training tiles, and (format 7) each of the two with its escapes in an
Exp-Golomb frame where that is smaller. The grids are those of format 7 (against the
loop-filtered synthesis). Also the time of the context coder per 512² tile,
both ways. Writes ``correction_coding.json`` and ``.md`` under --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def grids(rd, grid) -> dict[str, np.ndarray]:
    """The correction grids of one region, by name."""
    from topoae.codec import learned

    x = np.asarray(grid.values, np.float64)
    out = {}
    for lev in (1, 3, 6):
        h, s = learned.encode(grid, rd, level=lev, outliers=False)
        base = learned.decode(h, s, rd).values.astype(np.float64)
        cfg = learned.RDCodecConfig(**{**h["codec"], "outlier_bits": learned.OUTLIER_BITS})
        step = learned.outlier_step(rd, cfg)
        e = np.where(np.isfinite(x), x - base.astype(np.float32).astype(np.float64), 0.0)
        out[f"outliers L{lev}"] = np.where(np.abs(e) > step, np.rint(e / step), 0).astype(np.int64)
    for bound in (5.0, 10.0, 25.0):
        sizes = [len(learned.to_bytes(*learned.encode(grid, rd, level=lev, max_error=bound)))
                 for lev in range(rd.levels)]
        lev = int(np.argmin(sizes))
        h, s = learned.encode(grid, rd, level=lev, outliers=False)
        base = learned.decode(h, s, rd).values.astype(np.float64)
        step = 2 * int(bound) + 1
        out[f"residual {bound:g} m"] = np.where(np.isfinite(x), np.rint((x - np.rint(base)) / step),
                                                0).astype(np.int64)
    return out


def main() -> None:
    import torch

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import context_coder, learned
    from topoae.codec import residual as res
    from topoae.io import open_grid
    from topoae.zoo import default_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rd = learned.as_rd_model(load_checkpoint(a.model or default_model_path()))
    data = REPO.parent / "shared" / "data" / "gebco_15s"
    split = json.loads((REPO / "benchmarks" / "rd_split.json").read_text())
    paths = [data / "tiles" / f"{n}.nc" for n in split["test"]]
    paths.append(data / "gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc")
    totals: dict[str, list[int]] = {}
    times: list[tuple[float, float, int]] = []
    done = 0
    for p in paths:
        if not p.exists():
            print(f"skip {p.name}: missing")
            continue
        done += 1
        for name, q in grids(rd, open_grid(p).load()).items():
            zstd = min(len(res.encode_ints(q)), len(res.encode_ints(res.lorenzo(q))))
            t0 = time.perf_counter()
            blob = context_coder.encode(q)
            t1 = time.perf_counter()
            back = context_coder.decode(blob, q.shape)
            t2 = time.perf_counter()
            assert np.array_equal(back, q)
            primed = context_coder.encode(q, primed=True)
            assert np.array_equal(context_coder.decode(primed, q.shape, primed=True), q)
            escaped = []
            for pr in (False, True):
                g, frame = context_coder.encode_best(q, primed=pr)
                assert np.array_equal(context_coder.decode(frame, q.shape, primed=pr, golomb_escapes=g), q)
                escaped.append(len(frame))
            times.append((t1 - t0, t2 - t1, q.size))
            t = totals.setdefault(name, [0, 0, 0, 0, 0])
            t[0] += zstd
            t[1] += len(blob)
            t[2] += len(primed)
            t[3] += min(escaped)
            t[4] += min(zstd, len(blob), len(primed), *escaped)
        print(p.stem, {k: v[:2] for k, v in totals.items()}, flush=True)
    cells = sum(n for _, _, n in times)
    result = {"date": dt.date.today().isoformat(), "model_id": rd.model_id,
              "machine": f"{platform.machine()}, 1 thread", "regions": done, "totals": totals,
              "context_encode_mcells_s": cells / sum(e for e, _, _ in times) / 1e6,
              "context_decode_mcells_s": cells / sum(d for _, d, _ in times) / 1e6}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "correction_coding.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"## Correction streams: zstd against the context coder, plain, primed and with Exp-Golomb escapes ({result['date']})", "",
             f"Model `{rd.model_id[:16]}`, {done} regions (held-out 15″ test tiles and Suruga "
             "Bay, each one codec tile, so one stream per grid), summed bytes of each kind of correction grid "
             "(format 7's: against the loop-filtered synthesis). zstd: the smaller of the grid and its "
             "Lorenzo difference (what format 2 stored); context: `topoae.codec.context_coder`; primed: "
             "the same coder starting from counts fitted on training tiles (format 6); escapes: the "
             "smaller of the two with the escapes in an Exp-Golomb frame where that is smaller "
             "(format 7); the codec keeps the smallest per stream. "
             "`python benchmarks/correction_coding.py`.", "",
             "| stream | zstd | context | primed | + Exp-Golomb escapes | kept (smallest) | saved against zstd |",
             "|---|---|---|---|---|---|---|"]
    for name, (z, c, pr, ge, k) in totals.items():
        lines.append(f"| {name} | {z:,} | {c:,} | {pr:,} | {ge:,} | {k:,} | {100 * (1 - k / z):.0f} % |")
    lines += ["", f"Context coder speed, one thread ({result['machine']}): encode "
              f"{result['context_encode_mcells_s']:.1f}, decode {result['context_decode_mcells_s']:.1f} "
              "Mcells/s (per cell of the grid, zero or not).", ""]
    (a.out / "correction_coding.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
