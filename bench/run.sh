#!/usr/bin/env bash
# The benchmark harness: direct-to-upstream against through-the-gateway, in one run, one table.
# Installs wrk and nginx-light from Debian if missing, builds the release binary as `make release` does (in
# .build-release, so debug builds of the same checkout are not blocked), then runs bench/harness.py.
#   bash bench/run.sh [--duration SECONDS] [--other URL] [--floor]
# BINARY=path skips the build (numbers from a debug binary are debug numbers). --floor also builds bench-floor
# (or takes FLOOR_BINARY=path) and measures the stack's floor beside the gateway: a proxy that only forwards.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
missing=$(for package in wrk nginx-light redis-server; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || echo "$package"; done)
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
if [ -n "${BINARY:-}" ]; then
  binary=$BINARY
else
  make --no-print-directory release RELEASE_SCRATCH=.build-release
  binary=.build-release/release/llm-gateway
fi
arguments=()
floor=""
for argument in "$@"; do
  if [ "$argument" = --floor ]; then floor=yes; else arguments+=("$argument"); fi
done
if [ -n "$floor" ]; then
  if [ -z "${FLOOR_BINARY:-}" ]; then
    make --no-print-directory bench-floor RELEASE_SCRATCH=.build-release
    FLOOR_BINARY=.build-release/release/bench-floor
  fi
  arguments+=(--floor "$FLOOR_BINARY")
fi
# A thousand open streams need two thousand sockets in the gateway and as many in the client.
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); binary: $binary"
python3 bench/harness.py "$binary" ${arguments[@]+"${arguments[@]}"}
