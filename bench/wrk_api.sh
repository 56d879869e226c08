#!/usr/bin/env bash
# Cross-checks `ocx bench api` with an independent load generator, wrk (Debian's package):
# starts `ocx exchange` on a temporary directory and a free port (rate limits raised, as the
# in-process bench does), creates and funds one consumer through the API, and has wrk place
# immediate-or-cancel limit buys (nothing to trade with: each is held, journaled with fsync,
# cancelled, released, projected) over keep-alive connections, one request in flight each.
# wrk prints requests/s, its latency distribution and, if any, "Non-2xx or 3xx responses".
#
#   bench/wrk_api.sh [--connections 64] [--seconds 5] [--ocx build/src/cli/ocx]
set -euo pipefail
cd "$(dirname "$0")/.."

connections=64
seconds=5
ocx=build/src/cli/ocx
while (($#)); do
  case "$1" in
    --connections) connections="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --ocx) ocx="$2"; shift 2 ;;
    *) echo "usage: bench/wrk_api.sh [--connections N] [--seconds S] [--ocx PATH]" >&2; exit 2 ;;
  esac
done
if ! command -v wrk >/dev/null; then
  echo "wrk_api: wrk is not installed (scripts/setup.sh installs it: apt-get install wrk)" >&2
  exit 2
fi
if [[ ! -x "$ocx" ]]; then
  echo "wrk_api: no ocx binary at $ocx (build first: ./scripts/test.sh or ./scripts/demo.sh)" >&2
  exit 2
fi

dir=$(mktemp -d /tmp/ocx-wrk-XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
cat > "$dir/exchange.toml" <<TOML
[limits]
rate_per_second = 10000000
rate_burst = 10000000
TOML
"$ocx" exchange --config "$dir/exchange.toml" --data-dir "$dir/data" --port 0 \
  --port-file "$dir/port" --log-level warn > "$dir/exchange.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -s "$dir/port" ]] && break; sleep 0.1; done
[[ -s "$dir/port" ]] || { echo "wrk_api: the exchange did not start:" >&2; cat "$dir/exchange.log" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$dir/port")"
operator=$(cat "$dir/data/operator.token")

created=$(curl -sf -XPOST "$url/v1/accounts" -H 'content-type: application/json' \
  -d '{"name":"wrk","role":"consumer"}')
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
account=$(field '["account"]["id"]' <<<"$created")
token=$(field '["token"]' <<<"$created")
curl -sf -XPOST "$url/v1/accounts/$account/deposits" -H "authorization: Bearer $operator" \
  -H 'content-type: application/json' -d '{"amount":"100000000"}' > /dev/null

cat > "$dir/orders.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"market":"cpu","side":"buy","price":"0.0150","quantity":1,"tif":"ioc"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
done = function(summary, latency, requests)
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000))
end
LUA
echo "wrk: ioc orders, $connections keep-alive connections, ${seconds}s, exchange at $url"
wrk -t1 -c"$connections" -d"${seconds}s" -s "$dir/orders.lua" "$url/v1/orders"
