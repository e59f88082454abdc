#!/usr/bin/env bash
# Train the four Fashion-MNIST models from scratch into artifacts/fashion/ (Debian's
# dataset-fashion-mnist installed with apt when missing). Extra arguments go to `train`
# (e.g. --models cnn). Runs niced: it takes every core for up to half an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
FASHION_DATA="$(bash scripts/fashion_data.sh)"
export FASHION_DATA
exec nice -n 10 .venv/bin/python -m mnist_core train --dataset fashion "$@"
