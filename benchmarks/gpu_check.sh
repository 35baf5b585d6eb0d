#!/usr/bin/env bash
# GPU check: the tutorial preset, test, predict, the export check, the DDP preset, the no-sync
# test and the benchmark's Lightning and plain-loop rows on one GPU, each figure printed. Runs
# as is on a GPU machine that has torch and lightning installed, with no network and nothing
# else of this project's installed:
#
#   bash benchmarks/gpu_check.sh [WHEELS_DIR] [DATA_DIR] [EPOCHS]
#
# WHEELS_DIR (default .whl): wheels of what that machine lacks (jsonargparse and its needs, and
# torchvision built for that machine's torch: `pip download --no-deps torchvision==X` where X
# pairs with its torch), installed offline into a private folder first when the folder exists. DATA_DIR (default
# $MNIST_DATA_DIR, else data) holds MNIST/raw. Everything is written under $GPU_CHECK_OUT
# (default gpu-check/), which must not exist yet.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-.whl}
DATA=${2:-${MNIST_DATA_DIR:-data}}
EPOCHS=${3:-5}
OUT=${GPU_CHECK_OUT:-gpu-check}
PY=${PYTHON:-python3}
ACCEL=${ACCEL:-gpu}  # ACCEL=cpu runs the same steps without a GPU (a dry run)
[ -e "$OUT" ] && { echo "error: $OUT already exists; set GPU_CHECK_OUT to a new folder" >&2; exit 2; }
mkdir -p "$OUT"
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target "$OUT/site" "$WHEELS"/*.whl
    export PYTHONPATH="$OUT/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
CLI=("$PY" -m lightning_mnist.cli)
COMMON=(--data.data_dir "$DATA" --data.fetch false --trainer.enable_progress_bar false)

echo "== machine"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'lightning', lightning.__version__, 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
$PY -m lightning_mnist.data.fetch verify --data.data_dir "$DATA"

echo "== fit: tutorial preset, $EPOCHS epochs, one GPU"
"${CLI[@]}" fit --config configs/tutorial.yaml "${COMMON[@]}" --trainer.accelerator "$ACCEL" \
    --trainer.max_epochs "$EPOCHS" --trainer.default_root_dir "$OUT/fit" | tee "$OUT/fit.log"
RUN=$(ls -d "$OUT"/fit/version_* | tail -1)
CKPT=$(ls "$RUN"/checkpoints/best-*.ckpt | head -1)

echo "== test and predict from $CKPT"
"${CLI[@]}" test --config configs/tutorial.yaml "${COMMON[@]}" --trainer.accelerator "$ACCEL" \
    --trainer.default_root_dir "$OUT/test" --ckpt_path "$CKPT" | tee "$OUT/test.log"
"${CLI[@]}" predict --config configs/tutorial.yaml "${COMMON[@]}" --trainer.accelerator "$ACCEL" \
    --trainer.default_root_dir "$OUT/predict" --ckpt_path "$CKPT" | tee "$OUT/predict.log"

echo "== export check on all 10,000 test images"
for fmt in onnx torchscript exported-program; do
    "${CLI[@]}" export --ckpt_path "$CKPT" --format "$fmt" --out "$OUT/model.$fmt" \
        --data.data_dir "$DATA" || echo "export $fmt: FAILED"
done

echo "== DDP preset, one device"
"${CLI[@]}" fit --config configs/tutorial.yaml --config configs/ddp.yaml "${COMMON[@]}" \
    --trainer.accelerator "$ACCEL" --trainer.devices 1 --trainer.max_epochs 2 \
    --trainer.default_root_dir "$OUT/ddp" | tee "$OUT/ddp.log"

echo "== no host sync inside a training step (tests/test_gpu.py)"
if $PY -c "import pytest" 2>/dev/null; then
    $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py || echo "sync check: FAILED"
else
    echo "sync check: not run (pytest is not installed here)"
fi

echo "== benchmark rows: Lightning vs the plain loop, $EPOCHS epochs x 2 turns"
$PY -m lightning_mnist.compare.bench --trainer.max_epochs "$EPOCHS" --repeats 2 \
    --frameworks "[lightning,torch]" --step_probe_steps 0 --data.data_dir "$DATA" \
    --out "$OUT/bench" --quiet true | tail -12 || echo "benchmark: FAILED"

echo "== figures"
$PY - "$RUN" "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
run, out = Path(sys.argv[1]), Path(sys.argv[2])
r = json.loads((run / "results.json").read_text())
secs = r["epoch_seconds"]
print(f"fit: {r['epochs_run']} epochs, median {statistics.median(secs):.3f} s/epoch "
      f"(min {min(secs):.3f}, first {secs[0]:.3f}), fit {r['fit_seconds']:.1f} s, "
      f"test accuracy {100 * r['test_accuracy']:.2f}% on {r['test_samples']}, device {r['device']}, "
      f"conv path {r['conv_path']}")
ddp = sorted((out / "ddp").glob("version_*/results.json"))
if ddp:
    d = json.loads(ddp[-1].read_text())
    print(f"ddp (1 device): {d['epochs_run']} epochs, test accuracy {100 * d['test_accuracy']:.2f}% "
          f"on {d['test_samples']}, median {statistics.median(d['epoch_seconds']):.3f} s/epoch")
PY
