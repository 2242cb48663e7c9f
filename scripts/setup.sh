#!/usr/bin/env bash
# Sets up a fresh machine for slotsweep: a virtual environment with the pinned packages, and
# Debian's Fashion-MNIST where it is missing and apt is usable. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import slotsweep, torch, ray, mlflow, optuna, psycopg, flask_wtf, playwright" \
    2>/dev/null; then
  .venv/bin/pip install --quiet --upgrade pip
  # torch/torchvision are pinned in pyproject.toml; pip takes them from the local wheel cache;
  # [cluster]: PostgreSQL driver and MLflow basic-auth, for the cluster tests
  .venv/bin/pip install --quiet -e '.[dev,cluster]'
fi
# The native slot kernel is built by the install (setup.py); an install older than that lacks it.
if ! .venv/bin/python -c "from slotsweep.nn import native; assert native.prebuilt_path()" 2>/dev/null; then
  .venv/bin/pip install --quiet --no-deps -e . || echo "note: the native kernel did not build; trials build it at run time"
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
