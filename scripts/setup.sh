#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install snnc with its pinned dependencies.
#   SNNC_VENV  where the venv lives (default: .venv in the checkout)
#   PYTHON     the interpreter to build it from (default: python3, 3.10+)
# The venv is rebuilt only when pyproject.toml or this script change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SNNC_VENV:-.venv}
PY=${PYTHON:-python3}
key=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.snnc-deps-$key"
if [ ! -f "$stamp" ]; then
    echo "setting up $VENV (torch 2.14.1 is large: a few minutes the first time)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    "$VENV/bin/pip" install -q hatchling editables "pydantic>=2.6" "lark>=1.1.9" "jinja2>=3.1" "sympy>=1.12" "numpy>=1.24" \
        "tqdm>=4.66" "matplotlib>=3.8" "tensorboard>=2.15" "pytest>=8" "hypothesis>=6.100" "cupy-cuda13x>=13"
    # SpikingJelly is the behavioural and speed reference; its declared dependencies would pull another torch.
    "$VENV/bin/pip" install -q --no-deps spikingjelly==2.0.0 loguru
    touch "$stamp"
fi
# (Re)link this checkout into the venv: cheap, and right even when the venv is shared between clones.
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
