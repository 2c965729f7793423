#!/usr/bin/env bash
# Every GPU figure of docs/PERFORMANCE.md in one run (a device lease is short, compiles are not).
#
#   bash bench/gpu.sh OUT_DIR [BASE_SHARDS]
#   SKIP="eager memory" DEADLINE=540 bash bench/gpu.sh OUT_DIR    # leave some out, end in 540 s
#
# OUT_DIR gets one JSON per measurement, most important first; stdout has them all too, and a
# table of them at the end, so a run cut short still reports what it finished. BASE_SHARDS: shards
# made with --preset base (loader). DEADLINE: seconds; each step's time limit is cut to what is left.
set -u
out=${1:?usage: bench/gpu.sh OUT_DIR [BASE_SHARDS]}
shards=${2:-}
py=${PYTHON:-python3}
end=$(( SECONDS + ${DEADLINE:-100000} ))
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

step() {  # step NAME TIMEOUT SCRIPT ARGS...: one measurement, its JSON in OUT_DIR/NAME.json
    local name=$1 limit=$2 script=$3; shift 3
    if [[ " ${SKIP:-} " == *" $name "* ]]; then return; fi
    local left=$(( end - SECONDS - 5 ))
    if (( left < 30 )); then echo "== $name: skipped, ${left}s left"; return; fi
    (( limit > left )) && limit=$left
    echo "== $name: $script $* (limit ${limit}s, $(date +%T))"
    timeout "$limit" $py "$script" "$@" --out "$out/$name.json" || echo "== $name: failed or timed out"
}

# The step at `base`, in the order of what matters most: the fastest step (whole-model compile, bf16
# residual stream, the largest batch; with the reference and a profile), the same with float32
# residuals, regional compile (`vlsa train --compile`) with and without. Inductor's autotuned matmul
# templates (--compile-mode max-autotune-no-cudagraphs) lost to cuBLAS on every shape (2026-11-27).
step model_bf16res 260 bench/train_step.py --preset base --batch 72 --steps 8 --warmup 2 --compile model --bf16-residual --profile
step model 260 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile model --profile
step model_b72 200 bench/train_step.py --preset base --batch 72 --steps 8 --warmup 2 --compile model --no-reference
step blocks 90 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile blocks --no-reference
step blocks_bf16res 90 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2 --compile blocks --no-reference --bf16-residual
step eager 120 bench/train_step.py --preset base --batch 64 --steps 8 --warmup 2
step memory 150 bench/train_step.py --preset base --max-batch --check-sync --batch 64
step memory_bf16res 150 bench/train_step.py --preset base --max-batch --bf16-residual
step attention 90 bench/attention.py --preset base --batch 128
if [ -n "$shards" ]; then
    step loader 120 bench/loader.py "$shards" --preset base --workers 1 4 8 16 --seconds 6 --gpu-jpeg
fi
step memory_ckpt 180 bench/train_step.py --preset base --max-batch --checkpointing
echo "== done ($(date +%T))"
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
print(f"{'run':<16} {'batch':>5} {'samples/s':>9} {'MFU':>6} {'MFU layers':>10} {'ref MFU':>7} {'first s':>7}")
for f in sorted(Path(sys.argv[1]).glob("*.json")):
    r = json.loads(f.read_text())
    if "vlsa" in r:
        v = r["vlsa"]
        print(f"{f.stem:<16} {r['batch']:>5} {v['samples_per_s']:>9} {v['mfu']:>6} {v.get('mfu_layers_only', ''):>10} "
              f"{r.get('reference', {}).get('mfu', ''):>7} {r.get('first_step_s', ''):>7}")
    if "profile" in r:
        print(f"  profile {f.stem}: {json.dumps({k: r['profile'][k] for k in ('wall_ms', 'kernel_ms', 'busy', 'by_kind_ms')})}")
PY
