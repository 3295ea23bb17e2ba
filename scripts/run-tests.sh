#!/usr/bin/env bash
# Runs the whole suite with a throwaway redis-server when the binary exists.
# Without one, the Redis tests skip with one clear reason; with
# RESILIENCE_REQUIRE_SERVICES=1 they fail instead.
set -euo pipefail
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."

redis_pid=""
redis_dir=""
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$redis_dir" ]; then rm -rf "$redis_dir"; fi
}
trap cleanup EXIT

if command -v redis-server >/dev/null 2>&1; then
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis_dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" \
    --logfile "$redis_dir/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 50); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  export RESILIENCE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "run-tests: throwaway redis-server on port $port (pid $redis_pid)"
else
  echo "run-tests: no redis-server binary; Redis tests will skip (or fail with RESILIENCE_REQUIRE_SERVICES=1)"
fi

"$PY" -m pytest -p no:cacheprovider "$@"
