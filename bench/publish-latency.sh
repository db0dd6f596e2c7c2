#!/usr/bin/env bash
# Publish-to-last-delivery through the admin API and through Redis, at N idle connections.
# One wspush (--threads T, --admin, --redis) and a redis-server on loopback ports of a
# network namespace this script creates; wspush-bench holds the connections. Each publish
# carries {"time":<ms just before the request>,"seq":S}, so the bench's per-broadcast table
# gives first and last receive after the publisher's clock: HTTP or Redis included.
#   bench/publish-latency.sh [-n 15000] [-b 3] [-t 2] [-o DIR]
# Writes DIR/summary.json (default: a new /tmp/wspush-publish-* directory): every publish's
# first and last receive, with the provenance object of bench/provenance.py.
# Every process has a bounded lifetime and is stopped by pid; the namespace is deleted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
CMD="$0 $*"
CONNS=15000 B=3 T=2 OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    -n) CONNS=$2; shift 2 ;;
    -b) B=$2; shift 2 ;;
    -t) T=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    *) echo "usage: bench/publish-latency.sh [-n CONNS] [-b PUBLISHES] [-t THREADS] [-o DIR]" >&2; exit 2 ;;
    esac
done
[ "$CONNS" -le 17000 ] || { echo "publish-latency: one server process holds at most ~17,000" >&2; exit 2; }
for c in redis-server redis-cli curl; do
    command -v $c >/dev/null || { echo "publish-latency: needs $c" >&2; exit 1; }
done
. "$ROOT/bench/netns.sh"
netns_start pub
if [ -n "$OUT" ]; then mkdir -p "$OUT"; else OUT=$(mktemp -d /tmp/wspush-publish-XXXXXX); fi

$NSX timeout 600 redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no \
    >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
$NSX timeout 600 "$SERVER" --threads "$T" --port 8080 --bind 127.0.0.1 --interval 0 \
    --admin 127.0.0.1:8081 --redis redis://127.0.0.1:6390 --channel bench 2>"$OUT/server.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q event=redis_subscribed "$OUT/server.log" && break; sleep 0.1; done
grep -q event=redis_subscribed "$OUT/server.log" || { echo "server not subscribed" >&2; exit 1; }

$NSX timeout 600 "$BENCH" --url ws://127.0.0.1:8080/ --conns "$CONNS" --duration 300 --quiet \
    --json "$OUT/report.json" --status-file "$OUT/status" >"$OUT/bench.out" 2>&1 &
BENCH_PID=$!
PIDS+=($BENCH_PID)
for _ in $(seq 1 600); do grep -q "^ramp_done=1" "$OUT/status" 2>/dev/null && break; sleep 0.1; done
grep -q "^active=$CONNS" "$OUT/status" || { echo "ramp incomplete: $(cat "$OUT/status")" >&2; exit 1; }
sleep 1

now_ms() { date +%s%3N; }
messages() { sed -n 's/^messages=//p' "$OUT/status"; }
wait_all() { # until every connection has one more message (bounded)
    local want=$1
    for _ in $(seq 1 300); do [ "$(messages)" -ge "$want" ] && return; sleep 0.05; done
    echo "publish-latency: delivery incomplete" >&2
}
m=$(messages)
for i in $(seq 1 "$B"); do # admin API: seq 1000+i
    $NSX curl -s -o /dev/null -X POST --data-binary "{\"time\":$(now_ms),\"seq\":$((1000 + i))}" \
        http://127.0.0.1:8081/publish
    m=$((m + CONNS)); wait_all $m; sleep 1
done
for i in $(seq 1 "$B"); do # Redis: seq 2000+i
    $NSX redis-cli -p 6390 PUBLISH bench "{\"time\":$(now_ms),\"seq\":$((2000 + i))}" >/dev/null
    m=$((m + CONNS)); wait_all $m; sleep 1
done
kill -INT "$BENCH_PID"
for _ in $(seq 1 300); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.1; done
WSP_BENCH_DIR="$ROOT/bench" python3 - "$OUT/report.json" "$CONNS" "$T" "$CMD" "$SERVER" "$BENCH" "$B" <<'EOF'
import json, os, statistics, sys
sys.path.insert(0, os.environ["WSP_BENCH_DIR"])
import provenance
r = json.load(open(sys.argv[1]))
npub = int(sys.argv[7])
# Only the seqs published (1001.., 2001..): the bench counts every seq between the lowest and
# the highest it saw as expected, which here spans the unused 1004..2000.
summary = {"conns": int(sys.argv[2]), "threads": int(sys.argv[3]), "publishes": npub,
           "paths": {}, "duplicates": r["duplicates"], "errors": r["errors"]["total"],
           "provenance": provenance.provenance(sys.argv[4], sys.argv[5:7])}
print(f"publish-to-delivery at {sys.argv[2]} connections, one wspush --threads {sys.argv[3]} "
      f"(ms after the publisher's clock)")
print(f"{'path':8} {'seq':>5} {'got':>6} {'missing':>7} {'first':>8} {'last':>8}")
for path, lo in (("admin", 1000), ("redis", 2000)):
    rows = [b for b in r["broadcasts"] if lo < b["seq"] <= lo + npub]
    for b in rows:
        print(f"{path:8} {b['seq']:>5} {b['got']:>6} {b['missing']:>7} {b['first_ms']:>8.1f} {b['last_ms']:>8.1f}")
    if rows:
        print(f"{path:8} median last receive {statistics.median(b['last_ms'] for b in rows):.1f} ms")
    summary["paths"][path] = [{k: b[k] for k in ("seq", "got", "missing", "first_ms", "last_ms")}
                              for b in rows]
summary["missing"] = sum(b["missing"] for rows in summary["paths"].values() for b in rows)
print(f"missing {summary['missing']}, duplicates {summary['duplicates']}, errors {summary['errors']}")
json.dump(summary, open(os.path.join(os.path.dirname(sys.argv[1]), "summary.json"), "w"), indent=1)
EOF
echo "files: $OUT"
