#!/usr/bin/env bash
# Fresh machine -> full test suite: venv with pinned deps, Debian's Chromium for the
# browser test (never `playwright install`, which downloads its own browser), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# nginx (Debian's) for the deployment rehearsal (tests/test_deploy_rehearsal.py), which
# runs the shipped proxy config on loopback.
MISSING=""
command -v chromium >/dev/null 2>&1 || MISSING="$MISSING chromium"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || MISSING="$MISSING nginx"
if [ -n "$MISSING" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
  # Debian starts the nginx service on install; the rehearsal runs its own.
  if [ -x /usr/sbin/nginx ] && [[ "$MISSING" == *nginx* ]]; then
    $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
  fi
fi
# Real MNIST for the accuracy-floor tests: $MNIST_DATA, else the shared copy beside the repo.
if [ -z "${MNIST_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
  export MNIST_DATA="$(cd ../shared/data/mnist && pwd)"
fi
# Fashion-MNIST for the clothing floors and pages (Debian's dataset-fashion-mnist, installed
# with apt when missing; $FASHION_DATA names another copy).
FASHION_DATA="$(bash scripts/fashion_data.sh)"
export FASHION_DATA
# PostgreSQL for the class-store tests (installed with apt and started on 127.0.0.1:54329
# when missing); with the URL set, those tests fail rather than skip if it is unreachable.
if [ -z "${CLASSROOM_TEST_PG_URL:-}" ]; then
  CLASSROOM_TEST_PG_URL="$(bash scripts/postgres.sh)"
  export CLASSROOM_TEST_PG_URL
fi
exec .venv/bin/python -m pytest -q "$@"
