#!/usr/bin/env bash
# Usage: scripts/with-test-broker.sh COMMAND [ARGS...]
# Starts a Kafka-protocol broker (Tansu, memory storage) on a free loopback port, runs the
# command with ONEWINDOW_TEST_KAFKA=127.0.0.1:PORT and librdkafka 2.16 first on LD_LIBRARY_PATH,
# stops the broker, and exits with the command's status. A broker that does not start is an
# error: the tests that need it must fail, not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-tools.sh
root=$(pwd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
logdir=$(mktemp -d)
"$root/.venv/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "memory://tansu/" \
  >"$logdir/tansu.log" 2>&1 &
broker=$!
cleanup() { kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; rm -rf "$logdir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then
    ready=1; break
  fi
  if ! kill -0 "$broker" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "${ready:-}" ]; then
  echo "error: the test broker (Tansu) did not start on 127.0.0.1:$port; its log:" >&2
  cat "$logdir/tansu.log" >&2
  exit 1
fi
echo "==> test broker (Tansu) on 127.0.0.1:$port"
export ONEWINDOW_TEST_KAFKA="127.0.0.1:$port"
export ONEWINDOW_TEST_TANSU="$root/.venv/bin/tansu"
export LD_LIBRARY_PATH="$root/.venv/rdkafka-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set +e
"$@"
status=$?
set -e
exit $status
