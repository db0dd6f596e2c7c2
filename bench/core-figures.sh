#!/usr/bin/env bash
# The core server's figures at N idle connections on one wspush process, in a network
# namespace this script creates:
#   mem      user-space bytes per idle connection (RssAnon and VmRSS deltas after a warm-up)
#   pass     broadcast pass time per shard and per broadcast (server log), B broadcasts
#   syscalls syscalls per delivered message during one broadcast (strace -c -f)
# usage: bench/core-figures.sh mem|pass|syscalls [-n 10000] [-t 1] [-b 3] [-q QUERY]
#            [-S "SERVER ARGS"] [-B "BENCH ARGS"]   (e.g. the token auth flags of both)
# Every process it starts is bounded in time and stopped by pid; the namespace is deleted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
WHAT=${1:-}
shift || true
N=10000 T=1 B=3 Q="" SARGS="" BARGS=""
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;; -t) T=$2; shift 2 ;; -b) B=$2; shift 2 ;; -q) Q=$2; shift 2 ;;
    -S) SARGS=$2; shift 2 ;; -B) BARGS=$2; shift 2 ;;
    *) WHAT="" ; break ;;
    esac
done
case $WHAT in mem | pass | syscalls) ;; *)
    echo "usage: bench/core-figures.sh mem|pass|syscalls [-n CONNS] [-t THREADS] [-b BROADCASTS] [-q '?channels=a,b'] [-S SERVER_ARGS] [-B BENCH_ARGS]" >&2
    exit 2 ;;
esac
[ "$N" -le 17000 ] || { echo "core-figures: one server process holds at most ~17,000" >&2; exit 2; }
. "$ROOT/bench/netns.sh"
netns_start core
OUT=$(mktemp -d /tmp/wspush-core-XXXXXX)

$NSX timeout 300 "$SERVER" --threads "$T" --port 8080 --bind 127.0.0.1 --interval 0 \
    --admin off $SARGS 2>"$OUT/server.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q event=listening "$OUT/server.log" && break; sleep 0.05; done
SP=$(cat /proc/${PIDS[0]}/task/${PIDS[0]}/children | awk '{print $1}')
field() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$SP/status; }
bench() { # $1 connections, $2 duration, then extra options
    local n=$1 d=$2
    shift 2
    $NSX timeout $((d + 30)) "$BENCH" --url "ws://127.0.0.1:8080/$Q" --conns "$n" --duration "$d" \
        --quiet $BARGS "$@" >>"$OUT/bench.out" 2>&1
}
# Warm-up: the first handshake faults in libcrypto's pages (~3 MB of VmRSS, once per
# process), which is not per-connection memory.
bench 100 2
sleep 1
R0=$(field VmRSS) A0=$(field RssAnon)
bench "$N" 200 --status-file "$OUT/status" --json "$OUT/report.json" &
BP=$!
PIDS+=($BP)
for _ in $(seq 1 600); do grep -q "^ramp_done=1" "$OUT/status" 2>/dev/null && break; sleep 0.1; done
grep -q "^active=$N" "$OUT/status" || { echo "ramp incomplete: $(cat "$OUT/status")" >&2; exit 1; }
sleep 1
case $WHAT in
mem)
    R1=$(field VmRSS) A1=$(field RssAnon)
    echo "threads=$T conns=$N query='$Q'"
    echo "user space per idle connection: $(((A1 - A0) * 1024 / N)) B (RssAnon $A0 -> $A1 kB); VmRSS delta $(((R1 - R0) * 1024 / N)) B ($R0 -> $R1 kB)"
    ;;
pass)
    for _ in $(seq 1 "$B"); do
        m=$(sed -n 's/^messages=//p' "$OUT/status")
        kill -USR1 "$SP"
        for _ in $(seq 1 300); do [ "$(sed -n 's/^messages=//p' "$OUT/status")" -ge $((m + N)) ] && break; sleep 0.05; done
        sleep 1
    done
    echo "threads=$T conns=$N broadcasts=$B"
    grep -oE "shard=[0-9]+ event=shard_broadcast seq=[0-9]+ .*pass_ms=[0-9.]+|event=broadcast seq=[0-9]+ .*total_ms=[0-9.]+" \
        "$OUT/server.log" | sed 's/ channel=time//'
    ;;
syscalls)
    command -v strace >/dev/null || { echo "core-figures: needs strace" >&2; exit 1; }
    timeout 20 strace -c -f -p "$SP" -o "$OUT/strace.txt" &
    STP=$!
    sleep 2
    kill -USR1 "$SP"
    for _ in $(seq 1 300); do [ "$(sed -n 's/^messages=//p' "$OUT/status")" -ge "$N" ] && break; sleep 0.05; done
    sleep 1
    kill -INT $STP
    wait $STP 2>/dev/null || true
    echo "threads=$T conns=$N: one broadcast under strace -c -f (strace slows the pass; count calls, not time)"
    grep -E "event=broadcast" "$OUT/server.log" | grep -oE "written=[0-9]+"
    sed -n '1,12p' "$OUT/strace.txt"
    ;;
esac
echo "files: $OUT"
