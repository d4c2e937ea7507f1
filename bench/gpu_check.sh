#!/usr/bin/env bash
# GPU readiness in one go (under 8 minutes on one H200): the CUDA tests, training speed, predict speed and
# (when `pointtal extract` exists) extract speed, written as one markdown table to paste into BENCHMARKS.md.
#
#   bash bench/gpu_check.sh [OUT_DIR]             # OUT_DIR default: $OUT, else bench/results
#   bash bench/gpu_check.sh --dry-run [OUT_DIR]   # CPU, tiny shapes: checks the script itself, no GPU needed
#
# Writes OUT_DIR/gpu_check.md (the table and each step's output) and OUT_DIR/gpu_check/*.log; exits non-zero
# when a step fails (the table still lists every step). PYTHON (default: .venv/bin/python, else python3)
# runs everything from the repository root.
set -uo pipefail

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="${1:-${OUT:-$ROOT/bench/results}}"
LOGS="$OUT_DIR/gpu_check"
mkdir -p "$LOGS"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
DATA="${DATA:-/tmp/pointtal_gpu_check_th14}"

SCALE=1  # timeouts below are for one H200; the CPU dry run on a shared 2-core machine gets 4x
if (( DRY )); then
  SCALE=4; DEVICE=cpu; AMP=""; TRAIN_ARGS=(--t 64 --dim 256 --steps 1 --warmup 0 --loss-reps 1)
  SYNTH_DIM=256; PREDICT_ARGS=(--every 16 --hidden 64 --repeats 1); DATA="${DATA}_dry"
  DETECTOR_T=(64 256)
else
  DEVICE=cuda; AMP=--amp; TRAIN_ARGS=(--steps 3 --warmup 1 --loss-reps 3)
  SYNTH_DIM=2048; PREDICT_ARGS=(--every 1 --hidden 1024 --repeats 3)
  DETECTOR_T=(2304 20000)  # ActionFormer's reference clip, and a long video: peak memory must stay linear in T
fi

ROWS=()
FAILED=0
# step NAME TIMEOUT_S CMD...: run CMD with a timeout, log to $LOGS/NAME.log, add a table row
step() {
  local name="$1" limit=$(( $2 * SCALE )); shift 2
  local started=$SECONDS
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  local took=$((SECONDS - started))
  local outcome="ok"
  if (( rc == 124 )); then outcome="timed out after ${limit} s"; FAILED=1
  elif (( rc != 0 )); then outcome="failed (exit $rc)"; FAILED=1; fi
  ROWS+=("| $name | $outcome | ${took} s | \`$*\` |")
  echo "$name: $outcome (${took} s)" >&2
}

DEVICE_NAME=$("$PYTHON" - "$DEVICE" <<'EOF'
import sys, torch
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --dry-run on a CPU machine")
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
else:
    print(f"CPU dry run, {torch.get_num_threads()} threads, torch {torch.__version__}")
EOF
) || exit 1

step cuda_tests 150 "$PYTHON" -m pytest tests/methods/test_cuda.py tests/engine/test_inference.py -q -p no:cacheprovider
step train_speed 150 "$PYTHON" bench/train_speed.py --method all --device "$DEVICE" "${TRAIN_ARGS[@]}"
step detector_speed 60 "$PYTHON" bench/train_speed.py --method actionformer --device "$DEVICE" "${TRAIN_ARGS[@]}" \
  --t "${DETECTOR_T[0]}" --dim 2048
step detector_long 90 "$PYTHON" bench/train_speed.py --method actionformer --device "$DEVICE" "${TRAIN_ARGS[@]}" \
  --t "${DETECTOR_T[1]}" --batch 1 --dim 2048
if [[ ! -f "$DATA/annotations.json" ]]; then
  step synth 90 "$PYTHON" -m pointtal synth "$DATA" --preset thumos14 --dim "$SYNTH_DIM" --dtype float16 --no-progress
fi
step predict_speed 80 "$PYTHON" bench/predict_speed.py --data "$DATA" --device "$DEVICE" $AMP "${PREDICT_ARGS[@]}"
if "$PYTHON" -m pointtal extract --help >/dev/null 2>&1 && [[ -f bench/extract_speed.py ]]; then
  step extract_speed 60 "$PYTHON" bench/extract_speed.py --device "$DEVICE"
else
  ROWS+=("| extract_speed | skipped: \`pointtal extract\` (or bench/extract_speed.py) absent | - | - |")
fi

REPORT="$OUT_DIR/gpu_check.md"
{
  echo "# GPU check ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo "Device: $DEVICE_NAME"
  echo
  echo "| step | outcome | wall | command |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  for name in cuda_tests train_speed detector_speed detector_long predict_speed extract_speed; do
    [[ -f "$LOGS/$name.log" ]] || continue
    echo
    echo "## $name"
    echo
    echo '```'; tail -n 20 "$LOGS/$name.log"; echo '```'  # the bench scripts end with their markdown table
  done
} >"$REPORT"
echo "wrote $REPORT" >&2
exit $FAILED
