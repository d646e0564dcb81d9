#!/usr/bin/env bash
# Usage: scripts/with-test-broker.sh COMMAND [ARGS...]
#
# Starts a Kafka-protocol broker (Tansu 0.6.0, memory storage) on a free loopback port, runs the
# command with these variables exported, stops the broker, and exits with the command's status:
#   ONEWINDOW_TEST_KAFKA       127.0.0.1:PORT, the broker's address
#   ONEWINDOW_TEST_KAFKA_PORT  PORT
#   ONEWINDOW_TEST_TANSU       the tansu binary, for tests that run a broker of their own
#   LD_LIBRARY_PATH            librdkafka 2.16 first (Debian's 2.0.2 cannot talk to Tansu);
#                              child processes such as kcat inherit it
# A broker that does not start is an error (its log is printed): the tests that need it must
# fail, not skip. See docs/KAFKA.md.
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

# Tansu ignores SIGTERM while clients are connected (it waits for them): ask, then insist. Its
# storage is memory, so nothing is lost by SIGKILL.
stop_broker() {
  kill "$broker" 2>/dev/null || return 0
  for _ in $(seq 1 20); do
    kill -0 "$broker" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
}
cleanup() { stop_broker; rm -rf "$logdir"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ready=
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$broker" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "error: the test broker (Tansu) did not start on 127.0.0.1:$port within 10 s; its log:" >&2
  cat "$logdir/tansu.log" >&2
  exit 1
fi
echo "==> test broker (Tansu) on 127.0.0.1:$port"
export ONEWINDOW_TEST_KAFKA="127.0.0.1:$port"
export ONEWINDOW_TEST_KAFKA_PORT="$port"
export ONEWINDOW_TEST_TANSU="$root/.venv/bin/tansu"
export LD_LIBRARY_PATH="$root/.venv/rdkafka-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set +e
"$@"
status=$?
set -e
exit $status
