#!/usr/bin/env bash
# Builds the fuzz preset (clang 14, libFuzzer, ASan + UBSan) and runs one
# fuzz target for SECONDS over a scratch copy of its seed corpus
# (tests/fuzz/corpus/TARGET; the repository's copy is never written), then
# prints libFuzzer's final statistics: execs/s, coverage (cov:, ft:), the
# corpus it grew.
#
#   scripts/fuzz.sh TARGET SECONDS   TARGET: grpc_request, http_infer_request,
#                                    safetensors, model_config
#   scripts/fuzz.sh all SECONDS      each of them, RELUSERVE_FUZZ_JOBS (2) at
#                                    a time (also a list: safetensors,model_config)
#
# Exits non-zero when a target crashes, leaks, trips UBSan or hangs (an
# input running over 25 s), printing the end of its log and the reproducer's
# path (run the target binary on it to reproduce). The scratch directory
# (corpus, log, reproducers) is kept after a failure or with
# RELUSERVE_FUZZ_KEEP=1, else removed.
set -euo pipefail
cd "$(dirname "$0")/.."

targets_all=(grpc_request http_infer_request safetensors model_config)
usage() {
  local IFS='|'
  echo "usage: scripts/fuzz.sh {${targets_all[*]}|all}[,...] SECONDS" >&2
  exit 2
}
[ $# -eq 2 ] || usage
[[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ] || usage
seconds="$2"
if [ "$1" = all ]; then
  targets=("${targets_all[@]}")
else
  IFS=, read -r -a targets <<<"$1"
  [ ${#targets[@]} -gt 0 ] || usage
  for target in "${targets[@]}"; do
    case " ${targets_all[*]} " in
      *" $target "*) ;;
      *) usage ;;
    esac
  done
fi

binaries=()
for target in "${targets[@]}"; do binaries+=("${target}_fuzzer"); done
scripts/build.sh fuzz --target "${binaries[@]}"

scratch_root="${TMPDIR:-/tmp}"
# Stack traces with file and line.
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
jobs="${RELUSERVE_FUZZ_JOBS:-2}"

# Runs one target; its output goes to its scratch directory's fuzz.log.
run_one() {
  local target="$1" work="$2"
  local binary="build/fuzz/tests/fuzz/${target}_fuzzer"
  local args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=25
              -artifact_prefix="$work/artifacts/")
  [ -f "tests/fuzz/$target.dict" ] && args+=(-dict="tests/fuzz/$target.dict")
  mkdir -p "$work/corpus" "$work/artifacts"
  cp tests/fuzz/corpus/"$target"/* "$work/corpus/"
  # Its CPU time too ("user sys"): on a shared machine execs/s alone says
  # little.
  local status=0 TIMEFORMAT='%U %S'
  { time OMP_NUM_THREADS=1 "$binary" "${args[@]}" "$work/corpus" \
      >"$work/fuzz.log" 2>&1; } 2>"$work/cpu" || status=$?
  return "$status"
}

# Prints what a finished run measured, or why it failed.
report() {
  local target="$1" work="$2" status="$3"
  local log="$work/fuzz.log"
  echo "=== fuzz $target: $seconds s, exit status $status"
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
  grep -E '^stat::' "$log" || true
  local user sys execs
  read -r user sys <"$work/cpu" || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if [ -n "${user:-}" ] && [ -n "$execs" ]; then
    awk -v u="$user" -v s="$sys" -v n="$execs" \
      -v wall="$seconds" 'BEGIN { cpu = u + s; printf "cpu: %.1f s in %d s, %.0f execs per cpu-second\n", cpu, wall, (cpu > 0 ? n / cpu : 0) }'
  fi
  echo "corpus: $(find "$work/corpus" -type f | wc -l) inputs," \
       "$(du -sb "$work/corpus" | cut -f1) bytes" \
       "(seeds: $(find "tests/fuzz/corpus/$target" -type f | wc -l))"
  if [ "$status" != 0 ]; then
    echo "--- end of $log:"
    tail -n 60 "$log"
    for artifact in "$work"/artifacts/*; do
      [ -e "$artifact" ] || continue
      echo "reproducer: $artifact"
      echo "  reproduce: build/fuzz/tests/fuzz/${target}_fuzzer $artifact"
    done
    echo "kept: $work"
  elif [ "${RELUSERVE_FUZZ_KEEP:-0}" = 1 ]; then
    echo "kept: $work"
  else
    rm -rf "$work"
  fi
}

declare -A work_of target_of
failed=0
for target in "${targets[@]}"; do
  work_of[$target]=$(mktemp -d "$scratch_root/reluserve-fuzz-$target.XXXXXX")
done
next=0
running=0
while [ "$next" -lt "${#targets[@]}" ] || [ "$running" -gt 0 ]; do
  while [ "$next" -lt "${#targets[@]}" ] && [ "$running" -lt "$jobs" ]; do
    target="${targets[$next]}"
    next=$((next + 1))
    echo "=== fuzz $target: running for $seconds s (log: ${work_of[$target]}/fuzz.log)"
    run_one "$target" "${work_of[$target]}" &
    target_of[$!]="$target"
    running=$((running + 1))
  done
  status=0
  wait -n -p finished || status=$?
  running=$((running - 1))
  report "${target_of[$finished]}" "${work_of[${target_of[$finished]}]}" "$status"
  [ "$status" = 0 ] || failed=1
done
exit "$failed"
