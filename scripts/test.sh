#!/usr/bin/env bash
# Fresh machine -> full test suite: venv with pinned deps, Debian's Chromium for the
# browser test (never `playwright install`, which downloads its own browser), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# Real MNIST for the accuracy-floor tests: $MNIST_DATA, else the shared copy beside the repo.
if [ -z "${MNIST_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
  export MNIST_DATA="$(cd ../shared/data/mnist && pwd)"
fi
exec .venv/bin/python -m pytest -q "$@"
