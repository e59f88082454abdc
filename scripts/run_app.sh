#!/usr/bin/env bash
# Fresh machine -> running app on the shipped artifacts (no training, no network at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
