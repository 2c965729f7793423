#!/usr/bin/env bash
# The paper's pre-training ablation on the synthetic set: each variant pre-trains for the same
# number of steps, is then fine-tuned for video<->text retrieval the same way (as the paper
# fine-tunes on MSR-VTT), and is evaluated on the test split. Table in docs/TRAINING.md.
#
#   bash bench/ablations.sh SHARDS OUT [PRETRAIN_STEPS] [FINETUNE_EPOCHS]
#
# Variants: neither objective (fine-tuned from random weights), masked modelling only, audio
# matching only, both (VLSA), video-text matching in place of audio matching (+ masked modelling).
set -eu
shards=${1:?usage: bench/ablations.sh SHARDS OUT [PRETRAIN_STEPS] [FINETUNE_EPOCHS]}
out=${2:?}
steps=${3:-200}
epochs=${4:-1}
mkdir -p "$out"
common=(--manifest "$shards" --steps "$steps" --batch-size 32 --lr 1e-3 --warmup 50 --workers 1 --no-progress)
declare -A flags=([mm_only]="--matching none" [am_only]="--no-masked-modelling" [both]="" [vt_matching]="--matching video_text")
python -c "import sys; from vlsa import VLSA; VLSA.from_preset('tiny').save_pretrained(sys.argv[1])" "$out/neither/checkpoint"
for v in mm_only am_only both vt_matching; do
    # shellcheck disable=SC2086
    vlsa train "${common[@]}" --out "$out/$v" ${flags[$v]} 2>"$out/$v.log"
done
for v in neither mm_only am_only both vt_matching; do
    vlsa finetune --checkpoint "$out/$v/checkpoint" --manifest "$shards" --out "$out/$v-ft" --epochs "$epochs" \
        --batch-size 32 --lr 5e-4 --warmup 10 --workers 1 --eval-split "" --no-progress 2>"$out/$v-ft.log"
    vlsa eval --checkpoint "$out/$v-ft/checkpoint" --manifest "$shards" --split test --json >"$out/$v.json"
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| pre-training | text->video R@1 | R@5 | R@10 | MedR | video->text R@1 |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for v in ["neither", "mm_only", "am_only", "both", "vt_matching"]:
    r = json.loads((out / f"{v}.json").read_text())["results"]
    tv, vt = r["text->video"], r["video->text"]
    print(f"| {v} | {tv['R@1']:.1f} | {tv['R@5']:.1f} | {tv['R@10']:.1f} | {tv['MedR']:.0f} | {vt['R@1']:.1f} |")
PY
