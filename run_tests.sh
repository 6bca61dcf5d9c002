#!/usr/bin/env bash
# The test command: create or reuse .venv, then run the test suite.
# Extra arguments go to pytest (e.g. `bash run_tests.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
source scripts/data_root.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest "$@"
