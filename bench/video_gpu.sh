#!/usr/bin/env bash
# Issue 8's longer GPU run, prepared as ONE device call (the device tool lends 15 minutes per session, so
# this script times itself instead of being tried and re-tried):
#   1. arm mse for 1000 updates (the warm start the fine-tuning arms share), timed;
#   2. arms mse_ft (control) and adv_ft_lowgdl (adversarial 1 + GDL 0.1, spectral norm) side by side on the same
#      GPU for the same number of updates, as many as fit in BUDGET_S by the warm start's pace;
#   3. the clip-by-clip paired comparison on the 2000 test clips, with a picture.
# Results land in bench/results/video*.jsonl as usual and are copied to $OUT (the device tool brings them back).
#
# Device tool call, from the repository root (mnist.npz copied into the ignored folder .gpudata first):
#   mkdir -p .gpudata && cp "$GANFORGE_DATA/mnist.npz" .gpudata/ && echo /.gpudata/ >> .git/info/exclude
#   run(command="bash bench/video_gpu.sh", carry=[".gpudata"], timeout_s=590)
# CPU smoke test of the plumbing (minutes): DEVICE=cpu BUDGET_S=60 MODEL='{"width":4,"hidden":8,"ndf":4}' \
#   BATCH=2 TEST_N=16 RUNS=/tmp/vg RESULTS=/tmp/vg/results bash bench/video_gpu.sh
set -euo pipefail
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.gpudata}
BUDGET_S=${BUDGET_S:-330}        # seconds for step 2; steps 1 and 3 take ~1-2 minutes on an H100/H200
BATCH=${BATCH:-32}
MODEL=${MODEL:-'{"width": 16, "hidden": 64}'}  # PredictorConfig defaults; the CPU bench uses width 8, hidden 32
TEST_N=${TEST_N:-2000}
RUNS=${RUNS:-runs/video-gpu}
OUT=${OUT:-$RUNS/out}
SEED=${SEED:-0}
RESULTS=${RESULTS:-bench/results}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -f "$DATA/mnist.npz" ] || { echo "no $DATA/mnist.npz: copy MNIST there and carry it (see the header)"; exit 2; }
mkdir -p "$OUT" "$RUNS"
common=(--data-dir "$DATA" --device "$DEVICE" --batch-size "$BATCH" --model-config "$MODEL" --runs "$RUNS"
        --test-n "$TEST_N" --eval-n 128 --quiet --seed "$SEED" --results "$RESULTS")
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

t0=$(date +%s.%N)
python3 bench/video.py --arm mse --steps 1000 --eval-every 1000 "${common[@]}" > "$OUT/mse_warm.log" 2>&1
t1=$(date +%s.%N)
# the warm start's pace (its 2000-clip evaluation included, so this errs slow); the adversarial arm costs about
# twice an MSE update, and both arms share the GPU
per_step=$(python3 -c "print(($t1 - $t0) / 1000)")
# (a multiple of 250, at least 1250, never the CPU default 1500, whose runs are named without the step count)
steps=$(python3 -c "s = max(1250, 1000 + int($BUDGET_S / ($per_step * 3.0)) // 250 * 250); print(1750 if s == 1500 else s)")
echo "warm start: 1000 updates in $(python3 -c "print(round($t1 - $t0))") s; fine-tuning both arms to $steps updates"

pids=()
for arm in mse_ft adv_ft_lowgdl; do
  timeout -s INT $((BUDGET_S * 2)) python3 bench/video.py --arm "$arm" --steps "$steps" --eval-every "$steps" \
    "${common[@]}" > "$OUT/$arm.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
echo "fine-tuning done in $(python3 -c "import time; print(round(time.time() - $t1))") s (exit $status)"
[ "$status" = 0 ] || echo "WARNING: an arm stopped before $steps updates (exit $status; see $OUT/*.log): the" \
  "comparison below is of the latest checkpoints, NOT at an equal budget"
suffix=$([ "$SEED" = 0 ] && echo "" || echo "_s$SEED")
python3 bench/video.py --paired "adv_ft_lowgdl_${steps}${suffix}" "mse_ft_${steps}${suffix}" \
  --picture "$OUT/video_compare_gpu.png" "${common[@]}" > "$OUT/paired.log" 2>&1 || status=$?
tail -n 40 "$OUT/paired.log"
cp "$RESULTS/video.jsonl" "$RESULTS/video_paired.jsonl" "$OUT/" 2>/dev/null || true
exit $status
