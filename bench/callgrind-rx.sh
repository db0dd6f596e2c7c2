#!/usr/bin/env bash
# User-space instructions per received message in wspush-bench's receive path (the reading of
# open connections: wsp__worker_read() and what it calls), for one or more bench binaries
# against the same server: the bench's workers run under valgrind --tool=callgrind,
# collecting only inside wsp__worker_read. For checking that a change to the bench leaves
# the ws:// per-message path as lean as it was (issue #18 added wss://).
#   bench/callgrind-rx.sh [-n 2000] [-b 5] [-r ROUNDS] BENCH [BENCH...]
# Prints, per bench binary and round: messages received, instructions, instructions per
# message. Bounded: every process is killed after 150 s at the latest. Needs valgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
N=2000 B=5 R=1
while getopts "n:b:r:" o; do
    case $o in n) N=$OPTARG ;; b) B=$OPTARG ;; r) R=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: bench/callgrind-rx.sh [-n N] [-b B] [-r ROUNDS] BENCH [BENCH...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind-rx: needs valgrind" >&2; exit 1; }
OUT=$(mktemp -d /tmp/wspush-callgrind-rx-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

log=$OUT/server.log
timeout -k 5 600 "$SERVER" --threads 1 --port 0 --bind 127.0.0.1 --interval 0 --admin off \
    --io-uring off >"$log" 2>&1 &
spid=$!
pids+=("$spid")
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*event=listening .* port=\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "callgrind-rx: server did not start ($log)" >&2; exit 1; }
wpid=$(cat "/proc/$spid/task/$spid/children" | awk '{print $1}')

for r in $(seq 1 "$R"); do
    i=0
    for bench in "$@"; do
        i=$((i + 1))
        tag=$r-$i
        # One worker process (--procs 1): its callgrind file is the only one with data.
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT/cg-$tag.%p" \
            --toggle-collect=wsp__worker_read "$bench" --url "ws://127.0.0.1:$port/" \
            --conns "$N" --duration 100 --procs 1 --sources 127.0.0.1-127.0.0.20 --quiet \
            --coalesce-us 0 --status-file "$OUT/st-$tag" >"$OUT/bench-$tag.log" 2>&1 &
        bpid=$!
        pids+=("$bpid")
        (sleep 150; kill -KILL "$bpid" 2>/dev/null) &
        pids+=($!)
        for _ in $(seq 1 600); do grep -q "ramp_done=1" "$OUT/st-$tag" 2>/dev/null && break; sleep 0.2; done
        m0=$(sed -n 's/^messages=//p' "$OUT/st-$tag")
        for b in $(seq 1 "$B"); do
            kill -USR1 "$wpid"
            for _ in $(seq 1 300); do
                [ "$(sed -n 's/^messages=//p' "$OUT/st-$tag")" -ge $((m0 + b * N)) ] && break
                sleep 0.1
            done
        done
        msgs=$(($(sed -n 's/^messages=//p' "$OUT/st-$tag") - m0))
        kill -INT "$bpid"
        wait "$bpid" || true
        ir=0
        for f in "$OUT"/cg-"$tag".*; do
            v=$(callgrind_annotate "$f" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
            ir=$((ir + ${v:-0}))
        done
        # The ramp's reads (101s, no messages) count too: a baseline run with no broadcast
        # would subtract them; here they are few (one read per connection) and the same for
        # every binary compared.
        echo "round $r: $bench: $msgs messages, $ir instructions in wsp__worker_read: $(awk -v i="$ir" -v m="$msgs" 'BEGIN { printf "%.1f", m ? i / m : 0 }') per message"
    done
done
echo "callgrind-rx: files in $OUT"
