#!/usr/bin/env bash
# What a second shard buys: wspush --threads 1 against --threads 2, at 15,000 connections (one
# process) and at 100,000 (--prefork, one worker process per 15,000), each in two modes:
#   full  the ordinary run-local.sh broadcasts: the bench reads while the server writes
#   send  send side only: the bench is SIGSTOPped, the broadcast lands in the socket buffers
#         (nothing reads), the server's pass time and CPU are taken, then SIGCONT and the
#         drain is checked: every connection must get every message (0 missing)
# From the server logs (`shard=N event=shard_broadcast ... pass_ms=`): per-shard pass time and
# its cost per message; from run-local.sh: server CPU per message, completion, errors. One
# Markdown table (results.md in the output directory, and printed); per-shard rows in
# shards.tsv. A run in which a connection missed a broadcast, got one twice, or saw an error is
# a FAIL: marked in the table, and the script exits 1 after it.
#   bench/shard-scaling.sh [-n "15000 100000"] [-t "1 2"] [-m "full send"] [-b 3] [-p 15000] [-a ARGS] [-o DIR]
# Needs root (ip netns) and make build. Every run is bounded by run-local.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS_LIST="15000 100000" T_LIST="1 2" MODES="full send" B=3 PER=15000 GAP=2 OUT="" SARGS=""

usage() {
    cat <<EOF
usage: bench/shard-scaling.sh [options]
  -n "N ..."     connection counts (default "$NS_LIST")
  -t "T ..."     wspush --threads values (default "$T_LIST")
  -m "MODE ..."  full and/or send (default "$MODES")
  -b B           broadcasts per run (default $B)
  -p PER         connections per server process; more than PER runs --prefork with
                 ceil(N / PER) workers (default $PER: the 20,000 open-file cap)
  -g SEC         pause after each broadcast (default $GAP)
  -o DIR         results directory (default /tmp/wspush-shards-DATE)
  -a "ARGS"      more wspush options for every run (run-local.sh --server-args), e.g.
                 "--io-uring off"
Every run must deliver every broadcast to every connection, once, with no error (run-local.sh's
check: delivered = expected = connections x broadcasts); a run that does not prints FAIL and
the script exits 1. The table shows delivered, missing, duplicates, errors and retries.
EOF
}
while getopts 'n:t:m:b:p:g:o:a:h' o; do
    case $o in
    n) NS_LIST=$OPTARG ;; t) T_LIST=$OPTARG ;; m) MODES=$OPTARG ;; b) B=$OPTARG ;;
    p) PER=$OPTARG ;; g) GAP=$OPTARG ;; o) OUT=$OPTARG ;; a) SARGS=$OPTARG ;; h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { usage >&2; exit 2; }
for v in $NS_LIST $T_LIST $B $PER; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "shard-scaling: '$v' is not a positive integer" >&2; exit 2; }
done
for m in $MODES; do
    case $m in full | send) ;; *) echo "shard-scaling: mode '$m': full or send" >&2; exit 2 ;; esac
done
[ "$PER" -le 17000 ] || { echo "shard-scaling: -p at most 17,000 (nofile 20,000)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "shard-scaling: needs python3" >&2; exit 1; }
OUT=${OUT:-/tmp/wspush-shards-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# run-local.sh cleans up after itself and exits 130 on ^C; stop here too, not at the next run.
trap 'echo "shard-scaling: interrupted" >&2; exit 130' INT TERM
echo "shard-scaling: connections $NS_LIST; threads $T_LIST; modes $MODES; $B broadcasts${SARGS:+; server args $SARGS}; results in $OUT"

RUNS=() FAILED=()
for n in $NS_LIST; do
    procs=$(((n + PER - 1) / PER))
    for t in $T_LIST; do
        for m in $MODES; do
            name=n$n-p$procs-t$t-$m
            args=(-n "$n" -s "$procs" -t "$t" -b "$B" -g "$GAP" -o "$OUT/$name")
            [ "$procs" -lt 2 ] || args+=(--prefork)
            [ "$m" = full ] || args+=(--stop-bench)
            [ -z "$SARGS" ] || args+=(--server-args "$SARGS")
            echo "== $name: run-local.sh ${args[*]}"
            rm -f "$OUT/$name/summary.json"
            others=$(ip netns list 2>/dev/null | grep -o '^wsp_[a-z]*_[0-9]*' | tr '\n' ' ' || true)
            [ -z "$others" ] || echo "overlap: $name started beside other benchmark namespaces: $others" |
                tee -a "$OUT/overlaps.txt"
            "$ROOT/bench/run-local.sh" "${args[@]}" >"$OUT/$name.log" 2>&1 || {
                echo "shard-scaling: FAIL: $name: $(grep -m1 '^run-local: FAIL: ' "$OUT/$name.log" || tail -1 "$OUT/$name.log")"
                FAILED+=("$name")
            }
            grep -E '^run-local: broadcast [0-9]+: |^(broadcast completion|server CPU|send side|messages|delivery|errors|result) ' \
                "$OUT/$name.log" || true
            RUNS+=("$name")
        done
    done
done

python3 - "$OUT" "$B" "$SARGS" "${RUNS[@]}" <<'EOF'
import glob, json, os, re, statistics, sys
out, bcasts, sargs, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
kv = re.compile(r"(\w+)=(\S+)") # log lines are key=value; fields get added (uring_sends=)
med = statistics.median
rows = ["| connections | processes × threads | mode | shards | pass per shard, ms: median (min–max) | "
        "µs per message in a pass, median | process pass (first shard start → last end), ms median | "
        "io_uring sends per pass, median | server CPU µs/msg | completion, ms median | "
        "delivered / missing / dup / errors / retries |",
        "|" + "---|" * 11]
tsv = ["run\tpid\tshard\tseq\twritten\tfailed\turing_sends\tpass_ms\tus_per_msg"]
for run in runs:
    n, p, t, mode = re.match(r"n(\d+)-p(\d+)-t(\d+)-(\w+)", run).groups()
    what = f"| {int(n):,} | {p} × {t} | {'send side only (bench stopped)' if mode == 'send' else 'full'} |"
    sj = f"{out}/{run}/summary.json"
    if not os.path.exists(sj):
        rows.append(what + f" run failed (see {run}.log) |" + " |" * 7)
        continue
    j = json.load(open(sj))
    passes, totals, uring = [], [], []
    for log in sorted(glob.glob(f"{out}/{run}/server-*.log")):
        for line in open(log, errors="replace"):
            f = dict(kv.findall(line))
            if f.get("event") == "shard_broadcast" and "pass_ms" in f:
                w, ms = int(f["written"]), float(f["pass_ms"])
                passes.append((log, f.get("pid"), f["shard"], ms, 1e3 * ms / w if w else 0.0))
                if "uring_sends" in f:
                    uring.append(int(f["uring_sends"]))
                tsv.append(f"{run}\t{f.get('pid', '-')}\t{f['shard']}\t{f['seq']}\t{w}\t"
                           f"{f.get('failed', '')}\t{f.get('uring_sends', '')}\t{ms}\t"
                           f"{1e3 * ms / w if w else 0:.2f}")
            elif f.get("event") == "broadcast" and "total_ms" in f:
                totals.append(float(f["total_ms"]))
    shards = len({(log, pid, shard) for log, pid, shard, _, _ in passes})
    ms = [x[3] for x in passes]
    per = [x[4] for x in passes if x[4] > 0]
    pass_col = f"{med(ms):.1f} ({min(ms):.1f}–{max(ms):.1f})" if ms else "no passes logged"
    if passes and len(passes) != shards * bcasts:
        pass_col += f" ⚠ {len(passes)} passes for {shards} shards × {bcasts}"
    uring_col = f"{med(uring):.0f}" if uring else "–"
    cpu = j["send_side_cpu_us_per_msg"] if mode == "send" else j["server_cpu_us_per_msg"]
    comp = "– (includes the stop)" if mode == "send" else f"{j['completion_median_ms']:.1f}"
    ok = j["ok"] and j["delivered"] == j["active"] * bcasts and not (
        j["missing"] or j["duplicates"] or j["errors"])
    rows.append(what + f" {shards} | {pass_col} | {med(per) if per else 0:.2f} | "
                f"{med(totals) if totals else 0:.1f} | {uring_col} | {cpu:.2f} | {comp} | "
                f"{j['delivered']:,} / {j['missing']} / {j['duplicates']} / {j['errors']} / "
                f"{j['retries']}{'' if ok else ' ⚠ FAIL'} |")
md = "\n".join(["wspush shard scaling (bench/shard-scaling.sh): per-shard pass time from the server "
                "log (`event=shard_broadcast ... pass_ms=`), server CPU per message from "
                "/proc/PID/task/*/schedstat (full: across the broadcasts until every client had it; "
                "send side: trigger until every process logged its pass, the bench stopped).", ""]
               + rows + ["", f"{bcasts} broadcasts per run; wspush options: "
                         f"{sargs or 'defaults'} (plus run-local.sh's --interval 0 --admin off); ⚠ FAIL marks a run with fewer deliveries than "
                         "connections × broadcasts, or any missing, duplicate or error."])
if os.path.exists(f"{out}/overlaps.txt"):
    md += "\n\n" + open(f"{out}/overlaps.txt").read().rstrip()
open(f"{out}/results.md", "w").write(md + "\n")
open(f"{out}/shards.tsv", "w").write("\n".join(tsv) + "\n")
print(md)
print(f"\nfiles: {out}/results.md, {out}/shards.tsv, one run-local.sh directory and log per run")
EOF
[ ${#FAILED[@]} -eq 0 ] || { echo "shard-scaling: FAIL: ${FAILED[*]} (see their .log)" >&2; exit 1; }
