#!/usr/bin/env bash
# Installs what ocx needs, builds it, and runs every test twice: in the release-like build
# and in an AddressSanitizer + UndefinedBehaviorSanitizer build.
# Set OCX_SKIP_SANITIZERS=1 to run only the first pass (quicker while iterating).
#
# Time (docs/benchmarks.md, "CI"): both builds go through ccache (scripts/ccache-env.sh), so a
# clone that compiles what an earlier one did takes the objects from the cache. The sanitizer
# build is -O1 with line tables only (-g1): ASan's reports keep file and line, the build and
# the run are about a third cheaper. The browser test and the differential replay fuzzer run
# in the first pass only: they drive the same binary through the same code (the web page's
# JavaScript and a Python reference are what they add), so under the sanitizers they would
# repeat the first pass at several times the cost. Long runs live outside CI: the fuzzers
# (scripts/fuzz.sh SECONDS; CI replays their corpora) and the randomized tests with more
# seeds (docs/benchmarks.md, "Soak runs").
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
source scripts/ccache-env.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${OCX_CMAKE_LAUNCHER[@]}" >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

if [[ "${OCX_SKIP_SANITIZERS:-0}" != "1" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOCX_SANITIZE=ON \
    -DOCX_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    "${OCX_CMAKE_LAUNCHER[@]}" >/dev/null
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" \
    -E '^(ocx_web_dashboard|DifferentialReplayFuzz)$'
fi
