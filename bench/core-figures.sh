#!/usr/bin/env bash
# The core server's figures at N idle connections on one wspush process, in a network
# namespace this script creates:
#   mem      user-space bytes per idle connection (RssAnon and VmRSS deltas after a warm-up)
#   pass     broadcast pass time per shard and per broadcast (server log), B broadcasts
#   syscalls syscalls per delivered message during one broadcast (strace -c -f)
# usage: bench/core-figures.sh mem|pass|syscalls [-n 10000] [-t 1] [-b 3] [-q QUERY]
#            [-S "SERVER ARGS"] [-B "BENCH ARGS"] [-o DIR]   (e.g. the token auth flags of both)
# Writes DIR/summary.json (default: a new /tmp/wspush-core-* directory): the figures printed,
# with the provenance object of bench/provenance.py (commit, date, machine, command, binaries).
# Every process it starts is bounded in time and stopped by pid; the namespace is deleted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
WHAT=${1:-}
shift || true
CMD="$0 $*"
N=10000 T=1 B=3 Q="" SARGS="" BARGS="" OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;; -t) T=$2; shift 2 ;; -b) B=$2; shift 2 ;; -q) Q=$2; shift 2 ;;
    -S) SARGS=$2; shift 2 ;; -B) BARGS=$2; shift 2 ;; -o) OUT=$2; shift 2 ;;
    *) WHAT="" ; break ;;
    esac
done
case $WHAT in mem | pass | syscalls) ;; *)
    echo "usage: bench/core-figures.sh mem|pass|syscalls [-n CONNS] [-t THREADS] [-b BROADCASTS] [-q '?channels=a,b'] [-S SERVER_ARGS] [-B BENCH_ARGS] [-o DIR]" >&2
    exit 2 ;;
esac
[ "$N" -le 17000 ] || { echo "core-figures: one server process holds at most ~17,000" >&2; exit 2; }
. "$ROOT/bench/netns.sh"
netns_start core
if [ -n "$OUT" ]; then mkdir -p "$OUT"; else OUT=$(mktemp -d /tmp/wspush-core-XXXXXX); fi

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
    printf '{"rss_anon_kib": [%s, %s], "vmrss_kib": [%s, %s], "anon_b_per_conn": %s, "vmrss_b_per_conn": %s}\n' \
        "$A0" "$A1" "$R0" "$R1" $(((A1 - A0) * 1024 / N)) $(((R1 - R0) * 1024 / N)) >"$OUT/figures.json"
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
WSP_BENCH_DIR="$ROOT/bench" python3 - "$OUT" "$WHAT" "$N" "$T" "$B" "$Q" "$CMD" "$SERVER" "$BENCH" <<'EOF'
import json, os, re, sys
sys.path.insert(0, os.environ["WSP_BENCH_DIR"])
import provenance
out, what, n, t, b, q, cmd, server, bench = sys.argv[1:]
res = {"what": what, "conns": int(n), "threads": int(t), "query": q,
       "provenance": provenance.provenance(cmd, [server, bench])}
log = open(f"{out}/server.log").read()
if what == "mem":
    res.update(json.load(open(f"{out}/figures.json")))
if what == "pass":
    res["broadcasts"] = int(b)
    res["shard_pass_ms"] = [{"shard": int(s), "seq": int(k), "pass_ms": float(p)} for s, k, p in
                            re.findall(r"shard=(\d+) event=shard_broadcast seq=(\d+) .*?pass_ms=([\d.]+)", log)]
    res["broadcast_total_ms"] = [float(x) for x in re.findall(r"event=broadcast seq=\d+ .*?total_ms=([\d.]+)", log)]
if what == "syscalls":
    res["written"] = [int(x) for x in re.findall(r"event=broadcast .*?written=(\d+)", log)]
    calls = {}
    for line in open(f"{out}/strace.txt"):
        f = line.split()
        if len(f) >= 5 and f[-1] not in ("syscall", "total") and f[3].isdigit():
            calls[f[-1]] = int(f[3])
    res["syscalls"] = calls
    res["syscalls_total"] = sum(calls.values())
    res["per_message"] = res["syscalls_total"] / max(1, sum(res["written"]))
json.dump(res, open(f"{out}/summary.json", "w"), indent=1)
EOF
echo "files: $OUT (summary.json)"
