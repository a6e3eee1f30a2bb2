#!/usr/bin/env bash
# Train (or resume) the learned codec's model on a lent GPU within ~7 minutes.
#
# Run on the device machine from the repository root, with the training data and
# the CPU run carried along (both are git-ignored):
#   run(command="bash benchmarks/gpu_train.sh", carry=["data_cache", "runs/rd"], timeout_s=540)
# data_cache/gebco15_tiles.npz comes from `python benchmarks/make_rd_data.py` (int16, plain
# numpy: the device's Python has torch and numpy but no zarr/netCDF4). It holds the same tiles
# as the `topoae tile --split-by-file` store a CPU run may have used; --data switches a resumed
# run to it. The device copies the tree, not this machine's venv: the trainer needs only torch
# and numpy. Checkpoints, metrics and the log go to $OUT/rd (fetch them back, then resume here
# with --resume).
set -euo pipefail
OUT="${OUT:-out}"
MINUTES="${MINUTES:-6.5}"
STEPS="${STEPS:-60000}"  # the cosine schedule's length; a resumed run continues towards it
mkdir -p "$OUT/rd"
if [ -f runs/rd/last.pt ]; then cp runs/rd/last.pt runs/rd/config.json runs/rd/metrics.csv "$OUT/rd/" 2>/dev/null || true; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# bf16 autocast on CUDA (GDN and likelihoods stay float32); a larger batch and crop suit an H100.
PYTHONPATH=. python -m topoae.training.rd --out "$OUT/rd" --device cuda --minutes "$MINUTES" \
    --data data_cache/gebco15_tiles.npz --split benchmarks/rd_split.json \
    --batch 64 --crop 256 --val-every 250 --steps "$STEPS" $( [ -f "$OUT/rd/last.pt" ] && echo --resume ) \
    2>&1 | tee "$OUT/rd/gpu_train.log"
