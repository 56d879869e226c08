#!/usr/bin/env bash
# Installs what ocx needs, builds it, and runs the main job. Until `ocx demo` exists (the
# consumer issue), the main job is a replay of the bundled example through the engine.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target ocx
./build/src/cli/ocx replay --summary examples/replay/basic.jsonl
