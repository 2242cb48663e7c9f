#!/usr/bin/env bash
# Sets up a fresh machine for slotsweep: a virtual environment with the pinned packages, and
# Debian's Fashion-MNIST where it is missing and apt is usable. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import slotsweep, torch, ray, mlflow, optuna, playwright" 2>/dev/null; then
  .venv/bin/pip install --quiet --upgrade pip
  # torch/torchvision are pinned in pyproject.toml; pip takes them from the local wheel cache
  .venv/bin/pip install --quiet -e '.[dev]'
fi

FASHION=/usr/share/datasets/fashion-mnist
if [ ! -e "$FASHION/train-images-idx3-ubyte.gz" ] && [ -z "${SLOTSWEEP_DATA:-}" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
      || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST runs will need --data-root"
  else
    echo "note: Fashion-MNIST not found; run 'sudo apt-get install dataset-fashion-mnist'" \
         "or set SLOTSWEEP_DATA to a folder with torchvision's FashionMNIST files"
  fi
fi
# The browser tests (tests/test_ui_browser.py) drive Debian's chromium through Playwright's
# Python package (never `playwright install`: no browser download).
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium) \
      || echo "note: could not install chromium; the browser tests will be skipped"
  else
    echo "note: chromium not found; run 'sudo apt-get install chromium' for the browser tests"
  fi
fi
.venv/bin/slotsweep --help >/dev/null
echo "slotsweep is set up in .venv"
