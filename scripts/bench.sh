#!/usr/bin/env bash
# Runs meshwork-bench on both backends and rewrites the results section of
# BENCHMARKS.md. Usage: scripts/bench.sh [seconds] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
concurrency="${2:-32}"
export MESHWORK_TEST_DATABASE_URL="${MESHWORK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export MESHWORK_TEST_REDIS_URL="${MESHWORK_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export MESHWORK_LOG=warn
cargo build --release --locked -p meshwork-bench
bin=target/release/meshwork-bench
embedded=$("$bin" --seconds "$seconds" --concurrency "$concurrency")
servers=$("$bin" --seconds "$seconds" --concurrency "$concurrency" --servers | tail -n +3)
# The edge with a single client: the latency it adds when nothing queues.
single=$("$bin" --seconds "$seconds" --concurrency 1 --edge-only | tail -n 3 \
  | sed 's/through the REST edge/through the REST edge, 1 client/; s/over gRPC, direct (baseline)/over gRPC, direct, 1 client (baseline)/; s/p50 added by the edge/p50 added by the edge, 1 client/')
# Catalogue reads through the cache against a replica with it off.
products=$("$bin" --seconds "$seconds" --concurrency "$concurrency" --products | tail -n +3)
products_servers=$("$bin" --seconds "$seconds" --concurrency "$concurrency" --products --servers | tail -n +3)
# Every span exported over OTLP to a receiver in the bench, against export off.
tracing=$("$bin" --seconds "$seconds" --concurrency "$concurrency" --tracing | tail -n +3)
# Transfers through the finance services against pgbench with the same SQL.
command -v pgbench >/dev/null || { echo "pgbench is needed (Debian: postgresql-client or postgresql)"; exit 1; }
transfers=$("$bin" --seconds "$seconds" --concurrency "$concurrency" --servers --transfers | tail -n +3)
{
  sed '/^<!-- results -->$/q' BENCHMARKS.md
  echo
  echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores, ${seconds}s per row, ${concurrency} concurrent clients, release build:"
  echo
  echo "$embedded"
  echo "$servers"
  echo "$single"
  echo "$tracing"
  echo "$products"
  echo "$products_servers"
  echo "$transfers"
} > BENCHMARKS.md.new
mv BENCHMARKS.md.new BENCHMARKS.md
echo "BENCHMARKS.md updated"
