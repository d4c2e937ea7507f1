#!/usr/bin/env bash
# The field's point-supervised methods side by side on synthetic THUMOS14-structured data with simulated
# Gaussian points (one point per instance, std 0.01 x its length: the LACP / HR-Pro ActivityNet protocol):
# weak (video labels only), SF-Net, SODA, LACP, HR-Pro, and HR-Pro pseudo labels -> fully supervised SF-Net.
# mAP@0.1..0.7 and average on the test subset, 3 seeds (train.seed = data.point_seed = k).
#
#   bash bench/point_methods_thumos14.sh        # writes $OUT/point_methods_table.md; runs in $OUT/<variant>/seed<k>/
#   FIRST_SEED=2 SEEDS=3 VARIANTS=hrpro bash bench/point_methods_thumos14.sh   # one seed (parallel streams)
#
# SCALED DOWN for a 2-core CPU, one budget for every method: D 256 synthetic features, hidden width 128,
# batch 16, lr 1e-3, 600 optimisation steps (SF-Net: anchor expansion at 300; SODA / LACP: videos resampled to
# 256 snippets, the mean length is 324; LACP and HR-Pro by their official random_perturb, as their
# num_segments option does: the official setting is whole videos). HR-Pro: its stage 1 gets the same 600 steps, then its stage 2
# (proposal level) the official 20 epochs at batch 10 (400 steps of a much smaller network) at lr 5e-4 (the
# official 5e-5, scaled x10 like every stage-1 lr here). The pseudo-label
# row trains `full` SF-Net for 600 steps on HR-Pro's predicted segments of the training videos.
# Rerunning continues: finished runs (predictions.json) are skipped, unfinished ones resumed.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTTAL=${POINTTAL:-pointtal}
PYTHON=${PYTHON:-python}
DIM=${DIM:-256}
DATA=${DATA:-/tmp/thumos_synth_$DIM}
OUT=${OUT:-/tmp/point_methods_thumos14}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-600}
VARIANTS_WANTED=${VARIANTS:-weak sfnet soda lacp hrpro hrpro-full}

[ -f "$DATA/annotations.json" ] || "$POINTTAL" synth "$DATA" --preset thumos14 --dim "$DIM" --no-progress

COMMON=(
  --set "data.annotations=$DATA/annotations.json" --set "data.features=$DATA/features"
  --set "train.lr=1e-3" --set "train.batch_size=16" --set train.eval_every=0 --set train.device=cpu
  --set train.report=false --set "data.exclude_videos=[]" --set data.ambiguous=null --no-progress
)
STEPS_ONLY=(--set train.epochs=null --set "train.steps=$STEPS")
declare -A CONFIG EXTRA
CONFIG[weak]=configs/thumos14_sfnet_weak.yaml
EXTRA[weak]="--set method.hidden=128 ${STEPS_ONLY[*]}"
CONFIG[sfnet]=configs/thumos14_sfnet.yaml
EXTRA[sfnet]="--set data.points=gaussian --set method.hidden=128 --set method.expand_step=$((STEPS / 2)) ${STEPS_ONLY[*]}"
CONFIG[soda]=configs/thumos14_soda.yaml
EXTRA[soda]="--set data.points=gaussian --set method.hidden=128 --set method.resample_t=256 ${STEPS_ONLY[*]}"
CONFIG[lacp]=configs/thumos14_lacp.yaml
EXTRA[lacp]="--set data.points=gaussian --set method.hidden=128 --set method.num_segments=256 ${STEPS_ONLY[*]}"
CONFIG[hrpro]=configs/thumos14_hrpro.yaml
EXTRA[hrpro]="--set data.points=gaussian --set method.num_segments=256 --set method.stage2_lr=5e-4 ${STEPS_ONLY[*]}"
CONFIG[hrpro-full]=configs/thumos14_sfnet_full.yaml
EXTRA[hrpro-full]="--set method.hidden=128 ${STEPS_ONLY[*]}"   # + data.annotations=<pseudo labels>, below

mkdir -p "$OUT/logs"
for seed in $(seq "${FIRST_SEED:-0}" $((SEEDS - 1))); do
  for name in $VARIANTS_WANTED; do
    run="$OUT/$name/seed$seed"
    if [ -f "$run/predictions.json" ]; then echo "$name seed $seed: finished, reused"; continue; fi
    extra=${EXTRA[$name]}
    if [ "$name" = hrpro-full ]; then
      pseudo="$OUT/hrpro/seed$seed/pseudo_labels.json"
      [ -f "$pseudo" ] || "$POINTTAL" predict "$OUT/hrpro/seed$seed" --pseudo-labels "$pseudo" --subset validation \
        --no-progress > "$OUT/logs/pseudo-seed$seed.log" 2>&1
      extra="$extra --set data.annotations=$pseudo"
    fi
    resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
    start=$SECONDS
    log="$OUT/logs/$name-seed$seed.log"
    # shellcheck disable=SC2086  # $extra is a list of --set words
    if ! "$POINTTAL" train "${CONFIG[$name]}" --out "$run" "${COMMON[@]}" $extra \
        --set "train.seed=$seed" --set "data.point_seed=$seed" "${resume[@]}" > "$log" 2>&1; then
      echo "$name seed $seed: FAILED (log: $log)"; tail -n 3 "$log"; exit 1
    fi
    echo "$name seed $seed: $((SECONDS - start)) s"
  done
done

"$PYTHON" bench/seed_table.py "$OUT" "$SEEDS" point_methods_table.md "weak=weak (video labels only)" \
  "sfnet=SF-Net" "soda=SODA" "lacp=LACP" "hrpro=HR-Pro" "hrpro-full=HR-Pro pseudo labels -> full SF-Net"
