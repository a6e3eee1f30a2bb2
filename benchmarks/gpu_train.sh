#!/usr/bin/env bash
# Train (or resume) the learned codec's model on a lent GPU within ~7 minutes.
#
# Run on the device machine from the repository root, with the training tiles (and, to resume,
# the run) carried along (both are git-ignored):
#   run(command="RUN=rd_gpu CONTEXT=checkerboard-channels4 bash benchmarks/gpu_train.sh",
#       carry=["data_cache/gpu"], timeout_s=540)
#   (the shipped architecture, 64 / 96 channels, its context trained jointly: decodes as fast as
#   the shipped model; the first choice, see benchmarks/results/learned_training.md, session 15)
#   run(command="RUN=rd_wide CHANNELS=128 LATENT=192 CONTEXT=checkerboard-channels4 bash benchmarks/gpu_train.sh",
#       carry=["data_cache/gpu"], timeout_s=540)
#   (wider: more capacity, but 2.6x slower to decode on a CPU)
# data_cache/gpu/gebco15_tiles.tpk comes from `python benchmarks/make_rd_data.py --pack`: the
# training and validation tiles, int16, packed losslessly (topoae.training.tilepack, 22 MB; the
# device's Python has torch and numpy but no zarr/netCDF4). The working tree and the carried paths
# share 64 MiB: the tracked tree is ~41 MB (the shipped weights are 30 MB of it), so the pack fits
# with ~3 MiB to spare. Check before a call:
#   echo $(( ($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb data_cache/gpu | cut -f1)) / 1048576 )) MiB
# (data_cache/gebco15_tiles.npz, 97 MB, and its np.savez_compressed form, 50 MB, no longer fit.)
# The device copies the tree, not this machine's venv: the trainer needs only torch and numpy.
# Metrics and the log go to $OUT/$RUN and come back. The checkpoints themselves are too large to come back (a device returns at most
# 8 files of 16 MiB; a wide network with its optimiser state is 100+ MB): the weights alone come
# back as $OUT/$RUN/weights_part*.pt + weights.json (benchmarks/split_weights.py; join them here
# with `python benchmarks/split_weights.py join DIR DIR/weights.pt`, then warm-start with --init),
# and the checkpoints are deleted from $OUT (only last.pt's weights: 8 files, 64 MiB come back).
# Resuming a run on the device needs runs/$RUN carried too, which the 64 MiB seldom allow: without
# it the script starts a fresh run (the shipped 9 levels) and says so; warm-start here from the
# returned weights.
#
# RUN=rd_wide CHANNELS=128 LATENT=192 CONTEXT=checkerboard-channels4 trains a wider network with
# the latent context jointly, from scratch (or resumes runs/$RUN): a GPU's minutes are worth
# days of the CPU, which cannot train such a network (the shipped one has 64 / 96 channels and
# a context trained afterwards on frozen transforms; wider transforms decode slower on a CPU).
set -euo pipefail
OUT="${OUT:-out}"
RUN="${RUN:-rd}"
MINUTES="${MINUTES:-6.5}"
STEPS="${STEPS:-60000}"  # the cosine schedule's length; a resumed run continues towards it
DEVICE="${DEVICE:-cuda}"
# the tiles: the packed training and validation tiles (DATA=data_cache/gebco15_tiles.npz on a
# machine that holds it)
DATA="${DATA:-data_cache/gpu/gebco15_tiles.tpk}"
fresh=()  # the network of a fresh run (a resumed one keeps its own)
[ -n "${CHANNELS:-}" ] && fresh+=(--channels "$CHANNELS")
[ -n "${LATENT:-}" ] && fresh+=(--latent-channels "$LATENT")
[ -n "${CONTEXT:-}" ] && fresh+=(--context "$CONTEXT")
# runs/$RUN/last.pt and config.json carried: resume (its network and levels; network options are ignored);
# else a fresh run with the shipped model's 9 levels (the trainer's default ladder has 8: no 0.19)
resume=()
if [ -f "runs/$RUN/last.pt" ] && [ -f "runs/$RUN/config.json" ]; then
    resume=(--resume)
    [ ${#fresh[@]} -gt 0 ] && echo "resuming runs/$RUN: its own network; ignoring ${fresh[*]}"
    fresh=()
else
    fresh+=(--lambdas "${LAMBDAS:-0.19,0.6,1.9,5.9,18.4,58,181,570,1800}")
    echo "a fresh run of $RUN (no runs/$RUN/last.pt here to resume): ${fresh[*]}"
fi
# VAL_EVERY: steps between validations (and best.pt); a short smoke run can lower it
VAL_EVERY="${VAL_EVERY:-250}"
mkdir -p "$OUT/$RUN"
if [ ${#resume[@]} -gt 0 ]; then
    cp "runs/$RUN/last.pt" "runs/$RUN/config.json" "$OUT/$RUN/"
    cp "runs/$RUN/metrics.csv" "$OUT/$RUN/" 2>/dev/null || true
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# bf16 autocast on CUDA (GDN and likelihoods stay float32); a larger batch and crop suit an H100.
status=0
PYTHONPATH=. python -m topoae.training.rd --out "$OUT/$RUN" --device "$DEVICE" --minutes "$MINUTES" \
    --data "$DATA" --split benchmarks/rd_split.json \
    --batch 64 --crop 256 --val-every "$VAL_EVERY" --steps "$STEPS" \
    ${resume[@]+"${resume[@]}"} ${fresh[@]+"${fresh[@]}"} \
    2>&1 | tee "$OUT/$RUN/gpu_train.log" || status=$?
# the weights alone, in parts that come back (also after a failed run, if it saved any); the
# checkpoints stay behind. config.json, metrics.csv, gpu_train.log and weights.json leave room
# for 4 parts of the 8 files a device returns.
if [ -f "$OUT/$RUN/last.pt" ]; then
    PYTHONPATH=. python benchmarks/split_weights.py split "$OUT/$RUN/last.pt" "$OUT/$RUN" --max-mib 15 --max-parts 4 \
        || { echo "split_weights failed: no weights come back (a network over 4 parts of 15 MiB?)" >&2
             [ "$status" -ne 0 ] || status=1; }
fi
rm -f "$OUT/$RUN/last.pt" "$OUT/$RUN/best.pt"
exit "$status"
