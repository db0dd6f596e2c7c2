#!/usr/bin/env bash
# permessage-deflate against none (issue #19), same runs back to back: N connections that all
# offer the extension (wspush-bench --deflate, which also inflates what it gets), every
# broadcast the 2 KiB notification JSON bench/payloads/notifications-2k.json published through
# the admin API (run-local.sh --publish), one wspush --procs P --threads 1 (P = one per 15,000
# connections). "deflate": --deflate on, each broadcast compressed once per process;
# "plain": --deflate off, every offer declined, the same bytes as before the extension. Rounds
# interleave the two (plain first in odd rounds, deflate first in even ones) so that machine
# noise hits both alike.
#   bench/deflate-compare.sh [-n 100000] [-b 5] [-r 3] [-o DIR] [--send-side]
# Per run, from run-local.sh's summary.json and the server's /metrics: bytes written per
# message, server CPU per broadcast (every server process, schedstat, over the broadcasts),
# bench CPU per message, and the CPU spent compressing per broadcast; per round the ratios
# deflate / plain; min / median / max over the rounds. --send-side: the server's CPU alone,
# the bench stopped (SIGSTOP) from each trigger until every process logged its pass
# (run-local.sh --stop-bench): the two cores are the server's, and the figure is its send
# side, without the bench's share of the machine. DIR gets summary.json (with command,
# commit, date and machine) and round-R-MODE.json (each run's summary.json); the runs' other
# files stay in DIR/runs (not meant for the repository). A run that loses a message fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=100000 B=5 R=3 OUT=/tmp/wspush-deflate-$(date +%Y%m%d-%H%M%S) SEND_SIDE=0
CMD="bench/deflate-compare.sh $*"
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    -b) B=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --send-side) SEND_SIDE=1; shift ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0 ;;
    *) echo "usage: bench/deflate-compare.sh [-n N] [-b B] [-r ROUNDS] [-o DIR] [--send-side] (--help)" >&2; exit 2 ;;
    esac
done
PAYLOAD=$ROOT/bench/payloads/notifications-2k.json
mkdir -p "$OUT/runs"
PROCS=$(((N + 14999) / 15000))
PRE=()
[ "$PROCS" -gt 1 ] && PRE=(-s "$PROCS" --prefork)
[ "$SEND_SIDE" = 0 ] || PRE+=(--stop-bench)

FAILED=()
run_one() { # mode round
    local mode=$1 round=$2 rc=0 dir="$OUT/runs/$1-$2"
    local flag=on
    [ "$mode" = plain ] && flag=off
    echo "deflate-compare: round $round, $mode (--deflate $flag) -> $dir" >&2
    "$ROOT/bench/run-local.sh" -n "$N" -b "$B" -t 1 "${PRE[@]}" -o "$dir" \
        --netns "wsp_bench_f-deflate_$mode$round" --publish "$PAYLOAD" \
        --server-args "--deflate $flag" --bench-args "--deflate" >"$dir.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        echo "deflate-compare: FAIL: $mode round $round: $(grep -m1 '^run-local: ' "$dir.log" || tail -1 "$dir.log")" >&2
        FAILED+=("$mode-$round")
    fi
    [ -s "$dir/summary.json" ] && cp "$dir/summary.json" "$OUT/round-$round-$mode.json"
    return 0
}
for r in $(seq 1 "$R"); do
    if [ $((r % 2)) = 1 ]; then order=(plain deflate); else order=(deflate plain); fi
    for m in "${order[@]}"; do run_one "$m" "$r"; done
done

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -1)
python3 - "$OUT" "$R" "$N" "$B" "$PROCS" "$PAYLOAD" "$CMD" "$COMMIT${DIRTY:+ (uncommitted changes)}" \
    "$SEND_SIDE" <<'PY'
import datetime, glob, json, os, platform, re, statistics, sys
out, rounds, n, b, procs, payload, cmd, commit, send_side = sys.argv[1:]
rounds, n, b, send_side = int(rounds), int(n), int(b), send_side == "1"

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"

def compressions(run):
    """The CPU time of each compression in a run (the shards' event=shard_broadcast lines,
    compress_us > 0: one per broadcast and process), by seq."""
    by_seq = {}
    for name in sorted(glob.glob(os.path.join(out, "runs", run, "server-*.log"))):
        for line in open(name, errors="replace"):
            m = re.search(r"event=shard_broadcast seq=(\d+) .*compress_us=([\d.]+)", line)
            if m and float(m.group(2)) > 0:
                by_seq.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    return by_seq

def figures(s, run):
    """One run's figures, or None when its summary is missing."""
    if s is None:
        return None
    m = s["server_metrics"] or {}
    w = m.get("wspush_messages_written_total") or 1
    builds = m.get("wspush_deflate_broadcasts_total") or 0
    zs = m.get("wspush_deflate_compress_seconds_total") or 0
    d = s.get("deflate") or {}
    zc = compressions(run)
    later = [x for q, xs in zc.items() if q > 1 for x in xs]
    return {
        "ok": s["ok"], "active": s["active"], "messages": s["messages"],
        "bytes_per_message": m.get("wspush_bytes_written_total", 0) / w,
        "compressed_frames": m.get("wspush_deflate_messages_written_total", 0),
        "server_cpu_ms_per_broadcast": (s["send_side_cpu_us_per_msg"] if send_side else
                                        s["server_cpu_us_per_msg"]) * s["active"] / 1000,
        "server_cpu_us_per_message": s["server_cpu_us_per_msg"],
        "bench_cpu_us_per_message": s["bench_cpu_us_per_msg"],
        "completion_median_ms": s["completion_median_ms"],
        "compressions": builds,
        "compress_us_per_broadcast": zs * 1e6 / b,
        "compress_us_each": zs * 1e6 / builds if builds else 0,
        # the first compression of a process also faults in its new compressor's memory
        "compress_us_first_broadcast": sum(zc.get(1, [])),
        "compress_us_each_later_median": statistics.median(later) if later else 0,
        "compress_us_by_seq": {str(q): xs for q, xs in sorted(zc.items())},
        "bench_received_compressed_bytes": d.get("compressed_bytes"),
        "bench_inflated_bytes": d.get("inflated_bytes"),
    }

def load(r, mode):
    p = os.path.join(out, f"round-{r}-{mode}.json")
    return json.load(open(p)) if os.path.exists(p) else None

rows = []
for r in range(1, rounds + 1):
    p, z = figures(load(r, "plain"), f"plain-{r}"), figures(load(r, "deflate"), f"deflate-{r}")
    row = {"round": r, "plain": p, "deflate": z}
    if p and z:
        row["ratio"] = {
            "bytes_per_message": z["bytes_per_message"] / p["bytes_per_message"],
            "server_cpu_per_broadcast": z["server_cpu_ms_per_broadcast"] / p["server_cpu_ms_per_broadcast"],
            "bench_cpu_per_message": z["bench_cpu_us_per_message"] / p["bench_cpu_us_per_message"],
        }
    rows.append(row)

def mmm(vals):
    vals = [v for v in vals if v is not None]
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals)} if vals else None

ratios = {k: mmm([row.get("ratio", {}).get(k) for row in rows])
          for k in ("bytes_per_message", "server_cpu_per_broadcast", "bench_cpu_per_message")}
per_mode = {mode: {k: mmm([row[mode][k] for row in rows if row[mode]])
                   for k in ("bytes_per_message", "server_cpu_ms_per_broadcast",
                             "bench_cpu_us_per_message", "completion_median_ms",
                             "compress_us_per_broadcast", "compress_us_each",
                             "compress_us_each_later_median")}
            for mode in ("plain", "deflate")}
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")), 0)
summary = {
    "issue": 19, "what": "permessage-deflate (server --deflate on) against none (--deflate off), "
    "every connection offering it (wspush-bench --deflate)" + (
        "; server CPU of the send side alone, the bench stopped during each pass" if send_side
        else "; server CPU over each broadcast, the bench reading meanwhile"),
    "send_side": send_side,
    "command": cmd, "commit": commit,
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "kernel": platform.release(),
                "mem_gib": round(mem / 1048576, 1)},
    "conns": n, "broadcasts_per_run": b, "server": f"wspush --procs {procs} --threads 1",
    "payload": {"file": os.path.relpath(payload, os.path.dirname(os.path.dirname(
        os.path.abspath(payload)))), "bytes": os.path.getsize(payload)},
    "rounds": rows, "ratios_deflate_over_plain": ratios, "per_mode": per_mode,
    "targets": {"bytes_per_message_ratio": "<= 0.333", "server_cpu_ratio": "<= 1.05"},
    "all_ok": all(row[m] and row[m]["ok"] for row in rows for m in ("plain", "deflate")),
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)

def f(x, fmt="{:.3f}"):
    return "-" if x is None else fmt.format(x)
print(f"| round | mode | bytes/msg | server CPU ms/broadcast | bench CPU us/msg | completion ms "
      f"| compress us/broadcast | one compression after the first, median us | ok |")
print("|---|---|---|---|---|---|---|---|---|")
for row in rows:
    for mode in ("plain", "deflate"):
        x = row[mode]
        if x:
            print(f"| {row['round']} | {mode} | {x['bytes_per_message']:.1f} "
                  f"| {x['server_cpu_ms_per_broadcast']:.1f} | {x['bench_cpu_us_per_message']:.2f} "
                  f"| {x['completion_median_ms']:.1f} | {x['compress_us_per_broadcast']:.1f} "
                  f"| {x['compress_us_each_later_median']:.1f} | {'ok' if x['ok'] else 'FAIL'} |")
for k, v in ratios.items():
    if v:
        print(f"ratio deflate/plain {k}: min {v['min']:.3f} median {v['median']:.3f} max {v['max']:.3f}")
PY
echo "deflate-compare: summary in $OUT/summary.json" >&2
[ ${#FAILED[@]} -eq 0 ] || { echo "deflate-compare: FAIL: ${FAILED[*]} (see $OUT/runs/*.log)" >&2; exit 1; }
