#!/usr/bin/env bash
# `cmake --install` of a build tree, staged under a temporary DESTDIR: the
# three binaries and the systemd unit land where the unit says, the binaries
# run (--version), and systemd accepts the unit without a warning.
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build_dir=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

DESTDIR=$stage cmake --install "$build_dir" >"$stage/install.log"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build_dir/CMakeCache.txt")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for binary in reluserve-server reluserve-client reluserve-load; do
  path=$stage$prefix/bin/$binary
  if [ ! -x "$path" ]; then
    fail "$binary not installed at $prefix/bin"
    continue
  fi
  version=$("$path" --version) || fail "$binary --version exited $?"
  [[ $version == "$binary "[0-9]* ]] || fail "$binary --version printed '$version'"
done

unit=$stage$prefix/lib/systemd/system/reluserve-server.service
if [ ! -f "$unit" ]; then
  fail "no systemd unit at $prefix/lib/systemd/system"
else
  exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
  [ "$exec_start" = "$prefix/bin/reluserve-server" ] ||
    fail "the unit runs '$exec_start', not the installed $prefix/bin/reluserve-server"
  [ -f "$stage$prefix/share/doc/reluserve/reluserve-server.default" ] ||
    fail "no reluserve-server.default example"
  if command -v systemd-analyze >/dev/null; then
    # Verified with ExecStart pointing into the stage, where the binary is.
    mkdir -p "$stage/verify"
    sed "s|^ExecStart=$prefix|ExecStart=$stage$prefix|" "$unit" \
      >"$stage/verify/reluserve-server.service"
    warnings=$(systemd-analyze verify --man=no \
      "$stage/verify/reluserve-server.service" 2>&1) ||
      fail "systemd-analyze verify failed: $warnings"
    [ -z "$warnings" ] || fail "systemd-analyze verify warned: $warnings"
  else
    fail "systemd-analyze not found (scripts/install-deps.sh installs systemd)"
  fi
fi

if [ "$failures" -gt 0 ]; then
  echo "install test: $failures failure(s)" >&2
  exit 1
fi
echo "install test: 3 binaries and the systemd unit installed under $prefix and verified"
