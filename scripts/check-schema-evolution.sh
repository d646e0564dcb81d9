#!/usr/bin/env bash
# The schema-evolution step of `make test`: `onewindow topics check` against the previous release,
# so a change to Topics/ that breaks the readers of events already on the log fails the tests.
#
# The previous release is the last tag reachable from HEAD (`git describe --tags --abbrev=0`);
# the repository's first is v0.10.0, on the last commit before issue 11. Without a tag (a clone
# of a repository whose tags were not pushed), the first commit whose Topics/ has schemas (the
# very first commit's catalog.yaml is no longer read by today's loader, and names types whose
# schemas came a commit later) — and then what it finds is listed as a warning, not refused: no
# release, no deployed reader to break, and the history before the first release did change
# (on 2026-11-29 it lists 18 changes, ownerField added to the approval topics). Skipped, with a
# note, where there is nothing to compare with: a source archive (no git), or a shallow clone
# without tags (CI checkouts fetch one commit and no tags unless told: `fetch-depth: 0`, or
# `git fetch --tags --unshallow`).
#
# Usage: scripts/check-schema-evolution.sh [PATH-TO-onewindow]   (default .build/debug/onewindow)
set -euo pipefail
cd "$(dirname "$0")/.."
onewindow=${1:-.build/debug/onewindow}

if ! git rev-parse --git-dir >/dev/null 2>&1; then
    echo "schema check: not a git checkout, no previous version to compare with; skipped"
    exit 0
fi
base=$(git describe --tags --abbrev=0 2>/dev/null || true)
if [ -z "$base" ]; then
    if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
        echo "schema check: a shallow clone without tags has no previous version; skipped (git fetch --tags --unshallow)"
        exit 0
    fi
    # The whole list is read and its first line kept: `| head -n 1` under pipefail fails with
    # SIGPIPE (exit 141) once the list outgrows the pipe (CI on 2026-11-29).
    first_commits=$(git log --reverse --format=%H -- Topics/schemas)
    base=${first_commits%%$'\n'*}
    if [ -z "$base" ]; then
        echo "schema check: no commit has Topics/schemas yet; skipped"
        exit 0
    fi
    echo "schema check: no release tag; comparing with $(git log -1 --format='%h (%s)' "$base" | cut -c1-100)"
    status=0
    "$onewindow" topics check --against "$base" --catalog Topics || status=$?
    if [ "$status" = 1 ]; then
        echo "schema check: no release yet, so the changes above are listed, not refused; tag a release (git tag -a vX.Y.Z) to enforce them"
        exit 0
    fi
    exit "$status"
fi
echo "schema check: comparing with the last release tag $base"
exec "$onewindow" topics check --against "$base" --catalog Topics
