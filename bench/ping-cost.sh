#!/usr/bin/env bash
# Server CPU per WebSocket ping: N idle connections held by wspush-bench (which answers
# pings), one wspush --threads 1 with --ping-interval I, server CPU over W seconds compared
# with the same run without pings. Inside a network namespace this script creates.
#   bench/ping-cost.sh [-n 15000] [-i 5] [-w 30] [-o DIR]
# Writes DIR/summary.json (both runs' CPU and pings, with bench/provenance.py's object).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
CMD="$0 $*"
N=15000 I=5 W=30 OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;; -i) I=$2; shift 2 ;; -w) W=$2; shift 2 ;; -o) OUT=$2; shift 2 ;;
    *) echo "usage: bench/ping-cost.sh [-n CONNS] [-i PING_INTERVAL] [-w WINDOW_S] [-o DIR]" >&2; exit 2 ;;
    esac
done
. "$ROOT/bench/netns.sh"
netns_start ping
if [ -n "$OUT" ]; then mkdir -p "$OUT"; else OUT=$(mktemp -d /tmp/wspush-ping-XXXXXX); fi
cpu_ns() { local t=0 v; for f in /proc/"$1"/task/*/schedstat; do read -r v _ <"$f"; t=$((t + v)); done; echo $t; }
run() { # $1 = ping interval (0 = off); prints "cpu_ns pings"
    local out log st
    out=$(mktemp -d)
    ip netns exec "$NS" timeout $((W + 120)) "$SERVER" --threads 1 --port 8080 --bind 127.0.0.1 \
        --interval 0 --admin 127.0.0.1:8081 --ping-interval "$1" 2>"$out/server.log" &
    local sp=$!
    PIDS+=($sp)
    sleep 0.5
    ip netns exec "$NS" timeout $((W + 120)) "$BENCH" --url ws://127.0.0.1:8080/ --conns "$N" \
        --duration $((W + 60)) --quiet --status-file "$out/status" >"$out/bench.out" 2>&1 &
    local bp=$!
    PIDS+=($bp)
    for _ in $(seq 1 600); do grep -q "^ramp_done=1" "$out/status" 2>/dev/null && break; sleep 0.1; done
    sleep 2
    local spid
    spid=$(cat /proc/$sp/task/$sp/children | awk '{print $1}')
    local c0 p0 c1 p1
    c0=$(cpu_ns "$spid")
    p0=$(ip netns exec "$NS" curl -s http://127.0.0.1:8081/metrics | awk '/^wspush_pings_total/{s+=$2} END{print s+0}')
    sleep "$W"
    c1=$(cpu_ns "$spid")
    p1=$(ip netns exec "$NS" curl -s http://127.0.0.1:8081/metrics | awk '/^wspush_pings_total/{s+=$2} END{print s+0}')
    local closed
    closed=$(ip netns exec "$NS" curl -s http://127.0.0.1:8081/metrics | awk '/^wspush_connections_closed_total/{s+=$2} END{print s+0}')
    kill -INT $bp; wait $bp 2>/dev/null || true
    kill -TERM $sp; wait $sp 2>/dev/null || true
    echo "$((c1 - c0)) $((p1 - p0)) $closed"
    rm -rf "$out"
}
read -r base_cpu base_pings base_closed < <(run 0)
read -r ping_cpu pings closed < <(run "$I")
echo "connections $N, window ${W}s, --ping-interval $I"
echo "server CPU without pings: $((base_cpu / 1000000)) ms; with pings: $((ping_cpu / 1000000)) ms; pings sent $pings; connections closed $closed"
WSP_BENCH_DIR="$ROOT/bench" python3 - "$OUT" "$CMD" "$SERVER" "$BENCH" <<EOF
import json, os, sys
sys.path.insert(0, os.environ["WSP_BENCH_DIR"])
import provenance
n=$N; i=$I; w=$W; d=$ping_cpu-$base_cpu; p=max($pings,1)
us=d/1e3/p
print(f'server CPU per ping (write + pong read): {us:.2f} us')
print(f'at 1,000,000 connections and --ping-interval {i}: {us*1e6/i/1e6:.2f} s of CPU per second ({us*1e6/i/1e4:.0f}% of one core); at 60 s: {us*1e6/60/1e4:.1f}% of one core')
json.dump({"conns": n, "ping_interval_s": i, "window_s": w, "server_cpu_ns_without": $base_cpu,
           "server_cpu_ns_with": $ping_cpu, "pings": $pings, "closed_with": $closed,
           "closed_without": $base_closed, "us_per_ping": us,
           "provenance": provenance.provenance(sys.argv[2], sys.argv[3:5])},
          open(os.path.join(sys.argv[1], "summary.json"), "w"), indent=1)
print(f"files: {sys.argv[1]} (summary.json)")
EOF
