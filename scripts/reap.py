#!/usr/bin/env python3
"""Usage: scripts/reap.py COMMAND [ARGS...]

Runs COMMAND and, when it ends, stops every process it left behind, then exits with its status.

Foundation's Process puts each child in a process group of its own, so stopping the tests'
process group does not reach the processes the tests started (orchestrators, connectors, brokers
of their own). A test run that crashes leaves them running, orphaned, eating the machine's two
cores. This script is a child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER): orphans of anything
below it become its children instead of init's, so after COMMAND ends it finds them all, sends
SIGTERM, waits up to 5 s, then SIGKILL, and reaps them. SIGTERM and SIGINT are passed on to COMMAND.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def children_of(pid):
    """The pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


def reap_orphans(keep):
    """Reaps the children that have ended, except `keep` (the command, whose status Popen takes)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == keep:
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] == "Z":
                os.waitpid(int(entry), os.WNOHANG)
        except (OSError, IndexError, ValueError, ChildProcessError):
            continue


def descendants(pid):
    result, todo = [], children_of(pid)
    while todo:
        child = todo.pop()
        result.append(child)
        todo.extend(children_of(child))
    return result


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reap.py: cannot become a child subreaper; left-over processes are not stopped", file=sys.stderr)
    command = subprocess.Popen(sys.argv[1:])
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, _frame: command.send_signal(received))
    # Orphans that end while the command runs (a test killed them) are reaped as they come, so
    # they do not stay zombies until the end.
    while command.poll() is None:
        reap_orphans(command.pid)
        time.sleep(0.5)
    status = command.returncode
    left = descendants(os.getpid())
    if left:
        print(f"reap.py: stopping {len(left)} process(es) the command left running", file=sys.stderr)
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and descendants(os.getpid()):
            reap()
            time.sleep(0.1)
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.1)
    reap()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
