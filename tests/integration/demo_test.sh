#!/usr/bin/env bash
# `ocx demo` end to end, as the README's first command runs it: it must finish, every job must
# succeed and the ledger check must pass. Needs root (the providers' sandboxes); skipped with
# the reason otherwise (ctest SKIP_RETURN_CODE 77).
set -uo pipefail
ocx="$1"
if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: ocx demo runs jobs in real sandboxes (bubblewrap, cgroups) and needs root"
  exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$ocx" demo >"$out" 2>&1
status=$?
cat "$out"
if [[ $status -ne 0 ]]; then
  echo "FAILED: ocx demo exited with $status"
  exit 1
fi
for expected in "ocx demo finished" "[ok: double entry holds]" "[ok: equals the bills]" \
    "the exchange stopped cleanly" "region == \"us\""; do
  if ! grep -qF "$expected" "$out"; then
    echo "FAILED: the demo's output lacks: $expected"
    exit 1
  fi
done
if grep -q "FAILED" "$out"; then
  echo "FAILED: a check in the demo failed"
  exit 1
fi
echo "ocx demo passed"
