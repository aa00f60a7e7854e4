#!/usr/bin/env bash
# GPU acceptance: the GPU-only tests, every model's smoke training on CUDA, the whole smoke DAG, and the
# throughput benchmark against the Hugging Face Trainer and a naive loop, recorded in docs/benchmarks.md.
# Fits in about 8 minutes on one H100/H200 (docs/benchmarks.md, "GPU acceptance").
#
#   bash benchmarks/gpu_acceptance.sh                  # on a GPU: appends a dated block to docs/benchmarks.md
#   bash benchmarks/gpu_acceptance.sh --dry            # the same steps on CPU at cut-down sizes; block to stdout
#   bash benchmarks/gpu_acceptance.sh --dry --record   # a dry run that also appends its block to the doc
#
# Options:
#   --dry        CPU, max_steps=1 for the smoke trainings, gpu_training.py --tiny, no nvidia-smi
#   --record     append the block to docs/benchmarks.md in a dry run too (a GPU run always does)
#   --no-dag     skip step 4, the whole smoke DAG (the default in a dry run; --dag runs it there too)
#   --wheels     install .whl/ (benchmarks/gpu_wheels.sh) even where kedro already imports
# Environment:
#   PYTHON             the interpreter (default python3)
#   HAR_REAL_SAMPLE    the 600 real photos read by conf/smoke (default: .whl/har_real_sample when
#                      gpu_wheels.sh staged them there, else conf/smoke's own default)
#   ACCEPTANCE_OUT     folder for the run's files: steps.tsv, gpu_training.json, logs, the block
#                      (default: a new temporary folder)
#   ACCEPTANCE_MODELS  the smoke models of steps 3 and 4 (default "clip aclip siglip")
#   ACCEPTANCE_BUDGET_S  the run's time budget in seconds (default 480): step 4 is skipped when step 3's
#                      time, spent again, would leave less than 150 s for steps 5 and 6
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DRY=0 RECORD=0 DAG="" FORCE_WHEELS=0
for arg in "$@"; do
  case "$arg" in
    --dry) DRY=1 ;;
    --record) RECORD=1 ;;
    --dag) DAG=1 ;;
    --no-dag) DAG=0 ;;
    --wheels) FORCE_WHEELS=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu_acceptance.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n $DAG ]] || DAG=$((1 - DRY))

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
RESULTS=${ACCEPTANCE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_acceptance.XXXXXX")}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
TIMINGS=$RESULTS/steps.tsv
: >"$TIMINGS"
STARTED=$(date +%s)
FAILED=()
STEP_NOTE=""

now() { date +%s.%N; }

# step NAME COMMAND...: a header, the command, then its wall time and status (recorded in steps.tsv).
# A failed step is recorded and the script goes on, so that the block still shows what did run.
step() {
  local name=$1 start seconds status=ok
  shift
  printf '\n===== %s (%s s into the run) =====\n' "$name" "$(($(date +%s) - STARTED))"
  start=$(now)
  "$@" || status="failed (exit $?)"
  seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  printf '===== %s: %s s, %s =====\n' "$name" "$seconds" "$status"
  printf '%s\t%s\t%s\t%s\n' "$name" "$seconds" "$status" "$STEP_NOTE" >>"$TIMINGS"
  STEP_NOTE=""
  [[ $status == ok ]] || FAILED+=("$name")
}

# Wheels staged by benchmarks/gpu_wheels.sh fill in what a bare GPU image lacks (kedro, kedro-datasets, plotly, ...).
install_wheels() {
  local wheels=() site=${ACCEPTANCE_SITE:-/tmp/site}
  shopt -s nullglob
  wheels=(.whl/*.whl)
  shopt -u nullglob
  ((${#wheels[@]})) || return 0
  if ((!FORCE_WHEELS)) && "$PY" -c 'import kedro, kedro_datasets, plotly' 2>/dev/null; then
    echo ".whl/ holds ${#wheels[@]} wheels, but kedro, kedro_datasets and plotly import already: not installed (--wheels forces it)"
    return 0
  fi
  echo "installing ${#wheels[@]} wheels from .whl/ into $site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${wheels[@]}" || return
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

environment() {
  if ((DRY)); then echo "(--dry: nvidia-smi skipped)"; else nvidia-smi || return; fi
  "$PY" - "$DRY" <<'PYTHON' || return
import platform, sys
import torch, transformers
import kedro, har_kedro
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, kedro {kedro.__version__}")
if torch.cuda.is_available():
    print(f"torch.cuda.get_device_name(): {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
elif sys.argv[1] == "1":
    print("torch.cuda.get_device_name(): no CUDA device (dry run on CPU)")
else:
    sys.exit("no CUDA device visible to torch: run with --dry on a machine without a GPU")
# Wheels go in with --no-deps, so check here that what the image brings meets their requirements.
from importlib.metadata import PackageNotFoundError, distribution, version
from packaging.requirements import Requirement
unmet = []
for root in ("kedro", "kedro-datasets", "plotly"):
    for requirement in map(Requirement, distribution(root).requires or []):
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            try:
                found = version(requirement.name)
            except PackageNotFoundError:
                found = None
            if found is None or not requirement.specifier.contains(found, prereleases=True):
                unmet.append(f"{root} needs {requirement}, found {found or 'nothing'}")
print("requirements of kedro, kedro-datasets and plotly: " + ("; ".join(unmet) if unmet else "all met"))
PYTHON
}

gpu_tests() {
  local files=() status=0
  mapfile -t files < <(grep -rl --include='test_*.py' 'pytest.mark.gpu' tests | sort)
  # Only the files that hold gpu tests are collected: the others need packages a bare GPU image lacks (nbclient).
  echo "files with @pytest.mark.gpu tests: ${files[*]}"
  ((DRY)) && echo "(--dry: no CUDA here, so every gpu test skips; the run proves the marker and the collection)"
  "$PY" -m pytest -m gpu -q -p no:cacheprovider "${files[@]}" 2>&1 | tee "$RESULTS/pytest_gpu.log" || status=$?
  STEP_NOTE=$(tail -n 1 "$RESULTS/pytest_gpu.log" | tr -d '=' | xargs)
  return "$status"
}

# kedro_run NAME ARGS...: `kedro run --env=smoke ARGS` with its log in $RESULTS/kedro_NAME.log; prints the
# log's milestones (all of its end when the run fails).
kedro_run() {
  local log=$RESULTS/kedro_$1.log status=0
  shift
  echo "+ kedro run --env=smoke $*   (log: $log)"
  COLUMNS=200 "$PY" -m kedro run --env=smoke "$@" >"$log" 2>&1 || status=$?
  if ((status)); then
    tail -n 80 "$log"
  else
    grep -E "backbone ready|zero-shot|epoch [0-9]+/[0-9]+|speed-up|execution completed" "$log" | sed -E 's/ {2,}/ /g' | tail -n 20
  fi
  STEP_NOTE=$(grep -oE "completed successfully in [0-9.]+ sec" "$log" | tail -n 1 | sed 's/completed successfully in/kedro pipeline/')
  return "$status"
}

# The --params value that puts MODELS (comma-separated) on the device: cuda, or cpu with one step in a dry run.
device_params() {
  local model params=()
  for model in ${1//,/ }; do
    if ((DRY)); then params+=("$model.training.device=cpu" "$model.training.max_steps=1"); else params+=("$model.training.device=cuda"); fi
  done
  (IFS=,; echo "${params[*]}")
}

benchmark() {
  echo "+ ${BENCH[*]}"
  "${BENCH[@]}"
}

report() {
  local out=- args=()
  if ((!DRY || RECORD)); then out=docs/benchmarks.md; fi
  args=(--rows "$RESULTS/gpu_training.json" --run-info-root data/smoke/08_reporting --since "$STARTED" --until "$STEP3_ENDED" --timings "$TIMINGS"
    --command "bash benchmarks/gpu_acceptance.sh${ARGS[*]:+ ${ARGS[*]}}" --benchmark-command "${BENCH[*]}")
  ((DRY)) && args+=(--dry)
  rm -f "$RESULTS/acceptance_block.md"
  "$PY" benchmarks/acceptance_report.py "${args[@]}" --out "$RESULTS/acceptance_block.md" >/dev/null || return
  if [[ $out == - ]]; then
    echo "(dry run: the block is not written to docs/benchmarks.md; --record writes it)"
    cat "$RESULTS/acceptance_block.md"
  else
    cat "$RESULTS/acceptance_block.md" >>"$out" && echo "appended the block ($RESULTS/acceptance_block.md) to $out"
  fi
}

ARGS=("$@")
read -ra MODELS <<<"${ACCEPTANCE_MODELS:-clip aclip siglip}"
if ((DRY)); then
  BENCH=("$PY" benchmarks/gpu_training.py --tiny --threads 1 --models clip-b16 siglip-b16 --images 64 --batch-size 16
    --naive-steps 1 --aclip-keep 0.5 --aclip-ema-scales 1 0.5 --json "$RESULTS/gpu_training.json")
else
  BENCH=("$PY" benchmarks/gpu_training.py --device cuda --models clip-b16 siglip-b16 --images 5120 --epochs 2
    --naive-steps 5 --aclip-keep 0.5 --aclip-ema-scales 1 0.5 --json "$RESULTS/gpu_training.json")
fi

echo "GPU acceptance$( ((DRY)) && echo ' (dry run on CPU)'): results in $RESULTS"
install_wheels
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z ${HAR_REAL_SAMPLE:-} && -d .whl/har_real_sample ]]; then export HAR_REAL_SAMPLE=$ROOT/.whl/har_real_sample; fi
echo "HAR_REAL_SAMPLE=${HAR_REAL_SAMPLE:-(unset, so the default of conf/smoke)}"

step "1 environment" environment
if [[ ${FAILED[*]-} == *environment* ]]; then echo "the environment step failed: nothing else can run" >&2; exit 1; fi
step "2 gpu tests" gpu_tests
STEP3_STARTED=$(date +%s)
step "3 ingestion" kedro_run ingestion --pipelines=ingestion
step "3 preprocessing" kedro_run preprocessing --pipelines=preprocessing
for model in "${MODELS[@]}"; do
  step "train_$model" kedro_run "train_$model" --pipelines="train_$model" --params "$(device_params "$model")"
done
STEP3_ENDED=$(date +%s)
BUDGET=${ACCEPTANCE_BUDGET_S:-480}
ELAPSED=$(($(date +%s) - STARTED)) STEP3=$(($(date +%s) - STEP3_STARTED))
if ((DAG && !DRY && ELAPSED + STEP3 + 150 > BUDGET)); then
  echo -e "\n===== 4 whole smoke DAG: skipped, ${ELAPSED} s into a ${BUDGET} s budget after ${STEP3} s of step 3 ====="
  printf '4 whole smoke DAG\t0\tskipped (time budget)\t%s s in, step 3 took %s s\n' "$ELAPSED" "$STEP3" >>"$TIMINGS"
elif ((DAG)); then
  step "4 whole smoke DAG" kedro_run dag --params "$(device_params "$(IFS=,; echo "${MODELS[*]}")")"
else
  echo -e "\n===== 4 whole smoke DAG: skipped$( ((DRY)) && echo ' (dry run; --dag runs it)') ====="
fi
step "5 gpu_training.py" benchmark
step "6 report" report

echo -e "\nGPU acceptance finished in $(($(date +%s) - STARTED)) s; results in $RESULTS"
if ((${#FAILED[@]})); then
  echo "FAILED steps: ${FAILED[*]}" >&2
  exit 1
fi
