#!/usr/bin/env bash
# Installs what ocx needs, builds it, and runs the main job: `ocx demo`, a whole market on this
# machine (an exchange, three provider agents running jobs in real sandboxes, a consumer, a
# ledger check). The sandbox needs root: run this as root, or it asks sudo for the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
source scripts/ccache-env.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${OCX_CMAKE_LAUNCHER[@]}" >/dev/null
cmake --build build -j "$(nproc)" --target ocx
if [[ $(id -u) -eq 0 ]]; then
  exec ./build/src/cli/ocx demo "$@"
else
  exec sudo ./build/src/cli/ocx demo "$@"
fi
