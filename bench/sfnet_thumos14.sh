#!/usr/bin/env bash
# SF-Net table on synthetic THUMOS14-structured data with the real human clicks (4 annotator files):
# weak / SF-Net without expansion / SF-Net / full supervision, mAP@0.1..0.7 and average, 3 seeds.
#
#   bash bench/sfnet_thumos14.sh             # writes $OUT/sfnet_table.md; runs in $OUT/<variant>/seed<k>/
#   DIM=2048 HIDDEN=128 bash bench/sfnet_thumos14.sh   # the I3D width (~0.35 s per step: ~5 min per run, ~1 h;
#                                                      # bench/results/sfnet_table_2048.md)
#
# SCALED DOWN for a 2-core CPU (see bench/results/sfnet_table.md): the reference setting (D 2048, H = D/2,
# batch 32, crops of 750 / 2800 snippets, 4000 steps, expansion at 2000) takes ~13 s per step here.
# Defaults below: D 256 synthetic features with H = D/2 = 128 (the method's own ratio), batch 16, lr 1e-3,
# 800 steps with anchor expansion at step 400 (so SF-Net trains 400 steps after its re-initialisation;
# the learning curves plateau by ~400-500 steps at this setting), evaluation only at the end.
# Seeds: train.seed = data.point_seed = k (the annotator drawn per video changes with k).
# Rerunning continues: finished runs (predictions.json) are skipped, unfinished ones resumed.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTTAL=${POINTTAL:-pointtal}
PYTHON=${PYTHON:-python}
DIM=${DIM:-256}
DATA=${DATA:-/tmp/thumos_synth_$DIM}
OUT=${OUT:-/tmp/sfnet_thumos14}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-800}
EXPAND=${EXPAND:-$((STEPS / 2))}
HIDDEN=${HIDDEN:-null}   # null = D/2
LR=${LR:-1e-3}
BATCH=${BATCH:-16}

start=$SECONDS
"$POINTTAL" synth "$DATA" --preset thumos14 --dim "$DIM" --no-progress
echo "synth: $((SECONDS - start)) s"

CLICKS="[$DATA/points/annotator1.csv,$DATA/points/annotator2.csv,$DATA/points/annotator3.csv,$DATA/points/annotator4.csv]"
COMMON=(
  --set "data.annotations=$DATA/annotations.json" --set "data.features=$DATA/features"
  --set "method.hidden=$HIDDEN" --set "train.steps=$STEPS" --set "train.lr=$LR" --set "train.batch_size=$BATCH"
  --set train.eval_every=0 --set train.device=cpu --no-progress
)
# variant name | config | extra overrides
VARIANTS=(
  "weak|configs/thumos14_sfnet_weak.yaml|"
  "sfnet-noexpand|configs/thumos14_sfnet.yaml|--set data.points=$CLICKS --set method.expand=false"
  "sfnet|configs/thumos14_sfnet.yaml|--set data.points=$CLICKS --set method.expand_step=$EXPAND"
  "full|configs/thumos14_sfnet_full.yaml|"
)
for seed in $(seq 0 $((SEEDS - 1))); do
  for entry in "${VARIANTS[@]}"; do
    IFS='|' read -r name config extra <<< "$entry"
    run="$OUT/$name/seed$seed"
    if [ -f "$run/predictions.json" ]; then echo "$name seed $seed: finished, reused"; continue; fi
    resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
    start=$SECONDS
    mkdir -p "$OUT/logs"
    log="$OUT/logs/$name-seed$seed.log"
    # shellcheck disable=SC2086  # $extra is a list of --set words
    if ! "$POINTTAL" train "$config" --out "$run" "${COMMON[@]}" $extra \
        --set "train.seed=$seed" --set "data.point_seed=$seed" "${resume[@]}" > "$log" 2>&1; then
      echo "$name seed $seed: FAILED (log: $log)"; tail -n 3 "$log"; exit 1
    fi
    grep -E "pseudo frames|^$run: step" "$log" || true
    echo "$name seed $seed: $((SECONDS - start)) s"
  done
done

"$PYTHON" bench/seed_table.py "$OUT" "$SEEDS" sfnet_table.md "weak=weakly supervised (video labels)" \
  "sfnet-noexpand=SF-Net without anchor expansion" "sfnet=SF-Net" "full=fully supervised"
