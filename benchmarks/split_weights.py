"""Split a training checkpoint's weights into files small enough to come back from a device
machine, and join them into a checkpoint again.

A lent GPU returns at most 8 files of 16 MiB from ``$OUT``: a wide network's checkpoint with
its optimiser state (100+ MB) does not come back. ``split`` writes the weights alone (float32,
no optimiser state), in parts of at most ``--max-mib``, with the run's training config and step;
``join`` rebuilds a checkpoint that ``python -m topoae.training.rd --init`` warm-starts from
(Adam starts afresh) and that the benchmarks load.

    python benchmarks/split_weights.py split runs/rd_wide/last.pt $OUT/rd_wide --max-mib 15
    python benchmarks/split_weights.py join runs/rd_wide_gpu runs/rd_wide_gpu/weights.pt

Needs torch and the repository on ``PYTHONPATH`` (the device machine has both).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PREFIX = "weights_part"


def split(ckpt: Path, out: Path, max_mib: float, max_parts: int | None = None) -> list[Path]:
    from topoae.checkpoint import read_checkpoint

    payload, model_id = read_checkpoint(ckpt)
    limit = int(max_mib * 2**20)
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in payload["model"].items():
        n = v.numel() * v.element_size()
        if n > limit:
            raise SystemExit(f"Error: {k} alone ({n / 2**20:.1f} MiB) is over --max-mib")
        if size + n > limit and parts[-1]:
            parts.append({})
            size = 0
        parts[-1][k] = v.contiguous().clone()
        size += n
    if max_parts is not None and len(parts) > max_parts:
        raise SystemExit(f"Error: the weights need {len(parts)} parts of {max_mib} MiB, more than "
                         f"--max-parts {max_parts} (a device returns 8 files of 16 MiB)")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(parts):
        p = out / f"{PREFIX}{i}.pt"
        torch.save(part, p)
        paths.append(p)
    meta = {"config": payload["config"], "source": model_id, "parts": len(parts),
            "step": (payload.get("state") or {}).get("step", (payload.get("extra") or {}).get("step"))}
    (out / "weights.json").write_text(json.dumps(meta, indent=1, default=str))
    print(f"{len(parts)} parts of at most {max_mib} MiB in {out} (step {meta['step']})")
    return paths


def join(folder: Path, out: Path) -> None:
    from topoae.checkpoint import save_checkpoint
    from topoae.models.hyperprior import HyperpriorModel
    from topoae.training.rd import RDTrainConfig

    meta = json.loads((folder / "weights.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for i in range(int(meta["parts"])):
        state.update(torch.load(folder / f"{PREFIX}{i}.pt", weights_only=True))
    cfg = RDTrainConfig.from_dict(meta["config"])
    net = HyperpriorModel(cfg.model)
    net.load_state_dict(state)
    save_checkpoint(out, net, cfg, normalise={"mode": "offset-field"},
                    extra={"step": meta["step"], "joined_from": meta["source"]})
    print(f"wrote {out} (step {meta['step']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("ckpt", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--max-mib", type=float, default=15.0)
    s.add_argument("--max-parts", type=int, default=None)
    j = sub.add_parser("join")
    j.add_argument("folder", type=Path)
    j.add_argument("out", type=Path)
    a = ap.parse_args()
    if a.cmd == "split":
        split(a.ckpt, a.out, a.max_mib, a.max_parts)
    else:
        join(a.folder, a.out)


if __name__ == "__main__":
    main()
