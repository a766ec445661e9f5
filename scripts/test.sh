#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the tests with ctest.
#
#   scripts/test.sh                  everything, as CI runs it: every target,
#                                    every test, in the release build and
#                                    again under ASan + UBSan (asan preset)
#   scripts/test.sh -R interop       only the selected tests (any ctest
#                                    selection: -R, -E, -L, -LE, -I), in the
#                                    release build only, building only the
#                                    binaries those tests run
#   scripts/test.sh --preset asan -R core
#                                    the same in the presets named (repeat
#                                    --preset for several)
#
#   scripts/test.sh --preset fuzz    the fuzz targets' seed corpora, each
#                                    seed run once (fuzz.*); fuzzing itself
#                                    is scripts/fuzz.sh
#   scripts/test.sh --preset tsan    the ThreadSanitizer binary's cases
#                                    (tsan.*; the tsan preset runs only
#                                    those unless a selection says otherwise)
#
# Other arguments go to ctest unchanged. RELUSERVE_SKIP_ASAN=1 drops the asan
# pass from a full run. After the release and asan passes a full run (no
# arguments) fuzzes each target for 60 s under ASan + UBSan (scripts/fuzz.sh
# all 60; RELUSERVE_SKIP_FUZZ=1 drops it) and runs reluserve_tsan_tests
# (scripts/tsan.sh; RELUSERVE_SKIP_TSAN=1 drops it), then ends with
# scripts/docker-test.sh, the container image and compose stack;
# RELUSERVE_SKIP_DOCKER=1 drops it.
set -euo pipefail
cd "$(dirname "$0")/.."
full_run=$(($# == 0))
scripts/check-core-isolation.sh

presets=()
ctest_args=()
selected=0
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) presets+=("$2"); shift 2; continue ;;
    --preset=*) presets+=("${1#--preset=}"); shift; continue ;;
    -R|-E|-L|-LE|-I|--tests-regex|--exclude-regex|--label-regex|--label-exclude|--tests-information)
      selected=1 ;;
  esac
  ctest_args+=("$1")
  shift
done
if [ ${#presets[@]} -eq 0 ]; then
  presets=(release)
  if [ "$selected" = 0 ] && [ "${RELUSERVE_SKIP_ASAN:-0}" != 1 ]; then
    presets+=(asan)
  fi
fi

for preset in "${presets[@]}"; do
  build_dir="build/$preset"
  args=("${ctest_args[@]+"${ctest_args[@]}"}")
  preset_selected="$selected"
  if [ "$preset" = tsan ] && [ "$selected" = 0 ]; then
    # The rest of the tree links Debian's uninstrumented gRPC.
    args+=(-R '^tsan\.')
    preset_selected=1
  fi
  if [ "$preset_selected" = 1 ]; then
    scripts/install-deps.sh
    cmake --preset "$preset" >/dev/null
    if ! targets=$(scripts/test_targets.py "$build_dir" "${args[@]}"); then
      echo "=== $preset: no test matches: ${args[*]}" >&2
      exit 1
    fi
    echo "=== $preset: build $(echo "$targets" | wc -l) target(s) for the selected tests"
    # shellcheck disable=SC2086  # one target per line
    scripts/build.sh "$preset" --target $targets
  else
    echo "=== $preset: build"
    scripts/build.sh "$preset"
  fi
  echo "=== $preset: test"
  ctest --preset "$preset" --timeout 300 -j "$(nproc)" "${args[@]}"
done

if [ "$full_run" = 1 ] && [ "${RELUSERVE_SKIP_FUZZ:-0}" != 1 ]; then
  echo "=== fuzz: each target for 60 s under ASan + UBSan (scripts/fuzz.sh all 60)"
  scripts/fuzz.sh all 60
fi

if [ "$full_run" = 1 ] && [ "${RELUSERVE_SKIP_TSAN:-0}" != 1 ]; then
  echo "=== tsan: reluserve_tsan_tests under ThreadSanitizer (scripts/tsan.sh)"
  scripts/tsan.sh
fi

if [ "$full_run" = 1 ] && [ "${RELUSERVE_SKIP_DOCKER:-0}" != 1 ]; then
  echo "=== docker: image, compose stack, failover (scripts/docker-test.sh)"
  scripts/docker-test.sh
fi
