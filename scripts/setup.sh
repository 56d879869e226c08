#!/usr/bin/env bash
# Installs every Debian package that building and testing ocx needs, then builds the web
# dashboard from npm packages (scripts/build-web.sh).
# Idempotent: a second run installs nothing new. Needs root (or sudo) on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git python3
  # ccache: CI builds a fresh clone each time; the cache makes that a matter of minutes.
  ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  libabsl-dev nlohmann-json3-dev libcli11-dev libsodium-dev libsqlite3-dev
  bubblewrap libseccomp-dev
  libboost1.81-dev libssl-dev libspdlog-dev libtomlplusplus-dev libre2-dev curl
  # TCMalloc for the ocx binary (src/cli/CMakeLists.txt says why).
  libgoogle-perftools-dev
  # wrk: the independent load generator of bench/wrk_api.sh (docs/benchmarks.md).
  wrk
  # The dashboard's browser tests drive Debian's Chromium (headless, off the network).
  chromium
)
# Node.js builds the dashboard. A machine that already has node (e.g. from NodeSource)
# keeps it; otherwise Debian's (18, with npm).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages already installed"
else
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

./scripts/build-web.sh
