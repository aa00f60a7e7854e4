#!/usr/bin/env bash
# Stage in .whl/ what a lent GPU machine lacks to run this project, for benchmarks/gpu_acceptance.sh.
#
#   bash benchmarks/gpu_wheels.sh                 # wheels + a link to the 600 real photos (.whl/har_real_sample)
#   bash benchmarks/gpu_wheels.sh --no-sample     # wheels only
#
# The GPU image (Python 3.12, no network) holds PyTorch, transformers, peft, accelerate, onnx, pandas,
# pyarrow and more, but not kedro, kedro-datasets or plotly. This resolves those three, at the versions
# installed here, for CPython 3.12 on manylinux x86-64 (pip install --dry-run --report), drops every
# package the image already holds (IMAGE_HAS below), and downloads the rest with --no-deps. The real
# photos must travel too, because the ../shared folder beside the checkout does not; they are never
# copied into the project: .whl/har_real_sample is a symbolic link to them, and the device call names
# paths through that link in `carry` (docs/benchmarks.md). Run it where pip reaches a package index.
set -euo pipefail

# The Python packages of the GPU image ("cuda"), as its device notes list them (read 2026-11-17).
IMAGE_HAS="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3
uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"
# What the project needs beyond the image: kedro-datasets with the extras pyproject.toml names, and plotly.
ROOTS=(kedro kedro-datasets plotly)
EXTRAS="pandas-parquetdataset,pandas-csvdataset,json-jsondataset,plotly-jsondataset,plotly-plotlydataset,text-textdataset"

SAMPLE=1
for arg in "$@"; do
  case "$arg" in
    --no-sample) SAMPLE=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_wheels.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux1_x86_64)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The roots at the versions installed here, so the GPU run uses what the tests here ran with.
mapfile -t PINNED < <("$PY" - "$EXTRAS" "${ROOTS[@]}" <<'PYTHON'
import sys
from importlib.metadata import version
extras, *names = sys.argv[1:]
for name in names:
    print(f"{name}[{extras}]=={version(name)}" if name == "kedro-datasets" else f"{name}=={version(name)}")
PYTHON
)
echo "resolving for CPython 3.12, manylinux x86-64: ${PINNED[*]}"
"$PY" -m pip install -q --dry-run --ignore-installed --report "$WORK/report.json" --target "$WORK/target" "${TARGET[@]}" "${PINNED[@]}"

# Every resolved package that the image lacks, as NAME==VERSION.
mapfile -t MISSING < <("$PY" - "$WORK/report.json" "$IMAGE_HAS" <<'PYTHON'
import json, re, sys
def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()
report, image = json.load(open(sys.argv[1])), {canonical(n) for n in sys.argv[2].split()}
for item in report["install"]:
    meta = item["metadata"]
    if canonical(meta["name"]) not in image:
        print(f"{meta['name']}=={meta['version']}")
PYTHON
)
echo "the image lacks ${#MISSING[@]}: ${MISSING[*]}"

rm -rf .whl
mkdir -p .whl
"$PY" -m pip download -q --no-deps "${TARGET[@]}" -d .whl "${MISSING[@]}"
if ((SAMPLE)); then
  SRC=${HAR_REAL_SAMPLE:-$ROOT/../shared/data/har_real_sample}
  [[ -d $SRC ]] || { echo "no photos at $SRC: set HAR_REAL_SAMPLE or pass --no-sample" >&2; exit 1; }
  ln -s "$(cd "$SRC" && pwd)" .whl/har_real_sample  # a link, not a copy
fi
ls -1 .whl
echo "staged in .whl/: $(du -sh .whl | cut -f1) in all (wheels $(du -ch .whl/*.whl | tail -n 1 | cut -f1)); a device call carries it with carry=[\".whl\", \".whl/har_real_sample/Training_set.csv\", \".whl/har_real_sample/train\"]"
