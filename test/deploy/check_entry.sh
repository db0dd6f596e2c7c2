#!/bin/sh
# deploy/wspush-entry.c, the image's entrypoint, built with WSP_ENTRY_BIN pointing at the real
# wspush of this build tree and run on 127.0.0.1, outside any container:
#   - --threads comes from WSP_THREADS, a --threads argument still wins, a bad WSP_THREADS
#     exits 2, the default is between 1 and the CPUs we may use;
#   - as PID 1 of a new PID namespace (unshare, root only; exit 77 otherwise) it keeps a
#     --procs supervisor from being PID 1, whose workers would otherwise exit at once with
#     "supervisor gone", forwards SIGUSR1 (a broadcast) and SIGTERM, and exits 0.
# Every process started here has a lifetime bound and is stopped by pid.
#
#   check_entry.sh ENTRY_BINARY
set -eu
entry=$1
. "$(dirname "$0")/lib.sh"
on_fail() { [ -f "$tmp/log" ] && sed 's/^/  | /' "$tmp/log"; }

# run_threads EXPECTED [ARGS...]: starts the entry (env as set by the caller), checks the
# threads= of event=listening and stops the server with SIGTERM, expecting exit 0.
run_threads() {
    want=$1
    shift
    : >"$tmp/log"
    timeout 30 "$entry" --bind 127.0.0.1 --port 0 --interval 0 --admin off "$@" 2>"$tmp/log" &
    pid=$!
    track $pid
    wait_log 'event=listening' "$tmp/log" 10
    got=$(sed -n 's/.*event=listening.* threads=\([0-9]*\).*/\1/p' "$tmp/log")
    # timeout(1) is the parent; the entry exec'd wspush in its child.
    stop_expect_0 "$(child_of "$pid")" "$pid" "the server"
    case $want in
    range) [ "$got" -ge 1 ] && [ "$got" -le "$(nproc)" ] || fail "threads=$got, want 1..$(nproc)" ;;
    *) [ "$got" = "$want" ] || fail "threads=$got, want $want" ;;
    esac
    echo "ok: WSP_THREADS='${WSP_THREADS-unset}' args='$*': threads=$got"
}

WSP_THREADS=3 run_threads 3
export WSP_THREADS=3
run_threads 1 --threads 1
unset WSP_THREADS
run_threads range
WSP_THREADS= run_threads range

for bad in 0 abc 1025 -1 2x; do
    st=0
    WSP_THREADS=$bad timeout 10 "$entry" --version >"$tmp/out" 2>&1 || st=$?
    [ "$st" -eq 2 ] || fail "WSP_THREADS=$bad: exit $st, want 2"
    grep -q "WSP_THREADS wants 1..1024" "$tmp/out" || fail "WSP_THREADS=$bad: no message"
done
echo "ok: a malformed WSP_THREADS exits 2 with a message"

need unshare util-linux
if [ "$(id -u)" != 0 ] || ! unshare --pid --fork true 2>/dev/null; then
    skip "PID 1 mode needs root and a new PID namespace (unshare --pid)"
fi

: >"$tmp/log"
timeout 60 unshare --pid --fork --kill-child "$entry" --procs 2 --threads 1 --bind 127.0.0.1 \
    --port 0 --interval 0 --admin off 2>"$tmp/log" &
pid=$!
track $pid
wait_log 'worker=0 .*event=listening' "$tmp/log" 10
wait_log 'worker=1 .*event=listening' "$tmp/log" 10
# timeout -> unshare -> the entry, PID 1 in the new namespace.
unshare_pid=$(child_of "$pid")
init=$(child_of "$unshare_pid")
[ "$(cat "/proc/$init/comm")" = "$(basename "$entry" | cut -c1-15)" ] || fail "pid $init is not the entrypoint"
# Both workers broadcasting the SIGUSR1 shows them connected to their supervisor; two
# worker_started lines, that neither was restarted (one that took its supervisor for gone
# would have exited at once).
kill -USR1 "$init"
wait_log 'event=supervisor_broadcast .*reason=sigusr1' "$tmp/log" 10
wait_log 'worker=0 .*event=broadcast seq=1 ' "$tmp/log" 10
wait_log 'worker=1 .*event=broadcast seq=1 ' "$tmp/log" 10
if grep -Eq 'supervisor gone|event=worker_exit' "$tmp/log" ||
    [ "$(grep -c 'event=worker_started' "$tmp/log")" != 2 ]; then
    fail "a worker exited under the PID-1 entrypoint"
fi
echo "ok: PID 1 entrypoint: both workers stay up, SIGUSR1 reaches them through the supervisor"
stop_expect_0 "$init" "$pid" "PID 1 entrypoint"
grep -q 'supervisor .*event=stopped' "$tmp/log" || fail "the supervisor did not log event=stopped"
echo "ok: PID 1 entrypoint: SIGTERM drains every worker, exit 0"
