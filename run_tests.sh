#!/usr/bin/env bash
# The test command: create or reuse .venv, then run the test suite.
# Extra arguments go to pytest (e.g. `bash run_tests.sh -m 'not slow'` to skip
# the real-data and real-model tests, which run by default).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
source scripts/data_root.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# torch with 2 threads on small ops is many times slower on a busy 2-core
# machine; tests use one unless told otherwise
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m pytest "$@"
