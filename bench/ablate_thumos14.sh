#!/usr/bin/env bash
# SODA Tables 4 and 5 (component study, point-kind study) on synthetic THUMOS14-structured data, 3 seeds.
#
#   bash bench/ablate_thumos14.sh            # writes $OUT/table_4.md, $OUT/table_5.md (+ .json, runs)
#   DATA=/tmp/thumos_synth OUT=/tmp/ablate_thumos14 STEPS=600 bash bench/ablate_thumos14.sh
#
# SCALED DOWN for a 2-core CPU (see bench/results/soda_tables.md): the paper setting (D 2048, T 750,
# H 2048, batch 16, 150 epochs) is hours per run here. This script uses D 256 synthetic features,
# T 256, H 128, 600 steps (= 48 epochs of the 200 training videos) at lr 1e-3, evaluation only at the end.
# Rerunning continues an interrupted ablation (finished runs are reused, unfinished ones resumed).
set -euo pipefail
cd "$(dirname "$0")/.."

POINTTAL=${POINTTAL:-pointtal}
DATA=${DATA:-/tmp/thumos_synth}
OUT=${OUT:-/tmp/ablate_thumos14}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-600}
LR=${LR:-1e-3}

start=$SECONDS
"$POINTTAL" synth "$DATA" --preset thumos14 --dim 256 --no-progress
echo "synth: $((SECONDS - start)) s"

SCALE=(
  --set "data.annotations=$DATA/annotations.json" --set "data.features=$DATA/features"
  --set method.hidden=128 --set method.resample_t=256
  --set train.epochs=null --set "train.steps=$STEPS" --set "train.lr=$LR"
  --set train.eval_every=0 --set train.device=cpu
)
for table in 4 5; do
  start=$SECONDS
  "$POINTTAL" ablate configs/thumos14_soda.yaml --table "$table" --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}"
  echo "table $table: $((SECONDS - start)) s"
done
