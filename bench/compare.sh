#!/usr/bin/env bash
# wspush against the minimal push servers of bench/peers/ (Node.js ws, Netty, Go gorilla), one
# server at a time, each in its own bench/run-local.sh run: N connections from one bench
# process, B broadcasts (SIGUSR1 to the server), then one table for all of them (Markdown,
# written to the output directory and printed) and a gnuplot bar chart (compare.png). A run in
# which a connection missed a broadcast, got one twice, or saw an error is a FAIL: its row
# says so, and the script exits 1 after the table.
#   bench/compare.sh [-n 15000] [-b 5] [-S wspush,node,netty,go] [-t 2] [-g 2] [-a ARGS] [-o DIR]
# Build first: make build; bench/peers/build.sh. Needs root (ip netns). Every run is bounded
# by run-local.sh (lifetimes, cleanup by pid, its own namespace).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=15000 B=5 T=2 GAP=2 OUT="" LIST="wspush,node,netty,go" SARGS=""

usage() {
    cat <<EOF
usage: bench/compare.sh [options]
  -n N        connections per server (default $N; at most 17,000: one process each)
  -b B        broadcasts per server (default $B)
  -S LIST     servers, comma-separated, from: wspush, node (node-ws), netty, go (go-gorilla)
              (default $LIST)
  -t T        wspush --threads (default $T: wspush's own default, the online CPUs, as the
              peers get their runtimes' defaults)
  -g SEC      pause after each broadcast completes (default $GAP)
  -o DIR      results directory (default /tmp/wspush-compare-DATE)
  -a "ARGS"   more wspush options (run-local.sh --server-args), e.g. "--io-uring off"
Each server's run must deliver every broadcast to every connection, once, with no error
(run-local.sh's check: delivered = expected = connections x broadcasts); otherwise it prints
FAIL and the script exits 1. The table shows errors, missing, duplicates and retries.
EOF
}
while getopts 'n:b:S:t:g:o:a:h' o; do
    case $o in
    n) N=$OPTARG ;; b) B=$OPTARG ;; S) LIST=$OPTARG ;; t) T=$OPTARG ;; g) GAP=$OPTARG ;;
    o) OUT=$OPTARG ;; a) SARGS=$OPTARG ;; h) usage; exit 0 ;; *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { usage >&2; exit 2; }
for v in N B T; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        echo "compare: -${v,,} must be a positive integer" >&2
        exit 2
    fi
done
[ "$N" -le 17000 ] || { echo "compare: one server process holds at most ~17,000 (nofile 20,000)" >&2; exit 2; }

# Canonical names, in the order given.
NAMES=()
IFS=, read -r -a asked <<<"$LIST"
for s in "${asked[@]}"; do
    case $s in
    wspush) NAMES+=(wspush) ;;
    node | node-ws) NAMES+=(node-ws) ;;
    netty) NAMES+=(netty) ;;
    go | go-gorilla) NAMES+=(go-gorilla) ;;
    *) echo "compare: unknown server '$s' (wspush, node, netty, go)" >&2; exit 2 ;;
    esac
done
[ ${#NAMES[@]} -gt 0 ] || { usage >&2; exit 2; }
peer_of() { case $1 in node-ws) echo node ;; netty) echo netty ;; go-gorilla) echo go ;; esac; }
built() {
    case $1 in
    node) [ -f "$ROOT/build/peers/node/node_modules/ws/package.json" ] ;;
    netty) [ -f "$ROOT/build/peers/netty/classes/PushServer.class" ] ;;
    go) [ -x "$ROOT/build/peers/go/wsppeer" ] ;;
    esac
}
for s in "${NAMES[@]}"; do
    p=$(peer_of "$s")
    [ -z "$p" ] || built "$p" || { echo "compare: $s is not built: bench/peers/build.sh $p" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "compare: needs python3" >&2; exit 1; }

OUT=${OUT:-/tmp/wspush-compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# run-local.sh cleans up after itself and exits 130 on ^C; stop here too, not at the next run.
trap 'echo "compare: interrupted" >&2; exit 130' INT TERM
VERS=$ROOT/build/peers/VERSIONS.txt
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    srv=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
    echo "wspush: $("$srv" --version 2>&1 | head -1) ($srv), tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), --threads $T${SARGS:+ $SARGS}"
    if [ -f "$VERS" ]; then cat "$VERS"; else echo "peers: no $VERS (bench/peers/build.sh)"; fi
} >"$OUT/versions.txt"
echo "compare: ${NAMES[*]}; $N connections, $B broadcasts each; results in $OUT"
cat "$OUT/versions.txt"

# One run-local.sh per server; a failed run is marked FAIL in its row and the others go on.
FAILED=()
for s in "${NAMES[@]}"; do
    echo "== $s"
    # Two benchmarks on the same two cores distort each other: say so where it happened.
    others=$(ip netns list 2>/dev/null | grep -o '^wsp_[a-z]*_[0-9]*' | tr '\n' ' ' || true)
    [ -z "$others" ] || echo "overlap: the $s run started beside other benchmark namespaces: $others" |
        tee -a "$OUT/versions.txt"
    rm -f "$OUT/$s/summary.json"
    if [ "$s" = wspush ]; then
        args=(-s 1 -t "$T")
        [ -z "$SARGS" ] || args+=(--server-args "$SARGS")
    else
        args=(--server-cmd "$ROOT/bench/peers/run.sh $(peer_of "$s")")
    fi
    "$ROOT/bench/run-local.sh" -n "$N" -b "$B" -g "$GAP" -o "$OUT/$s" "${args[@]}" \
        >"$OUT/$s.log" 2>&1 || {
        echo "compare: FAIL: $s: $(grep -m1 '^run-local: FAIL: ' "$OUT/$s.log" || tail -1 "$OUT/$s.log")"
        FAILED+=("$s")
    }
    grep -E '^(connections|setup|server user|broadcast completion|latency|server CPU|messages|delivery|errors|kernel counters|result) ' \
        "$OUT/$s.log" || true
done

python3 - "$OUT" "$N" "$B" "${NAMES[@]}" <<'EOF'
import json, os, sys
out, n, b, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
head = ("| server | connections | setup rate (/s) | RSS B/conn (VmRSS) | RssAnon B/conn | "
        "broadcast completion, median (ms) | latency p50 (ms) | latency p99 (ms) | "
        "server CPU µs/msg | errors / missing / dup / retries | other CPU (s) |")
rows = [head, "|" + "---|" * (head.count("|") - 1)]
dat, info = [], []
for i, s in enumerate(names):
    p = f"{out}/{s}/summary.json"
    if not os.path.exists(p):
        rows.append(f"| {s} | run failed (see {s}.log) |" + " |" * 9)
        info.append(f"{s}: run failed (FAIL)")
        continue
    j = json.load(open(p))
    lat = j["latency_ms"]
    rows.append(f"| {s} | {j['active']:,} | {j['setup_rate_per_s']:,.0f} | {j['rss_b_per_conn']:,.0f} | "
                f"{j['anon_b_per_conn']:,.0f} | {j['completion_median_ms']:.1f} | {lat['p50']:.1f} | "
                f"{lat['p99']:.1f} | {j['server_cpu_us_per_msg']:.2f} | "
                f"{j['errors']} / {j['missing']} / {j['duplicates']} / {j['retries']}"
                f"{'' if j['ok'] else ' **FAIL**'} | {j['other_cpu_s']:.2f} |")
    info.append(f"{s}: {j['active']:,} connected; {j['errors']} / {j['missing']} / {j['duplicates']}"
                f" / {j['retries']}{'' if j['ok'] else ' FAIL'}")
    dat.append(f"{i} {s} {j['setup_rate_per_s']} {j['rss_b_per_conn']} {j['anon_b_per_conn']} "
               f"{j['completion_median_ms']} {lat['p50']} {lat['p99']} {j['server_cpu_us_per_msg']}")
md = "\n".join([f"{n} connections per server, {b} broadcasts, one server at a time "
                f"(bench/compare.sh; versions below)", ""] + rows + [
    "", "RSS: (VmRSS after the ramp - VmRSS before) / connections, so it includes what the first "
    "connections fault in once (libcrypto for wspush, JIT code and heap growth for the JVM); "
    "RssAnon is the same delta for anonymous memory only. Completion: last receive - the time "
    "in the message (stamped when the server got SIGUSR1). Server CPU: utime+stime of all its "
    "threads across the broadcasts / messages delivered. Other CPU: the machine's busy time "
    "outside server and bench during the broadcasts. FAIL: a connection missed a broadcast, got "
    "one twice, or an error occurred (run-local.sh's summary says which).", "", "```",
    open(f"{out}/versions.txt").read().rstrip(), "```", ""])
open(f"{out}/results.md", "w").write(md)
open(f"{out}/compare.dat", "w").write("\n".join(dat) + "\n")
open(f"{out}/compare-info.gp", "w").write('info = "%s"\n' % "\\n".join(["errors / missing / duplicates / retries", ""] + info))
print(md)
EOF

if ! command -v gnuplot >/dev/null; then
    echo "compare: gnuplot missing (apt-get install gnuplot-nox): no chart" >&2
    [ ${#FAILED[@]} -eq 0 ] || echo "compare: FAIL: ${FAILED[*]}" >&2
    exit $((${#FAILED[@]} > 0))
fi
[ -s "$OUT/compare.dat" ] || { echo "compare: no run succeeded: no chart" >&2; exit 1; }
# One bar panel: title, label format, then one or two "column:colour:key" series side by side
# (an empty key: no legend entry); the values of the last series are written over its bars.
# shellcheck disable=SC2016 # the $1 and $N in the printf formats are gnuplot's columns
panel() {
    local title=$1 fmt=$2 w x col colour key i=0 src="plot d" xtic
    shift 2
    w=$(awk -v k=$# 'BEGIN { print 0.72 / k }')
    echo "set title \"$title\""
    for s in "$@"; do
        IFS=: read -r col colour key <<<"$s"
        x=$(awk -v i=$i -v k=$# -v w="$w" 'BEGIN { print (i - (k - 1) / 2) * w }')
        xtic=""
        [ $i -gt 0 ] || xtic=":xtic(2)"
        key=${key:+title \"$key\"}
        printf '%s using ($1%+g):%s:(%s)%s with boxes lc rgb "%s" %s, \\\n' "$src" "$x" "$col" "$w" \
            "$xtic" "$colour" "${key:-notitle}"
        src='    ""'
        i=$((i + 1))
    done
    printf '%s using ($1%+g):%s:(sprintf("%s", $%s)) with labels offset 0,0.7 notitle\n' "$src" "$x" \
        "$col" "$fmt" "$col"
}
{
    cat <<GP
set terminal pngcairo size 1200,700 font "sans,10"
set output "$OUT/compare.png"
set style fill solid 0.8 border -1
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set xrange [-0.6:${#NAMES[@]} - 0.4]
set key outside top center horizontal
load "$OUT/compare-info.gp"
set multiplot layout 2,3 title "wspush and peers: $N connections, $B broadcasts (bench/compare.sh)"
d = "$OUT/compare.dat"
GP
    panel "setup rate (connections/s)" %.0f "3:#4477aa:"
    panel "server RSS per connection (bytes)" %.0f "5:#88ccee:RssAnon delta" "4:#4477aa:VmRSS delta"
    panel "broadcast completion, median (ms)" %.0f "6:#228833:"
    panel "delivery latency (ms)" %.0f "7:#ccbb44:p50" "8:#ee6677:p99"
    panel "server CPU per delivered message (µs)" %.1f "9:#aa3377:"
    cat <<GP
unset title; unset border; unset tics; unset grid; unset key
set label 1 info at graph 0, graph 0.9 left
plot [0:1] [0:1] NaN notitle
unset multiplot
GP
} >"$OUT/compare.gp"
gnuplot "$OUT/compare.gp"
echo "compare: $OUT/results.md, $OUT/compare.png"
[ ${#FAILED[@]} -eq 0 ] || { echo "compare: FAIL: ${FAILED[*]} (see their .log)" >&2; exit 1; }
