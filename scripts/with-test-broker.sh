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
#
# Nothing outlives the script. The broker and the command each run in a process group of their
# own (job control, `set -m`), so one signal reaches a job. The command runs under scripts/reap.py,
# a child subreaper: what the tests launched (Foundation gives each child a process group of its
# own) is stopped when the command ends, even when the test process crashed and left it orphaned. Ctrl-C, SIGTERM or a normal end: the trap stops both groups. A
# SIGKILL of the script (a CI time-out) cannot be trapped: a watchdog in a group of its own sees
# the script gone within a second and kills both groups.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-tools.sh
root=$(pwd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
logdir=$(mktemp -d)
set -m  # jobs started from here on get process groups of their own; no job notices after
"$root/.venv/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "memory://tansu/" \
  >"$logdir/tansu.log" 2>&1 &
broker=$!
set +m
command_pid=
script=$$
watchdog_groups="-$broker"
# It ignores the signals meant for the script and is stopped with SIGKILL. A killed script stays a
# zombie until its parent reaps it (and an orphan's new parent may never), so "gone" means no
# process or a zombie.
script_alive() {
  local stat
  stat=$(cat "/proc/$script/stat" 2>/dev/null) || return 1
  [ "$(cut -d' ' -f1 <<<"${stat##*) }")" != Z ]
}
start_watchdog() {
  set -m
  ( trap '' INT TERM HUP
    while script_alive; do sleep 1; done
    kill -KILL -- $watchdog_groups 2>/dev/null ) </dev/null >/dev/null 2>&1 &
  watchdog=$!
  set +m
}
stop_watchdog() { if kill -KILL "$watchdog" 2>/dev/null; then wait "$watchdog" 2>/dev/null || true; fi; }
start_watchdog

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
# Asks the command's whole group to stop, then insists after 10 s.
stop_command() {
  [ -n "$command_pid" ] || return 0
  kill -TERM -- "-$command_pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 -- "-$command_pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$command_pid" 2>/dev/null || true
}
cleanup() {
  stop_command
  stop_broker
  stop_watchdog
  rm -rf "$logdir"
}
trap cleanup EXIT
trap 'echo "==> interrupted: stopping the tests and the test broker" >&2; exit 130' INT
trap 'exit 143' TERM HUP

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
# In the background and waited for, so that a signal's trap runs at once instead of after the
# command ends; its own process group gets the stop.
set -m
python3 scripts/reap.py "$@" &
command_pid=$!
set +m
stop_watchdog
watchdog_groups="-$broker -$command_pid"
start_watchdog
set +e
wait "$command_pid"
status=$?
set -e
command_pid=
exit $status
