#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install snnc with pinned dependencies, for reproducible runs.
#   SNNC_VENV   where the venv lives (default: .venv in the checkout)
#   SNNC_TORCH  the torch release to pin (default 2.14.1, with torchvision 0.29.1; 2.13.0 installs torch alone)
#   PYTHON      the interpreter to build it from (default: python3, 3.10+)
# pyproject.toml declares the range of torch versions snnc supports; this script pins one for CI and the README.
# The venv is rebuilt only when pyproject.toml, this script or SNNC_TORCH change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SNNC_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH=${SNNC_TORCH:-2.14.1}
case "$TORCH" in
    2.14.1) TORCH_PKGS="torch==2.14.1 torchvision==0.29.1" ;;
    *) TORCH_PKGS="torch==$TORCH" ;;  # PyPI's torchvision does not import beside other local builds
esac
key=$( (cat pyproject.toml scripts/setup.sh; echo "$TORCH") | sha256sum | cut -c1-16)
stamp="$VENV/.snnc-deps-$key"
if [ ! -f "$stamp" ]; then
    echo "setting up $VENV with torch $TORCH (torch is large: a few minutes the first time)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q $TORCH_PKGS
    "$VENV/bin/pip" install -q hatchling editables "pydantic>=2.6" "lark>=1.1.9" "jinja2>=3.1" "sympy>=1.12" \
        "numpy>=1.24" "tqdm>=4.66" "matplotlib>=3.8" "tensorboard>=2.15" "pytest>=8" "hypothesis>=6.100" \
        "cupy-cuda13x>=13" "h5py>=3.8" "scipy>=1.10"
    # The references and peers the tests compare against. Their declared dependencies would pull another torch
    # (or torchaudio), so they come without them; what they need at import time is installed above.
    "$VENV/bin/pip" install -q --no-deps spikingjelly==2.0.0 loguru nir==1.0.8 nirtorch==2.6 snntorch==1.0.0 \
        norse==1.1.0
    # tonic, the oracle of the dataset readers and binnings (its declared dependencies pull librosa and numba):
    # it and what it imports, without theirs.
    "$VENV/bin/pip" install -q --no-deps tonic==1.7.0 importRosbag==1.0.4 expelliarmus==1.1.12 requests==2.34.2 \
        urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3 certifi==2026.10.19.post1
    touch "$stamp"
fi
# (Re)link this checkout into the venv: cheap, and right even when the venv is shared between clones.
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
