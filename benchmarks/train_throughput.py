"""Training and inference throughput (patches/s) of each model and preset.

Times the trainer's real optimisation step (forward, loss, backward, clipping,
Adam; the discriminator step too for the VAE-GAN) and deterministic
inference (``decode(encode(x).mu)``) on random 96x96 patches, so the figures
measure compute only (data loading is not included).

    python benchmarks/train_throughput.py --threads 1 --device cpu
    python benchmarks/train_throughput.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

CASES = [
    ("ae", "thesis", None),
    ("vae", "thesis", None),
    ("vae-gan", "thesis", None),
    (
        "dfc-vae",
        "thesis",
        "vgg19-random",
    ),  # the thesis used ImageNet VGG19: same network, same cost
    ("ae", "default", None),
    ("vae", "default", None),
    ("dfc-vae", "default", "terrain"),
    ("vae-gan", "default", None),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    kind: str,
    preset_name: str,
    feature: str | None,
    *,
    device: str,
    batch: int,
    steps: int,
    channels_last: bool,
) -> dict[str, float]:
    from topoae.data.normalise import Normalisation
    from topoae.training import preset
    from topoae.training.evaluate import reconstruct
    from topoae.training.trainer import Trainer

    over = {"batch_size": batch, "normalise": None}
    if feature:
        over["loss"] = {"feature_net": feature}
    cfg = preset(kind, preset_name, **over)
    data = [
        {
            "x": torch.rand(1, 96, 96),
            "offset": torch.tensor(0.0, dtype=torch.float64),
            "scale": torch.tensor(1.0, dtype=torch.float64),
        }
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(
            cfg,
            data,
            None,
            Path(tmp),
            normalise=Normalisation(),
            device=device,
            channels_last=channels_last,
        )
    dev = tr.device
    x = torch.rand(batch, 1, 96, 96)
    batch_dict = {"x": x}
    kl_w = cfg.loss.kl_weight(10)
    times = []
    for i in range(steps + 2):
        _sync(dev)
        t = time.perf_counter()
        tr._train_step(batch_dict, kl_w)
        _sync(dev)
        if i >= 2:
            times.append(time.perf_counter() - t)
    model = tr.model.eval()
    xi = tr._to(torch.rand(max(batch, 64), 1, 96, 96))
    inf = []
    for i in range(steps + 2):
        _sync(dev)
        t = time.perf_counter()
        with tr._autocast():
            reconstruct(model, xi)
        _sync(dev)
        if i >= 2:
            inf.append(time.perf_counter() - t)
    return {
        "train_pps": batch / statistics.median(times),
        "infer_pps": xi.shape[0] / statistics.median(inf),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help="kind:preset pairs to run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
        f"device {args.device}, batch {args.batch}, channels_last {not args.no_channels_last}"
    )
    print("| model | preset | feature net | train patches/s | inference patches/s |")
    print("|---|---|---|---|---|")
    for kind, preset_name, feature in CASES:
        if args.only and f"{kind}:{preset_name}" not in args.only:
            continue
        r = measure(
            kind,
            preset_name,
            feature,
            device=args.device,
            batch=args.batch,
            steps=args.steps,
            channels_last=not args.no_channels_last,
        )
        print(
            f"| {kind} | {preset_name} | {feature or '-'} | {r['train_pps']:.1f} | {r['infer_pps']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
