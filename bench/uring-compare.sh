#!/usr/bin/env bash
# The io_uring send path against the uv_try_write path (issue #10), and the bench's batched
# receives against recv(): the same run-local.sh run with only the path changed, rounds
# interleaved so that machine noise hits every configuration alike.
#   bench/uring-compare.sh [-n 15000] [-b 5] [-r 3] [-o DIR] [--send-side] [--c1m]
# Configurations: A server uv_try_write + bench recv(); B server io_uring + bench recv();
# C server io_uring + bench io_uring. --send-side adds a run per path with the bench stopped
# (SIGSTOP) during each pass, so the server's send CPU is measured without the bench
# competing for the two cores. --c1m: 1,000,000 connections through bench/c1m.sh (A and B,
# one round each, about 6 minutes each). Prints a Markdown table; everything stays in DIR.
# A run in which a connection missed a broadcast, got one twice, or saw an error is a FAIL:
# marked in the table, and the script exits 1 after it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N= B=5 R=3 OUT=/tmp/wspush-uring-$(date +%Y%m%d-%H%M%S) SEND_SIDE=0 C1M=0
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    -b) B=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --send-side) SEND_SIDE=1; shift ;;
    --c1m) C1M=1; shift ;;
    -h | --help)
        cat <<EOF
usage: bench/uring-compare.sh [-n N] [-b B] [-r ROUNDS] [-o DIR] [--send-side] [--c1m]
  -n N         connections (default 15000; 1000000 with --c1m)
  -b B         broadcasts per run (default 5)
  -r ROUNDS    rounds of A, B, C (default 3; 1 with --c1m)
  -o DIR       results directory (default /tmp/wspush-uring-DATE)
  --send-side  also runs with the bench stopped during each pass (S-off, S-on)
  --c1m        1,000,000 connections through bench/c1m.sh (A and B)
Every run must deliver every broadcast to every connection, once, with no error
(run-local.sh's check); a run that does not prints FAIL and the script exits 1. The table
shows missing, errors and retries per run.
EOF
        exit 0 ;;
    *) echo "usage: bench/uring-compare.sh [-n N] [-b B] [-r ROUNDS] [-o DIR] [--send-side] [--c1m] (--help)" >&2
       exit 2 ;;
    esac
done
if [ -z "$N" ]; then N=15000; [ "$C1M" = 1 ] && N=1000000; fi
mkdir -p "$OUT"

# name server-path bench-path extra-run-local-args
CONFIGS=("A off off" "B on off" "C on on")
[ "$C1M" = 1 ] && CONFIGS=("A off off" "B on off") && R=1

# Another run-local.sh (namespace wsp_bench_*) on the same two cores would distort both:
# wait for it (bounded), and flag a run that overlapped one anyway.
others() { ip netns list 2>/dev/null | grep -c '^wsp_bench_' || true; }
wait_alone() {
    local i
    for i in $(seq 1 180); do
        [ "$(others)" = 0 ] && return 0
        [ "$i" = 1 ] && echo "uring-compare: another benchmark runs; waiting (at most 15 min)" >&2
        sleep 5
    done
    echo "uring-compare: still not alone after 15 min; going on (flagged)" >&2
}

FAILED=()
run_one() { # name spath bpath round [extra...]
    local name=$1 spath=$2 bpath=$3 round=$4 rc=0
    shift 4
    local dir="$OUT/$name-$round"
    wait_alone
    echo "uring-compare: $name round $round (server --io-uring $spath, bench --io-uring $bpath) -> $dir" >&2
    if [ "$C1M" = 1 ]; then
        "$ROOT/bench/c1m.sh" -n "$N" -b "$B" --hold 60 --ehash -o "$dir" \
            --server-args "--io-uring $spath" --bench-args "--io-uring $bpath" "$@" \
            >"$dir.log" 2>&1 || rc=$?
    else
        local procs=$(((N + 14999) / 15000)) pre=()
        [ "$procs" -gt 1 ] && pre=(-s "$procs" --prefork)
        "$ROOT/bench/run-local.sh" -n "$N" -b "$B" -t 1 "${pre[@]}" -o "$dir" \
            --server-args "--io-uring $spath" --bench-args "--io-uring $bpath" "$@" \
            >"$dir.log" 2>&1 || rc=$?
    fi
    [ "$(others)" = 0 ] || echo "OVERLAP: another benchmark ran at the end of $name-$round" | tee -a "$OUT/overlaps.txt" >&2
    if [ "$rc" != 0 ]; then
        echo "uring-compare: FAIL: $name round $round: $(grep -m1 '^run-local: FAIL: ' "$dir.log" || tail -1 "$dir.log")" >&2
        FAILED+=("$name-$round")
    fi
    [ -s "$dir/summary.json" ] || { echo "uring-compare: $name round $round: no summary (see $dir.log)" >&2; return 0; }
}

for r in $(seq 1 "$R"); do
    for c in "${CONFIGS[@]}"; do
        # shellcheck disable=SC2086
        run_one $c "$r"
    done
    if [ "$SEND_SIDE" = 1 ]; then
        run_one S-off off off "$r" --stop-bench
        run_one S-on on off "$r" --stop-bench
    fi
done

# One row per run, then the medians per configuration.
python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
print("| run | server path | bench receive | conns | completion median ms | p50 ms | p99 ms "
      "| server CPU us/msg | send-side server CPU us/msg | bench CPU us/msg | missing | errors "
      "| retries | result |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "*", "summary.json"))):
    run = os.path.basename(os.path.dirname(f))
    s = json.load(open(f))
    name = run.rsplit("-", 1)[0]
    rows.setdefault(name, []).append(s)
    spath = "uv_try_write" if name in ("A", "S-off") else "io_uring"
    side = s.get("send_side_cpu_us_per_msg")
    print(f"| {run} | {spath} | {'io_uring' if name == 'C' else 'recv'} | {s['active']} "
          f"| {s['completion_median_ms']} | {s['latency_ms']['p50']} | {s['latency_ms']['p99']} "
          f"| {s['server_cpu_us_per_msg']:.2f} | {f'{side:.2f}' if side else '-'} "
          f"| {s['bench_cpu_us_per_msg']:.2f} | {s['missing']} | {s['errors']} | {s.get('retries', '-')} "
          f"| {'ok' if s.get('ok') else '**FAIL**' if 'ok' in s else '-'} |")
def med(v):
    v = [x for x in v if x is not None]
    return f"{statistics.median(v):.2f}" if v else "-"
print()
print("| config | runs | median completion ms | median server CPU us/msg "
      "| median send-side us/msg | median bench CPU us/msg |")
print("|---|---|---|---|---|---|")
for name in ("A", "B", "C", "S-off", "S-on"):
    r = rows.get(name)
    if r:
        print(f"| {name} | {len(r)} | {med([s['completion_median_ms'] for s in r])} "
              f"| {med([s['server_cpu_us_per_msg'] for s in r])} "
              f"| {med([s.get('send_side_cpu_us_per_msg') for s in r])} "
              f"| {med([s['bench_cpu_us_per_msg'] for s in r])} |")
PY
echo "uring-compare: table in $OUT/table.md" >&2
[ ${#FAILED[@]} -eq 0 ] || { echo "uring-compare: FAIL: ${FAILED[*]} (see their .log)" >&2; exit 1; }
