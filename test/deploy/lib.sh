# Sourced by the deploy test scripts (POSIX sh): a temp directory, processes started in the
# background stopped by pid with all their descendants, bounded waits, FAIL and SKIP.
#
#   . "$(dirname "$0")/lib.sh"     then: $tmp, track PID, fail, skip, need, wait_until,
#                                  wait_log, free_port, child_of, tree, stop_expect_0,
#                                  bench_got_once
#
# A script may define on_fail (print its logs) and on_cleanup (remove what it made besides
# tracked processes, run once they are gone) after sourcing this; both run from here. Exit 77 means skipped: only for what
# `make test` cannot provide (root, a kernel feature), and test/SKIPS must list the test.

tmp=$(mktemp -d)
pids=""

on_fail() { :; }
on_cleanup() { :; }

# tree PID: PID and all its descendants, parents first.
tree() {
    echo "$1"
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
}

# track PID: stopped (with its descendants) on exit. unshare ignores SIGTERM while it waits
# and a killed timeout(1) leaves its child running: so every process is signalled by pid.
track() { pids="$pids $1"; }

# Whether any of the pids given is still running (a zombie counts as gone).
any_alive() {
    for p in "$@"; do
        st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' /proc/"$p"/status 2>/dev/null)
        [ -n "$st" ] && [ "$st" != Z ] && return 0
    done
    return 1
}

# stop_pids PID...: SIGTERM, up to 5 s for them to go, then SIGKILL.
stop_pids() {
    [ $# -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
    i=0
    while any_alive "$@" && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
}

wsp_cleanup() {
    set +e
    all=""
    for p in $pids; do all="$all $(tree "$p")"; done
    stop_pids $all
    on_cleanup
    rm -rf "$tmp"
}
trap wsp_cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    on_fail
    exit 1
}

skip() {
    echo "SKIP: $*"
    exit 77
}

# need TOOL [PACKAGE]: `make test` installs every tool, so a missing one is a failure.
need() {
    command -v "$1" >/dev/null 2>&1 ||
        fail "$1 is missing (Debian package ${2:-$1}; \`make deps\` installs it)"
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds, or fails
# the test saying WHAT did not happen within SECONDS.
wait_until() {
    secs=$1
    what=$2
    shift 2
    i=0
    until "$@"; do
        i=$((i + 1))
        [ $i -lt $((secs * 10)) ] || fail "$what: not within $secs s"
        sleep 0.1
    done
}

# wait_log PATTERN FILE SECONDS: until FILE has a line matching PATTERN (grep -E).
wait_log() {
    wait_until "$3" "a line matching '$1' in $2" grep -Eq "$1" "$2"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# child_of PID: the one child of PID (the kernel's list ends with a space).
child_of() {
    c=$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)
    set -- $c
    # stderr: this runs in $(...), whose output the caller takes as the pid
    [ $# -eq 1 ] || { echo "FAIL: pid $1 has children '$c', want exactly one" >&2; exit 1; }
    echo "$1"
}

# stop_expect_0 PID JOB WHAT: SIGTERM to PID, then JOB (a background job of this shell: PID or
# what runs it) must exit 0.
stop_expect_0() {
    kill -TERM "$1"
    st=0
    wait "$2" || st=$?
    [ "$st" -eq 0 ] || fail "$3: exit status $st after SIGTERM, want 0"
}

# bench_got_once JSON CONNS WHAT: wspush-bench's report says CONNS connections were open, no
# errors, and broadcast seq 1 reached every one of them once.
bench_got_once() {
    python3 - "$1" "$2" "$3" <<'EOF' || fail "$3: wspush-bench report"
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
b = [x for x in r["broadcasts"] if x["seq"] == 1]
ok = r["active"] == n and r["errors"]["total"] == 0 and b and b[0]["got"] == n \
    and b[0]["missing"] == 0 and b[0]["duplicates"] == 0
print(f"{sys.argv[3]}: active={r['active']} errors={r['errors']['total']} broadcast seq 1: "
      f"{b[0] if b else 'not received'}")
sys.exit(0 if ok else 1)
EOF
}
