#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install snnc with pinned dependencies, for reproducible runs.
#   bash scripts/setup.sh           snnc and what it needs to train, evaluate, export and import (a user's install)
#   bash scripts/setup.sh --test    also what the tests need: pytest, hypothesis, SciPy and the peers they compare
#                                   against (SpikingJelly, snnTorch, Norse, nirtorch, tonic)
#   bash scripts/setup.sh --cuda    also CuPy, for the CUDA kernels (the options combine: --test --cuda)
#   bash scripts/setup.sh --cpu     PyTorch's CPU-only build (from PyTorch's own index, $TORCH_CPU_INDEX) instead of
#                                   PyPI's, which brings CUDA's libraries (some 3 GB) to machines without a GPU
#   SNNC_VENV   where the venv lives (default: .venv in the checkout)
#   SNNC_TORCH  the torch release to pin (default 2.14.1, with torchvision 0.29.1; 2.13.0 installs torch alone)
#   PYTHON      the interpreter to build it from (default: python3, 3.10+)
# pyproject.toml declares the range of torch versions snnc supports; this script pins one for CI and the README.
# The venv is rebuilt only when pyproject.toml, this script, SNNC_TORCH or --cpu change; --test and --cuda add
# their packages to it once (a venv set up with --test keeps them when set up again without).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
TEST=0 CUDA=0 CPU=0
for arg in "$@"; do
    case "$arg" in
        --test) TEST=1 ;;
        --cuda) CUDA=1 ;;
        --cpu) CPU=1 ;;
        *) echo "error: scripts/setup.sh: unknown option '$arg'" >&2
           echo "= hint: the options are --test, --cuda and --cpu" >&2; exit 1 ;;
    esac
done
VENV=${SNNC_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH=${SNNC_TORCH:-2.14.1}
case "$TORCH" in
    2.14.1) TORCH_PKGS="torch==2.14.1 torchvision==0.29.1" ;;
    *) TORCH_PKGS="torch==$TORCH" ;;  # PyPI's torchvision does not import beside other local builds
esac
TORCH_FROM=()
[ "$CPU" = 1 ] && TORCH_FROM=(--index-url "$TORCH_CPU_INDEX")
key=$( (cat pyproject.toml scripts/setup.sh; echo "$TORCH $CPU") | sha256sum | cut -c1-16)
stamp="$VENV/.snnc-deps-$key"
pip() { "$VENV/bin/pip" install -q "$@"; }
if [ ! -f "$stamp" ]; then
    echo "setting up $VENV with torch $TORCH$([ "$CPU" = 1 ] && echo ' (CPU-only)') (torch is large: a few minutes the first time)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    pip --upgrade pip
    pip "${TORCH_FROM[@]}" $TORCH_PKGS
    pip hatchling editables "pydantic>=2.6" "lark>=1.1.9" "jinja2>=3.1" "sympy>=1.12" "numpy>=1.24" "tqdm>=4.66" \
        "matplotlib>=3.8" "tensorboard>=2.15" "h5py>=3.8"
    pip --no-deps nir==1.0.8  # snnc export / import (pure Python; it needs numpy and h5py, installed above)
    touch "$stamp"
fi
if [ "$TEST" = 1 ] && [ ! -f "$stamp-test" ]; then
    pip "pytest>=8" "hypothesis>=6.100" "scipy>=1.10"
    # The references and peers the tests compare against (dcls: DCLS's own learnable delays). Their declared
    # dependencies would pull another torch (or torchaudio), so they come without them; what they need at import
    # time is installed above.
    pip --no-deps spikingjelly==2.0.0 loguru nirtorch==2.6 snntorch==1.0.0 norse==1.1.0 dcls==0.1.1
    # tonic, the oracle of the dataset readers and binnings (its declared dependencies pull librosa and numba):
    # it and what it imports, without theirs.
    pip --no-deps tonic==1.7.0 importRosbag==1.0.4 expelliarmus==1.1.12 requests==2.34.2 urllib3==2.8.0 idna==3.20 \
        charset-normalizer==3.5.3 certifi==2026.10.19.post1
    touch "$stamp-test"
fi
if [ "$CUDA" = 1 ] && [ ! -f "$stamp-cuda" ]; then
    pip "cupy-cuda13x>=13"
    touch "$stamp-cuda"
fi
# (Re)link this checkout into the venv: cheap, and right even when the venv is shared between clones.
pip --no-deps --no-build-isolation -e .
