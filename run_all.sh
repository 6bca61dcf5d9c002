#!/usr/bin/env bash
# The main job: regenerate the paper's tables and figures as executed
# notebooks, CSV files and plots.
#
#   bash run_all.sh                   # profile quick: seed 0 throughout
#                                     # (results/quick/)
#   bash run_all.sh --profile seeds3  # three distillation seeds over the
#                                     # seed-0 recommenders (results/: the
#                                     # committed headline tables)
#   bash run_all.sh --profile paper   # five seeds, the paper's grids
#                                     # (results/paper/)
#   bash run_all.sh --profile smoke   # minutes; what CI runs
#   bash run_all.sh --force           # re-execute notebooks even if current
#   bash run_all.sh --local-teacher   # also Tables 1-2 on ML with the offline
#                                     # SmolLM2 teacher (3-4 s an ML answer
#                                     # on one CPU core: many hours)
#   bash run_all.sh --jobs 2          # compute the cells (tables, teacher
#                                     # quality, figures) in 2 one-thread
#                                     # processes first (a core each), then
#                                     # execute the notebooks; the default is
#                                     # one per CPU core, at most 4
#
# Every number is an experiment cell stored under <results>/cells/, so a
# killed run resumes where it stopped and a rerun computes nothing. The
# profiles share that cell store (a cell with the same configuration is the
# same cell: quick's are a part of seeds3's and paper's); each profile's
# notebooks, tables and figures go to its own folder (ALKD_OUT overrides),
# so no profile overwrites another's tables.
set -euo pipefail
cd "$(dirname "$0")"

profile=quick
force=0
local_teacher=0
device=auto
# one process a core: the cells are one-thread work (see compute_cells); at
# most 4, as each process holds its own copy of the data and models. nproc
# would count OMP_NUM_THREADS as the cores, so it does not see it here
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)
jobs=$(( cores < 4 ? cores : 4 ))
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    --device) device=$2; shift 2 ;;
    --force) force=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    --local-teacher) local_teacher=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "run_all.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  smoke|quick|seeds3|paper) ;;
  *) echo "run_all.sh: unknown profile '$profile' (smoke, quick, seeds3, paper)" >&2; exit 2 ;;
esac
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_all.sh: --jobs wants a positive whole number, not '$jobs'" >&2; exit 2
fi

bash scripts/setup_env.sh
source scripts/data_root.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg

# the smoke profile never touches the committed results
if [ "$profile" = smoke ]; then
  results=${ALKD_RESULTS:-runs/smoke/results}
else
  results=${ALKD_RESULTS:-results}
fi
case "$profile" in
  quick|paper) out=${ALKD_OUT:-$results/$profile} ;;
  *) out=${ALKD_OUT:-$results} ;;
esac
work=${ALKD_WORK:-runs}
mkdir -p "$out/notebooks" "$work"

.venv/bin/python -m alkd stats

# name of the executed notebook, its source in notebooks/, extra parameters
run_notebook() {
  local name=$1 src=notebooks/$2.ipynb
  shift 2
  local nb=$out/notebooks/$name.ipynb
  local state=(.venv/bin/python -m alkd.runstate)
  if [ "$force" = 0 ] && "${state[@]}" current "$nb" "$src" "$profile" "$results"; then
    echo "run_all: $name is current, skipped"
    return
  fi
  echo "run_all: executing $name (profile $profile)"
  local tmp=$out/notebooks/.$name.running.ipynb
  # the notebook lists every cell it asks for here; its stamp then covers
  # those cells only, so another profile's new cells leave it current
  local asked=$PWD/$out/notebooks/.$name.asked
  [[ $out = /* ]] && asked=$out/notebooks/.$name.asked
  rm -f "$asked"
  ALKD_CELLS_ASKED=$asked .venv/bin/papermill -k python3 --cwd . "$src" "$tmp" \
    -p profile "$profile" -p results_dir "$results" -p out_dir "$out" \
    -p work_dir "$work" -p device "$device" -p data_dir "$ALKD_DATA" "$@"
  mv "$tmp" "$nb"
  "${state[@]}" mark "$nb" "$src" "$profile" "$results" "$asked"
  rm -f "$asked"
}

# the cells of some tables in $jobs processes at once, sharing one queue: each
# takes the next missing cell none has claimed yet (alkd cells --claims), so
# a phase ends when the work does, not when the slowest of fixed shards
# does. Each process runs one thread, because small torch ops ran 10-15
# times slower here with two threads than with one, so processes are what
# scale. Every phase gets a new claims folder (removed after it, and on exit
# by the trap), so a killed run leaves nothing claimed for the next
claims=
compute_cells() {
  local pids=() i
  claims=$(mktemp -d "$work/.claims.XXXXXX")
  for ((i = 0; i < jobs; i++)); do
    # (a stray ALKD_CELLS_ASKED is cleared: workers are not notebooks)
    OMP_NUM_THREADS=1 ALKD_CELLS_ASKED= .venv/bin/python -m alkd cells \
      --profile "$profile" \
      --results "$results" --work "$work" --device "$device" --data "$ALKD_DATA" \
      --no-progress --claims "$claims" --tables "$@" &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "$pid"  # a failed process stops the run (set -e); the trap ends the rest
  done
  rm -rf "$claims"
}
if [ "$jobs" -gt 1 ]; then
  trap 'kill $(jobs -pr) 2>/dev/null || true; rm -rf "$claims"' EXIT
  # in phases: table 2, the tuning grids, teacher quality and the figures
  # reuse the trained recommenders, and Table 1 needs the settings the
  # tuning grids chose
  compute_cells backbones
  compute_cells tuning table2 quality
  compute_cells table1 figures
  if [ "$local_teacher" = 1 ]; then
    # the answers go to one SQLite store (WAL) that the processes share; Table
    # 1's DLLM2Rec cells come after, as they reuse the random strategy's
    compute_cells table2-local
    compute_cells table1-local
  fi
  trap - EXIT
fi

notebooks=(data table1_backbones table2_ablation table1_main teacher_quality figures efficiency)
for name in "${notebooks[@]}"; do
  run_notebook "$name" "$name"
done
if [ "$local_teacher" = 1 ]; then
  # issue 4's table: ML, every backbone and seed, the local teacher's pool
  # is every train session; answers are kept in runs/answers.sqlite
  run_notebook table2_ablation_local table2_ablation -p teacher local \
    -y "datasets: [ML]"
  # Table 1 with it: the KD baselines but DLLM2Rec are the recorded run's cells
  run_notebook table1_main_local table1_main -p teacher local \
    -y "datasets: [ML]"
fi
.venv/bin/python -m alkd.results_readme "$out" "$profile"
echo "run_all: done (profile $profile, tables and figures in $out)"
