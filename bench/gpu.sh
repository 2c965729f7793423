#!/usr/bin/env bash
# Every GPU figure of docs/PERFORMANCE.md in one run (a device lease is short, compiles are not).
#
#   bash bench/gpu.sh OUT_DIR [BASE_SHARDS]
#
# OUT_DIR gets one JSON per measurement, most important first; stdout has them all too, so a run
# cut short still reports what it finished. BASE_SHARDS: shards made with --preset base (loader).
set -u
out=${1:?usage: bench/gpu.sh OUT_DIR [BASE_SHARDS]}
shards=${2:-}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

step() {  # step NAME TIMEOUT SCRIPT ARGS...: one measurement, its JSON in OUT_DIR/NAME.json
    local name=$1 limit=$2 script=$3; shift 3
    if [[ " ${SKIP:-} " == *" $name "* ]]; then return; fi  # SKIP="attention loader" to leave out
    echo "== $name: $script $* ($(date +%T))"
    timeout "$limit" $py "$script" "$@" --out "$out/$name.json" || echo "== $name: failed or timed out"
}

# The step at `base`: the default model, then the variants docs/PERFORMANCE.md compares: whole-model
# compile, MAE's 16 decoder heads of 32, and those with a key-masked decoder (the model until 2026-11-27).
step blocks 200 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile blocks
step model 240 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile model --no-reference
step blocks_h16 150 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile blocks --no-reference --set decoder.heads=16
step blocks_h16_keymask 150 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile blocks --no-reference --set decoder.heads=16 --set decoder.key_mask=true
step eager 120 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2
step memory 150 bench/train_step.py --preset base --max-batch --check-sync --batch 64
step attention 90 bench/attention.py --preset base --batch 128
if [ -n "$shards" ]; then
    step loader 120 bench/loader.py "$shards" --preset base --workers 1 4 8 16 --seconds 6 --gpu-jpeg
fi
step memory_ckpt 180 bench/train_step.py --preset base --max-batch --checkpointing
echo "== done ($(date +%T))"
