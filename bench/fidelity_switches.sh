#!/usr/bin/env bash
# Issue 19: the measured effect of LACP's and HR-Pro's fidelity switches (docs/methods.md §5.5, §6.5), one seed.
#
#   bash bench/fidelity_switches.sh          # runs in $OUT/<name>/, one line per run in $OUT/summary.md
#   bash bench/fidelity_switches.sh sfnet    # only SF-Net's switches (§2.6), seeds 0-2: $OUT/sfnet_summary.md
#   bash bench/fidelity_switches.sh select   # only the model-selection rows (§5.5, §6.5): $OUT/select_summary.md
#
# SF-Net: `pointtal synth --preset tiny` (36 short videos), its train.yaml with 300 steps and the expansion at
# step 150; each switch against the default, seeds 0, 1, 2.
# Model selection (LACP, HR-Pro stage 2): the default runs below again with in-run test evaluations
# (`train.eval_every`: LACP every 50 steps, HR-Pro every 40 = two stage-2 epochs); the best of them against the
# final weights' figure, which is what pointtal reports.
#
# SCALED DOWN for a shared 2-core CPU: `pointtal synth --preset thumos14 --dim 64` (the real THUMOS14 temporal
# structure and click files, synthetic features), every test video evaluated, lr 1e-3 (the presets' 1e-4 x 10).
# LACP: 200 steps of whole videos, hidden width 128. HR-Pro: 200 stage-1 steps at num_segments 256, then the
# official 20 stage-2 epochs at lr 5e-4. Each run changes one switch against the default run of its method;
# both methods read videos in `video_order=stream` (the measurements predate that switch's default) except
# the two `video_order=iterator` runs.
# Then `bench/fidelity_switches.py` sizes the HR-Pro switches on the default run's stage-1 weights.
# Runs whose predictions.json exists in $OUT are skipped: use a fresh OUT= after a code change, or the figures mix
# code versions.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTTAL=${POINTTAL:-pointtal}
PYTHON=${PYTHON:-python}
DATA=${DATA:-/tmp/fid/data}
OUT=${OUT:-/tmp/fid/runs}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
[ -f "$DATA/annotations.json" ] || "$POINTTAL" synth "$DATA" --preset thumos14 --dim 64 --no-progress
mkdir -p "$OUT"
common=(--no-progress --set "data.annotations=$DATA/annotations.json" --set "data.features=$DATA/features"
        --set "data.points=[$DATA/points/annotator1.csv,$DATA/points/annotator2.csv,$DATA/points/annotator3.csv,$DATA/points/annotator4.csv]"
        --set "data.exclude_videos=[]" --set train.steps=200 --set train.lr=1e-3 --set train.eval_every=0
        --set train.checkpoint_every=1000 --set train.report=false)

sfnet() {  # SF-Net's switches on synth tiny, three seeds
  local tiny=${TINY:-/tmp/fid/tiny} name seed
  [ -f "$tiny/train.yaml" ] || "$POINTTAL" synth "$tiny" --preset tiny --no-progress
  for seed in 0 1 2; do
    for name in default eta7:method.eta=7 logit:method.mining_score=logit walk:method.expand_stop_on_failure=false; do
      local tag=${name%%:*} set=()
      [ "$tag" != "$name" ] && set=(--set "${name#*:}")
      [ -f "$OUT/sf_${tag}_$seed/predictions.json" ] || "$POINTTAL" train "$tiny/train.yaml" --out "$OUT/sf_${tag}_$seed" \
        --no-progress --set train.steps=300 --set method.expand_step=150 --set train.seed=$seed "${set[@]}" \
        > "$OUT/sf_${tag}_$seed.log" 2>&1
      echo "sf_${tag}_$seed: $(grep -o 'avg=[0-9.]*' "$OUT/sf_${tag}_$seed.log" | tail -n 1)"
    done
  done | tee "$OUT/sfnet_summary.md"
}
if [ "${1:-}" = sfnet ]; then sfnet; exit 0; fi

run() {  # run NAME PRESET [--set ...]
  local name=$1 preset=$2; shift 2
  [ -f "$OUT/$name/predictions.json" ] && return
  "$POINTTAL" train "configs/$preset" --out "$OUT/$name" "${common[@]}" "$@" > "$OUT/$name.log" 2>&1
}
lacp=(--set method.hidden=128 --set method.video_order=stream)
hrpro=(--set method.num_segments=256 --set method.stage2_lr=5e-4 --set method.video_order=stream)
if [ "${1:-}" = select ]; then
  run lacp_select thumos14_lacp.yaml "${lacp[@]}" --set train.eval_every=50
  run hr_select2 thumos14_hrpro.yaml "${hrpro[@]}" --set train.eval_every=40
  for name in lacp_select hr_select2; do
    echo "$name: $(grep -o 'step [0-9]*: .*avg=[0-9.]*' "$OUT/$name.log" | sed 's/mAP@[^ ]* //g' | tr '\n' ';')"
  done | tee "$OUT/select_summary.md"
  exit 0
fi
run lacp_iterator thumos14_lacp.yaml "${lacp[@]}"
run lacp_immediate thumos14_lacp.yaml "${lacp[@]}" --set method.label_delay=immediate
run lacp_iterorder thumos14_lacp.yaml "${lacp[@]}" --set method.video_order=iterator
run hr_default thumos14_hrpro.yaml "${hrpro[@]}"
run hr_batchmem thumos14_hrpro.yaml "${hrpro[@]}" --set method.memory_update=batch
run hr_nodrop thumos14_hrpro.yaml "${hrpro[@]}" --set method.stage2_drop_last=false
run hr_centre thumos14_hrpro.yaml "${hrpro[@]}" --set method.ranking_point_time=centre
run hr_select_test thumos14_hrpro.yaml "${hrpro[@]}" --set method.stage1_selection=test --set train.eval_every=50
run hr_iterorder thumos14_hrpro.yaml "${hrpro[@]}" --set method.video_order=iterator
for name in lacp_iterator lacp_immediate lacp_iterorder hr_default hr_batchmem hr_nodrop hr_centre hr_select_test hr_iterorder; do
  echo "$name: $(grep -o 'avg=[0-9.]*' "$OUT/$name.log" | tail -n 1)"
done | tee "$OUT/summary.md"
"$PYTHON" bench/fidelity_switches.py "$OUT/hr_default" --videos 64 | tee -a "$OUT/summary.md"
