#!/usr/bin/env bash
# What a cache hit costs end to end, with the memory and the Redis backend.
# Builds the release binary (if needed), starts a fake upstream, redis-server and the gateway on loopback,
# and prints p50/p99 of repeated identical requests (all hits after the first).
#   bash bench/cache_hit.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2000}
# A separate build folder, so a release build does not block debug builds of the same checkout.
# BINARY=path skips the build (e.g. BINARY=.build/debug/llm-gateway for a quick look; numbers are then debug numbers).
if [ -n "${BINARY:-}" ]; then
  binary=$BINARY
else
  swift build -c release --product llm-gateway --scratch-path .build-release >/dev/null
  binary=.build-release/release/llm-gateway
fi
work=$(mktemp -d)
key=gw_bench_key_0123456789abcdefghijklmnopqrstu
hash=$(printf '%s\n' "$key" | "$binary" keys hash)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

python3 bench/fake_openai.py 18431 & pids+=($!)
redis-server --port 18432 --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null & pids+=($!)
sleep 0.5

for backend in memory redis; do
  cat > "$work/gateway.yaml" <<YAML
server: {listen: "127.0.0.1:18430"}
providers:
  local: {type: openai, base_url: "http://127.0.0.1:18431/v1"}
models:
  bench: {provider: local, upstream: bench-model, price: {input: 1, output: 1}}
keys:
  - {name: bench, sha256: $hash}
cache: {backend: $backend}
redis: {url: "redis://127.0.0.1:18432/0", prefix: "bench-$RANDOM:"}
request_log: {backend: off}
YAML
  "$binary" serve --config "$work/gateway.yaml" 2>/dev/null & gateway=$!
  for _ in $(seq 50); do curl -s -o /dev/null localhost:18430/healthz && break; sleep 0.1; done
  printf 'cache hit, %-6s backend: ' "$backend"
  python3 bench/measure.py 18430 "$key" "$count"
  kill "$gateway"; wait "$gateway" 2>/dev/null || true
done
