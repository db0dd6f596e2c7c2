#!/usr/bin/env bash
# User-space instructions per delivered message in wspush's broadcast passes, per send path:
# the server under valgrind --tool=callgrind collecting only inside on_shard_wake (the passes),
# wspush-bench holding N connections on loopback, B SIGUSR1 broadcasts. Kernel time is not
# counted (callgrind sees user space only): this is the part the server's own code costs.
#   bench/callgrind-pass.sh [-n 2000] [-b 3] [-o DIR] [off|on ...]     (default: off on)
# Writes DIR/summary.json (per path: messages, instructions, per message, the top functions)
# with the provenance object of bench/provenance.py.
# Bounded: every process is killed after 150 s at the latest. Needs valgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
CMD="$0 $*"
N=2000 B=3 OUT=""
while getopts "n:b:o:" o; do
    case $o in n) N=$OPTARG ;; b) B=$OPTARG ;; o) OUT=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- off on
command -v valgrind >/dev/null || { echo "callgrind-pass: needs valgrind" >&2; exit 1; }
if [ -n "$OUT" ]; then mkdir -p "$OUT"; else OUT=$(mktemp -d /tmp/wspush-callgrind-XXXXXX); fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

for path in "$@"; do
    log=$OUT/server-$path.log
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-$path.out" \
        --toggle-collect=on_shard_wake "$SERVER" --threads 1 --port 0 --bind 127.0.0.1 \
        --interval 0 --admin off --io-uring "$path" >"$log" 2>&1 &
    vpid=$!
    pids+=("$vpid")
    (sleep 150; kill -KILL "$vpid" 2>/dev/null) &
    pids+=($!)
    port=""
    for _ in $(seq 1 150); do
        port=$(sed -n 's/.*event=listening .* port=\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        sleep 0.2
    done
    [ -n "$port" ] || { echo "callgrind-pass: server did not start ($log)" >&2; exit 1; }
    timeout -s INT -k 10 120 "$BENCH" --url "ws://127.0.0.1:$port/" --conns "$N" --duration 100 \
        --sources 127.0.0.1-127.0.0.20 --quiet --status-file "$OUT/st-$path" \
        >"$OUT/bench-$path.log" 2>&1 &
    bpid=$!
    pids+=("$bpid")
    for _ in $(seq 1 300); do grep -q "ramp_done=1" "$OUT/st-$path" 2>/dev/null && break; sleep 0.2; done
    for _ in $(seq 1 "$B"); do kill -USR1 "$vpid"; sleep 2; done
    kill -INT "$bpid"; wait "$bpid" || true
    kill -TERM "$vpid"; wait "$vpid" || true
    written=$(sed -n 's/.*event=shard_broadcast .* written=\([0-9]*\) .*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    ir=$(callgrind_annotate "$OUT/cg-$path.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    echo "$path $written ${ir:-0}" >>"$OUT/figures.txt"
    callgrind_annotate --inclusive=yes "$OUT/cg-$path.out" >"$OUT/annotate-$path.txt" 2>/dev/null || true
    echo "--io-uring $path: $written messages written in the passes, ${ir:-?} instructions in on_shard_wake: $(awk -v i="${ir:-0}" -v w="$written" 'BEGIN { printf "%.1f", w ? i / w : 0 }') per message"
    callgrind_annotate --inclusive=yes "$OUT/cg-$path.out" 2>/dev/null |
        grep -E "shard_walk|wsp_conn_send|uv_try_write|wsp_uring_send|wsp_uring_flush" | head -6 || true
done
WSP_BENCH_DIR="$ROOT/bench" python3 - "$OUT" "$N" "$B" "$CMD" "$SERVER" "$BENCH" <<'EOF'
import json, os, re, sys
sys.path.insert(0, os.environ["WSP_BENCH_DIR"])
import provenance
out, n, b, cmd, server, bench = sys.argv[1:]
res = {"conns": int(n), "broadcasts": int(b), "paths": {},
       "provenance": provenance.provenance(cmd, [server, bench])}
for line in open(f"{out}/figures.txt"):
    path, written, ir = line.split()
    top = []
    try:
        for l in open(f"{out}/annotate-{path}.txt"):
            m = re.match(r"\s*([\d,]+) .*?\s(\S+) \[", l)
            if m and re.search(r"shard_walk|wsp_conn_send|uv_try_write|wsp_uring_send|wsp_uring_flush|wsp_conn_direct_fd", l):
                top.append({"function": m.group(2), "instructions_inclusive": int(m.group(1).replace(",", ""))})
    except OSError:
        pass
    res["paths"][path] = {"messages": int(written), "instructions": int(ir),
                          "per_message": int(ir) / int(written) if int(written) else None,
                          "functions": top[:8]}
json.dump(res, open(f"{out}/summary.json", "w"), indent=1)
EOF
echo "callgrind-pass: files in $OUT (summary.json)"
