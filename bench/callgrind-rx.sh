#!/usr/bin/env bash
# User-space instructions per received message on wspush-bench's receive path: each bench
# given runs under valgrind --tool=callgrind (its worker process; collecting only inside
# wsp__worker_read, the read-and-parse path of an open connection) with N connections to a
# wspush of its own on loopback, B broadcasts. Several benches in one run compare builds on the same
# server and load, e.g. the plain path before and after a change. BENCH_ARGS (env) are passed
# to every bench, e.g. BENCH_ARGS=--deflate; PUBLISH=FILE broadcasts FILE through the admin API
# ("time" and "seq" rewritten) instead of SIGUSR1's time tick.
#   bench/callgrind-rx.sh [-n 1000] [-b 5] BENCH [BENCH ...]
# Bounded: every process is killed after 150 s at the latest. Needs valgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
N=1000 B=5
while getopts "n:b:" o; do
    case $o in n) N=$OPTARG ;; b) B=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: bench/callgrind-rx.sh [-n N] [-b B] BENCH [BENCH ...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind-rx: needs valgrind" >&2; exit 1; }
OUT=$(mktemp -d /tmp/wspush-callgrind-rx-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_server() { # $1: a name for its log; sets spid, srv, port, aport, seq
    local log=$OUT/server-$1.log
    timeout -k 5 150 "$SERVER" --threads 1 --port 0 --bind 127.0.0.1 --interval 0 \
        --admin 127.0.0.1:0 >"$log" 2>&1 &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 1 100); do grep -q "event=listening" "$log" && break; sleep 0.1; done
    port=$(sed -n 's/.*event=listening .* port=\([0-9]*\).*/\1/p' "$log" | head -1)
    aport=$(sed -n 's/.*admin_port=\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] || { echo "callgrind-rx: server did not start ($log)" >&2; exit 1; }
    srv=$(pgrep -P "$spid" | head -1) # the server under timeout: SIGUSR1 goes to it
    seq=0
}
broadcast() {
    seq=$((seq + 1))
    if [ -n "${PUBLISH:-}" ]; then
        sed "s/\"time\":[0-9]*,\"seq\":[0-9]*/\"time\":$(date +%s%3N),\"seq\":$seq/" "$PUBLISH" |
            curl -s -o /dev/null -X POST --data-binary @- "http://127.0.0.1:$aport/publish"
    else
        kill -USR1 "$srv"
    fi
}

i=0
for bench in "$@"; do
    i=$((i + 1))
    start_server "$i" # each bench its own server: the same seqs, the same bytes to parse
    st=$OUT/st-$i
    # --procs 1: one worker, whose callgrind file names its pid; the parent collects nothing.
    timeout -s INT -k 10 120 valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$OUT/cg-$i.%p.out" --toggle-collect=wsp__worker_read \
        "$bench" --url "ws://127.0.0.1:$port/" --conns "$N" --procs 1 --duration 100 \
        --sources 127.0.0.1-127.0.0.20 --quiet --status-file "$st" --coalesce-us 0 \
        ${BENCH_ARGS:-} >"$OUT/bench-$i.log" 2>&1 &
    bpid=$!
    pids+=("$bpid")
    for _ in $(seq 1 600); do grep -q "ramp_done=1" "$st" 2>/dev/null && break; sleep 0.2; done
    m0=$(sed -n 's/^messages=//p' "$st")
    for _ in $(seq 1 "$B"); do
        want=$(($(sed -n 's/^messages=//p' "$st") + N))
        broadcast
        for _ in $(seq 1 300); do [ "$(sed -n 's/^messages=//p' "$st")" -ge "$want" ] && break; sleep 0.1; done
    done
    msgs=$(($(sed -n 's/^messages=//p' "$st") - m0))
    kill -INT "$bpid" 2>/dev/null || true
    wait "$bpid" || true
    kill -TERM "$srv" 2>/dev/null || true
    wait "$spid" || true
    ir=0
    for f in "$OUT"/cg-$i.*.out; do
        v=$(callgrind_annotate "$f" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
        ir=$((ir + ${v:-0}))
    done
    echo "$bench ${BENCH_ARGS:-}: $msgs messages, $ir instructions in wsp__worker_read: $(awk -v i="$ir" -v m="$msgs" 'BEGIN { printf "%.1f", m ? i / m : 0 }') per message"
done
echo "callgrind-rx: files in $OUT"
