#!/usr/bin/env bash
# The web dashboard in a real browser: starts `ocx demo --keep` (exchange, three providers, a
# funded consumer, three jobs run), then runs web/tests/*.test.mjs (node --test, playwright-core
# driving /usr/bin/chromium headless, kept off the network) against it.
#   web_test.sh <path-to-ocx> <source-dir>
# Needs root (the demo's providers run jobs in real sandboxes): skipped otherwise (ctest
# SKIP_RETURN_CODE 77). A missing chromium, web/node_modules or web/dist is a FAILURE, not a
# skip: scripts/setup.sh installs and builds them, and a skip would hide a broken setup.
# Screenshots go to $OCX_SCREENSHOT_DIR (default <source-dir>/build/web-screenshots).
set -uo pipefail
ocx="${1:?usage: web_test.sh <path-to-ocx> <source-dir>}"
src="${2:?usage: web_test.sh <path-to-ocx> <source-dir>}"
src=$(cd "$src" && pwd) || exit 1

if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: ocx demo runs jobs in real sandboxes (bubblewrap, cgroups) and needs root"
  exit 77
fi
missing=()
[[ -x /usr/bin/chromium ]] || missing+=("/usr/bin/chromium (apt-get install chromium)")
[[ -d "$src/web/node_modules/playwright-core" ]] ||
  missing+=("$src/web/node_modules (cd web && npm ci)")
[[ -f "$src/web/dist/index.html" ]] || missing+=("$src/web/dist/index.html (cd web && npm run build)")
if ! command -v node >/dev/null; then
  missing+=("node")
elif (($(node -p 'process.versions.node.split(".")[0]') < 20)); then
  missing+=("Node.js 20 or newer (playwright-core needs it; this is $(node --version))")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "FAILED: the web tests need what scripts/setup.sh installs and builds; missing:"
  printf '  %s\n' "${missing[@]}"
  exit 1
fi

tmp=$(mktemp -d /tmp/ocx-web-test-XXXXXX) || exit 1
log="$tmp/demo.log"
demo_pid=""
stop_demo() {
  if [[ -n "$demo_pid" ]] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -INT "$demo_pid" 2>/dev/null
    for _ in $(seq 1 300); do
      kill -0 "$demo_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$demo_pid" 2>/dev/null; then
      echo "the demo did not stop within 30 s of SIGINT: killing it"
      kill -KILL -- "-$demo_pid" 2>/dev/null || kill -KILL "$demo_pid" 2>/dev/null
    fi
    wait "$demo_pid" 2>/dev/null
  fi
  demo_pid=""
}
cleanup() {
  stop_demo
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In its own session (setsid), so that a demo which ignores SIGINT is killed with everything it
# started (the exchange child) by one kill of its process group.
setsid "$ocx" demo --keep --data-dir "$tmp" >"$log" 2>&1 &
demo_pid=$!
demo_json="$tmp/demo.json"
echo "waiting for $demo_json (ocx demo pid $demo_pid, log $log)"
deadline=$((SECONDS + 120))
# Complete JSON with its url: the file may be seen half written.
demo_ready() {
  node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
           if (!d.url || !d.consumer_token) process.exit(1);' "$demo_json" 2>/dev/null
}
until [[ -s "$demo_json" ]] && demo_ready; do
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    wait "$demo_pid"
    echo "FAILED: ocx demo exited (status $?) before writing $demo_json; its output:"
    cat "$log"
    demo_pid=""
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "FAILED: no $demo_json after 120 s; the demo's output:"
    cat "$log"
    exit 1
  fi
  sleep 0.5
done
echo "the demo is up: $(node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(d.dashboard_url || d.url)' "$demo_json")"

shots="${OCX_SCREENSHOT_DIR:-$src/build/web-screenshots}"
mkdir -p "$shots" || exit 1
shots=$(cd "$shots" && pwd)

cd "$src/web" || exit 1
OCX_DEMO_JSON="$demo_json" OCX_SCREENSHOT_DIR="$shots" \
  node --test --test-concurrency=1 tests/*.test.mjs
status=$?
echo "screenshots: $shots"
if [[ $status -ne 0 ]]; then
  echo "FAILED: the web tests (node --test exited with $status); the demo's output (last 60 lines):"
  tail -n 60 "$log"
  exit "$status"
fi
echo "web tests passed"
