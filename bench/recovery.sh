#!/usr/bin/env bash
# Issue #17's figures, on this box, in network namespaces this script creates:
#   recover: N wspush.v1 clients on wspush --procs S --threads 1 --history-size H; each drops
#            after broadcast K; M broadcasts go out while they are gone; SIGHUP brings them
#            back with ?since=time:K&epoch=E (on any worker: the supervisor numbers for all);
#            one more broadcast live. Per round: time from the first reconnect until every
#            replayed message arrived, messages replayed per second, recovered / not
#            recovered, missing, duplicates (wspush-bench --recover).
#   pass:    the broadcast pass at N plain clients with history off, then on (--history-size
#            H), rounds interleaved (run-local.sh --prefork each time): every shard's pass_ms
#            per broadcast from the servers' logs, and the bench's completion.
# Writes DIR/summary.json (provenance: commit, date, machine, command, binaries; every round)
# and the runs' files. A run that misses or doubles a message, or a resume that is not
# recovered, is a FAIL (exit 1).
#   bench/recovery.sh [recover|pass|all] [-n N] [-r ROUNDS] [-s PROCS] [-k K] [-m M]
#                     [--history H] [-o DIR] [--server PATH] [--bench PATH]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
MODE=all N=100000 R=3 S=0 K=2 M=10 H=64 OUT=/tmp/wspush-recovery-$(date +%Y%m%d-%H%M%S)
CMDLINE="bench/recovery.sh $*"
usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
    case $1 in
    recover | pass | all) MODE=$1; shift ;;
    -n) N=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    -s) S=$2; shift 2 ;;
    -k) K=$2; shift 2 ;;
    -m) M=$2; shift 2 ;;
    --history) H=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --server) SERVER=$2; shift 2 ;;
    --bench) BENCH=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for v in N R S K M H; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "recovery: ${v} must be an integer" >&2; exit 2; }
done
[ "$S" -gt 0 ] || S=$(((N + 14999) / 15000))
[ "$S" -ge 2 ] || S=2 # --procs: a client comes back on any worker, all in one epoch
[ "$H" -ge "$M" ] || { echo "recovery: --history must hold the $M missed messages" >&2; exit 2; }
[ -x "$SERVER" ] && [ -x "$BENCH" ] || { echo "recovery: no binaries (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "recovery: needs root for ip netns" >&2; exit 1; }
mkdir -p "$OUT"
T=$((K + M + 1)) # broadcasts in a recover round

# --- recover: one round in a namespace of its own ---
NS="" PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null || true
    NS="" PIDS=()
}
trap 'cleanup' EXIT
st() { sed -n "s/^$1=//p" "$DIR/status" 2>/dev/null || true; }
wait_until() { # seconds description test...
    local limit=$1 what=$2
    shift 2
    local end=$((SECONDS + limit))
    until "$@"; do
        [ $SECONDS -lt $end ] || { echo "recovery: timed out ($limit s): $what" >&2; return 1; }
        sleep 0.1
    done
}
st_is() { [ "$(st "$1")" = "$2" ]; }
st_ge() { local v; v=$(st "$1"); [ -n "$v" ] && [ "$v" -ge "$2" ]; }
done_n() { [ "$(grep -c " event=broadcast seq=$1 " "$DIR/server.log")" -ge "$S" ]; }
listening() { [ "$(grep -c ' event=listening' "$DIR/server.log")" -ge "$S" ]; }

recover_round() { # round
    DIR="$OUT/recover-$1"
    mkdir -p "$DIR"
    NS=wsp_bench_fh_$$_$1
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="15000 65535"
    ip netns exec "$NS" timeout -s TERM -k 10 600 "$SERVER" --procs "$S" --threads 1 \
        --port 8080 --bind 127.0.0.1 --interval 0 --admin off --max-conns 19900 \
        --history-size "$H" 2>"$DIR/server.log" &
    PIDS+=($!)
    wait_until 30 "workers up" listening
    local sup
    sup=$(sed -n 's/^.*supervisor pid=\([0-9]*\) event=supervisor_listening.*/\1/p' "$DIR/server.log")
    ip netns exec "$NS" timeout -s INT -k 10 560 "$BENCH" --url ws://127.0.0.1:8080/ \
        --conns "$N" --duration 500 --recover "$K" --expect-broadcasts "$T" --quiet \
        --status-file "$DIR/status" --json "$DIR/report.json" >"$DIR/bench.out" 2>&1 &
    PIDS+=($!)
    local bench=$!
    wait_until $((60 + N / 2000)) "ramp" st_is ramp_done 1
    local b
    for b in $(seq 1 "$K"); do
        kill -USR1 "$sup"
        wait_until 60 "broadcast $b" done_n "$b"
    done
    wait_until 120 "every connection dropped" st_is dropped "$(st setups)"
    local conns
    conns=$(st dropped)
    for b in $(seq $((K + 1)) $((K + M))); do
        kill -USR1 "$sup"
        wait_until 60 "broadcast $b" done_n "$b"
    done
    sleep 1 # the workers' history entries are in: nothing else runs while they reconnect
    local bench_pid
    bench_pid=$(cat "/proc/$bench/task/$bench/children" 2>/dev/null | awk '{print $1}')
    kill -HUP "$bench_pid"
    wait_until $((120 + N / 1000)) "every connection back and replayed" \
        st_ge replayed $((conns * M))
    kill -USR1 "$sup"
    wait_until 60 "the live broadcast" st_ge messages $((conns * (T - 0)))
    kill -INT "$bench_pid"
    wait_until 120 "the bench's report" test -s "$DIR/report.json"
    sleep 1
    cleanup
    python3 - "$DIR" "$conns" <<'PY'
import json, sys
d, conns = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{d}/report.json"))
rec = r["recovery"]
print(f"recovery: {d}: {conns} dropped, {rec['resumed']} back, recovered {rec['recovered']}, "
      f"not {rec['not_recovered']}, replayed {rec['replayed']} in {rec['seconds']:.2f} s "
      f"({rec['replayed_per_s']:.0f}/s), missing {r['missing']}, duplicates {r['duplicates']}, "
      f"errors {r['errors']['total']}, {'ok' if r['ok'] else 'FAIL'}")
PY
}

# --- pass: run-local.sh, history off then on ---
pass_round() { # round
    local h
    for h in off on; do
        local args="--interval 0"
        [ "$h" = on ] && args="--history-size $H"
        "$ROOT/bench/run-local.sh" -n "$N" -b 3 -g 1 -s "$S" -t 1 --prefork \
            --server "$SERVER" --bench "$BENCH" --server-args "$args" \
            --netns "wsp_bench_fh_$$_p$1$h" -o "$OUT/pass-$h-$1" >"$OUT/pass-$h-$1.log" 2>&1 ||
            echo "recovery: pass $h round $1: FAIL (see $OUT/pass-$h-$1.log)" >&2
        echo "recovery: pass $h round $1: $(grep -m1 '^result' "$OUT/pass-$h-$1/summary.txt" 2>/dev/null)" >&2
    done
}

for r in $(seq 1 "$R"); do
    if [ "$MODE" != pass ]; then recover_round "$r"; fi
    if [ "$MODE" != recover ]; then pass_round "$r"; fi
done

python3 - "$OUT" "$ROOT" "$CMDLINE" "$N" "$S" "$K" "$M" "$H" "$SERVER" "$BENCH" <<'PY'
import glob, json, os, re, statistics, sys
out, root, cmd, n, s, k, m, h, server, bench = sys.argv[1:]
sys.path.insert(0, f"{root}/bench")
import provenance
res = {"provenance": provenance.provenance(cmd, [server, bench]), "conns": int(n), "procs": int(s),
       "drop_at": int(k), "missed": int(m), "history_size": int(h), "recover": [], "pass": []}
ok = True
for d in sorted(glob.glob(f"{out}/recover-*")):
    if not os.path.exists(f"{d}/report.json"):
        ok = False
        continue
    r = json.load(open(f"{d}/report.json"))
    rec = r["recovery"]
    row = {"round": d.rsplit("-", 1)[1], "conns": r["active"], **{x: rec[x] for x in (
        "dropped", "resumed", "recovered", "not_recovered", "replayed", "seconds", "replayed_per_s")},
        "missing": r["missing"], "duplicates": r["duplicates"], "errors": r["errors"]["total"],
        "delivered": r["delivered"], "expected": r["expected"], "ok": r["ok"],
        "latency_ms_live": r["latency_ms"]}
    ok &= bool(r["ok"])
    res["recover"].append(row)
def passes(d):
    """Per broadcast: the sum and the max over workers of their shard's pass_ms."""
    per = {}
    for f in glob.glob(f"{d}/server-*.log"):
        for mm in re.finditer(r"worker=(\d+) .*event=shard_broadcast seq=(\d+) .*pass_ms=([\d.]+)", open(f).read()):
            per.setdefault(int(mm.group(2)), []).append(float(mm.group(3)))
    return [{"seq": q, "sum_ms": round(sum(v), 3), "max_ms": round(max(v), 3), "workers": len(v)}
            for q, v in sorted(per.items())]
for d in sorted(glob.glob(f"{out}/pass-*-*[0-9]")):
    if not os.path.isdir(d):
        continue
    _, hist, rnd = os.path.basename(d).split("-")
    sm = json.load(open(f"{d}/summary.json")) if os.path.exists(f"{d}/summary.json") else {}
    p = passes(d)
    ok &= bool(sm.get("ok"))
    res["pass"].append({"history": hist, "round": rnd, "passes": p,
                        "pass_sum_ms_median": statistics.median([x["sum_ms"] for x in p]) if p else None,
                        "completion_median_ms": sm.get("completion_median_ms"),
                        "server_cpu_us_per_msg": sm.get("server_cpu_us_per_msg"),
                        "active": sm.get("active"), "missing": sm.get("missing"),
                        "duplicates": sm.get("duplicates"), "errors": sm.get("errors"), "ok": sm.get("ok")})
ratios = []
for rnd in sorted({x["round"] for x in res["pass"]}):
    off = next((x for x in res["pass"] if x["round"] == rnd and x["history"] == "off"), None)
    on = next((x for x in res["pass"] if x["round"] == rnd and x["history"] == "on"), None)
    if off and on and off["pass_sum_ms_median"] and on["pass_sum_ms_median"]:
        ratios.append(round(on["pass_sum_ms_median"] / off["pass_sum_ms_median"], 3))
res["pass_ratio_on_off"] = ratios
res["ok"] = ok
json.dump(res, open(f"{out}/summary.json", "w"), indent=1)
for x in res["recover"]:
    print(f"recover round {x['round']}: {x['dropped']} dropped, recovered {x['recovered']}, not "
          f"{x['not_recovered']}, replayed {x['replayed']} in {x['seconds']:.2f} s = "
          f"{x['replayed_per_s']:.0f}/s, missing {x['missing']}, duplicates {x['duplicates']}")
for x in res["pass"]:
    print(f"pass history {x['history']} round {x['round']}: pass (sum over workers) median "
          f"{x['pass_sum_ms_median']} ms, completion median {x['completion_median_ms']} ms, "
          f"{x['active']} conns, missing {x['missing']}")
if ratios:
    print(f"pass on/off ratios: {ratios} (median {statistics.median(ratios)})")
print(f"summary: {out}/summary.json: {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
