#!/usr/bin/env bash
# SF-Net's studies (issue 22) on synthetic THUMOS14 / GTEA / BEOID data with the real human clicks, 3 seeds:
#   sfnet-components on THUMOS14, GTEA and BEOID (one table each + a combined one), on THUMOS14 sfnet-consensus
#   (consensus file vs random annotator: first, so it has all its seeds early), sfnet-points and
#   sfnet-sensitivity (then bench/sfnet_sensitivity_plot.py draws one figure of the five knobs).
#
#   bash bench/sfnet_studies.sh          # writes $OUT/table_*.md, $OUT/<dataset>/table_*.md (+ .json, .png)
#   DATA=/tmp/sf22 OUT=/tmp/sf22/out STEPS=600 BATCH=16 bash bench/sfnet_studies.sh
#
# SCALED DOWN for a 2-core CPU shared by several jobs (see BENCHMARKS "SF-Net's studies (issue 22)"):
# D 256 synthetic features, H 64, batch 8, 300 steps with anchor expansion at step 150, lr 1e-3,
# evaluation only at the end; the three studies run side by side, one thread each, under nice.
# Rerunning continues: finished runs are reused, unfinished ones resumed, identical configs of another
# table (the SFBAE row = the random-annotator row = each knob's preset value) copied, not retrained.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTTAL=${POINTTAL:-pointtal}
PYTHON=${PYTHON:-python}
DIM=${DIM:-256}
DATA=${DATA:-/tmp/sf22}
OUT=${OUT:-$DATA/out}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-300}
BATCH=${BATCH:-8}
EXPAND=${EXPAND:-$((STEPS / 2))}
HIDDEN=${HIDDEN:-64}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

for preset in thumos14 gtea beoid; do
  [ -f "$DATA/$preset/train.yaml" ] || "$POINTTAL" synth "$DATA/$preset" --preset "$preset" --dim "$DIM" --no-progress > /dev/null
done

SCALE=(
  --set "method.hidden=$HIDDEN" --set "train.steps=$STEPS" --set "method.expand_step=$EXPAND"
  --set "train.batch_size=$BATCH" --set train.lr=1e-3 --set train.eval_every=0 --set train.device=cpu
)
mkdir -p "$OUT"
start=$SECONDS
# three chains side by side, one thread each
nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" "$DATA/gtea/train.yaml" "$DATA/beoid/train.yaml" \
  --dataset thumos14,gtea,beoid \
  --table sfnet-components --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" > "$OUT/components.log" 2>&1 &
components=$!
( nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" --dataset thumos14 --table sfnet-consensus \
    --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" &&
  nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" --dataset thumos14 --table sfnet-points \
    --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" ) > "$OUT/points.log" 2>&1 &
points=$!
nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" --dataset thumos14 --table sfnet-sensitivity \
  --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" > "$OUT/sensitivity.log" 2>&1 &
sensitivity=$!
status=0
for job in $components $points $sensitivity; do wait "$job" || status=1; done
grep -h "^table\|^plot" "$OUT"/*.log
"$PYTHON" bench/sfnet_sensitivity_plot.py "$OUT/thumos14" "$OUT/sfnet_sensitivity.png"
echo "all studies: $((SECONDS - start)) s (status $status)"
exit $status
