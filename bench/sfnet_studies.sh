#!/usr/bin/env bash
# SF-Net's studies (issue 22) on synthetic THUMOS14 / GTEA data with the real human clicks, 3 seeds:
#   sfnet-components on THUMOS14 and GTEA (one table each + a combined one), sfnet-points and
#   sfnet-sensitivity on THUMOS14.
#
#   bash bench/sfnet_studies.sh          # writes $OUT/table_*.md, $OUT/<dataset>/table_*.md (+ .json, .png)
#   DATA=/tmp/sf22 OUT=/tmp/sf22/out STEPS=400 bash bench/sfnet_studies.sh
#
# SCALED DOWN for a 2-core CPU shared by several jobs (see BENCHMARKS "SF-Net's studies (issue 22)"):
# D 256 synthetic features, H 64, batch 16, 400 steps with anchor expansion at step 200, lr 1e-3,
# evaluation only at the end; the three studies run side by side, one thread each, under nice.
# Rerunning continues: finished runs are reused, unfinished ones resumed, identical configs of another
# table (the SFBAE row = the random-annotator row = each knob's preset value) copied, not retrained.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTTAL=${POINTTAL:-pointtal}
DIM=${DIM:-256}
DATA=${DATA:-/tmp/sf22}
OUT=${OUT:-$DATA/out}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-400}
EXPAND=${EXPAND:-$((STEPS / 2))}
HIDDEN=${HIDDEN:-64}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

for preset in thumos14 gtea; do
  "$POINTTAL" synth "$DATA/$preset" --preset "$preset" --dim "$DIM" --no-progress > /dev/null
done

SCALE=(
  --set "method.hidden=$HIDDEN" --set "train.steps=$STEPS" --set "method.expand_step=$EXPAND"
  --set train.batch_size=16 --set train.lr=1e-3 --set train.eval_every=0 --set train.device=cpu
)
mkdir -p "$OUT"
start=$SECONDS
nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" --dataset thumos14 --table sfnet-sensitivity \
  --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" > "$OUT/sensitivity.log" 2>&1 &
sensitivity=$!
nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" "$DATA/gtea/train.yaml" --dataset thumos14,gtea \
  --table sfnet-components --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" > "$OUT/components.log" 2>&1 &
components=$!
nice -n 10 "$POINTTAL" ablate "$DATA/thumos14/train.yaml" --dataset thumos14 --table sfnet-points \
  --seeds "$SEEDS" --out "$OUT" "${SCALE[@]}" > "$OUT/points.log" 2>&1 &
points=$!
status=0
for job in $sensitivity $components $points; do wait "$job" || status=1; done
grep -h "^table\|^plot" "$OUT"/*.log
echo "all studies: $((SECONDS - start)) s (status $status)"
exit $status
