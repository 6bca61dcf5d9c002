#!/usr/bin/env bash
# Start a smoke run of run_all.sh, SIGKILL it (the whole process group, as a
# crash or a closed laptop would) after DELAY seconds, start it again, and
# leave its results in OUT for tests/test_resume.py, which compares them with
# an uninterrupted smoke run.
#
#   bash tools/kill_and_resume.sh [DELAY [OUT]]     # defaults: 150 runs/resumed
set -euo pipefail
cd "$(dirname "$0")/.."
delay=${1:-150}
out=${2:-runs/resumed}

rm -rf "$out"
mkdir -p "$out"
# own results and work folders: nothing is shared with the uninterrupted run
export ALKD_RESULTS=$out/results ALKD_WORK=$out/work

setsid bash run_all.sh --profile smoke --jobs 1 > "$out/first.log" 2>&1 &
first=$!
sleep "$delay"
if kill -0 "$first" 2>/dev/null; then
  kill -KILL -- "-$first"
  echo "kill_and_resume: killed the first run after ${delay}s"
else
  echo "kill_and_resume: the first run ended before ${delay}s" >&2
  exit 1
fi
wait "$first" 2>/dev/null || true

bash run_all.sh --profile smoke --jobs 1 > "$out/second.log" 2>&1
echo "kill_and_resume: second run finished, results in $out/results"
