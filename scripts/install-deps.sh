#!/usr/bin/env bash
# Installs what ReluServe needs to build, test and run, from Debian 12's apt.
# Idempotent: skips apt entirely when every package is already installed.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git
  libdnnl-dev ocl-icd-opencl-dev opencl-headers
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libsimdjson-dev libssl-dev openssl prometheus
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-grpcio python3-protobuf python3-numpy python3-torch
  clang-format gnuplot-nox systemd
  clang-14 libclang-rt-14-dev llvm-14
  nginx
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
