#!/bin/sh
# Prints, one per line, the Debian packages that own the shared libraries the
# given binaries load (ldd, then dpkg-query -S). The Dockerfile's runtime
# stage installs exactly these, so a library the build starts to link (e.g.
# cpp-httplib for /metrics) reaches the image without editing a list.
# Usage: runtime-packages.sh BINARY...
set -eu
libs=$(for binary in "$@"; do
  if ldd "$binary" | grep 'not found' >&2; then
    echo "runtime-packages: $binary needs a library that is not installed" >&2
    exit 1
  fi
  ldd "$binary"
done | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)

for lib in $libs; do
  # dpkg registers a file under one spelling; usrmerge makes /lib and
  # /usr/lib the same directory, and ldd may name the soname's symlink.
  real=$(readlink -f "$lib")
  owner=
  for path in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
    if owner=$(dpkg-query -S "$path" 2>/dev/null | head -n 1); then
      [ -n "$owner" ] && break
    fi
  done
  if [ -z "$owner" ]; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  fi
  # "libgrpc++1.51:amd64: /usr/lib/x86_64-linux-gnu/libgrpc++.so.1.51" -> the name
  echo "${owner%%:*}"
done | sort -u
