#!/usr/bin/env bash
# wss:// against ws:// (issue #18), every figure of docs/BENCHMARKS.md section 10 in one run,
# configurations interleaved round by round so that machine noise hits them alike:
#   handshakes  server CPU per TLS handshake, one process, one shard: ws:// (the baseline: a
#               connection and its upgrade), full handshakes with an ECDSA P-256 and an
#               RSA-2048 certificate (--tls-resume off), resumed ones (tickets)
#   mem10k      user-space bytes per idle connection at 10,000 (RssAnon delta after a
#               warm-up and after freed handshake memory went back: --settle)
#   cpu15k      server CPU per delivered message at 15,000, 5 broadcasts
#   c100k       100,000 connections (7 workers, --procs): bytes per connection and server CPU
#               per delivered message, 3 broadcasts that must reach every connection
#   bench/tls-compare.sh [-o DIR] [-r ROUNDS] [--only handshakes,mem10k,cpu15k,c100k]
# The certificates are made at start by test/common/mkcerts.sh (openssl CLI). Every run must
# deliver every broadcast to every connection once with no error (run-local.sh's verdict): a
# run that does not is a FAIL, shown in the tables, and the script exits 1. Everything stays
# in DIR; DIR/tls-compare.json has every figure with the command, commit, date and machine.
# Needs root (network namespaces); run it alone: /work/tools/quiet bench/tls-compare.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
OUT=/tmp/wspush-tls-$(date +%Y%m%d-%H%M%S) R=3 ONLY=handshakes,mem10k,cpu15k,c100k
CMDLINE="bench/tls-compare.sh $*"
while [ $# -gt 0 ]; do
    case $1 in
    -o) OUT=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/tls-compare.sh [-o DIR] [-r ROUNDS] [--only LIST] (--help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "tls-compare: needs root (ip netns)" >&2; exit 1; }
for b in "$SERVER" "$BENCH"; do [ -x "$b" ] || { echo "tls-compare: no binary at $b" >&2; exit 1; }; done
mkdir -p "$OUT"
CERTS=$OUT/certs
sh "$ROOT/test/common/mkcerts.sh" "$CERTS" >/dev/null 2>&1
want() { [[ ",$ONLY," == *",$1,"* ]]; }
FAILED=()

# ---- handshakes: server CPU per connection during a ramp of N, one process, one shard ----
HS_N=3000 HS_CONC=64
hs_run() { # name scheme cert resume round
    local name=$1 scheme=$2 cert=$3 resume=$4 round=$5 dir="$OUT/hs/$1-$5"
    mkdir -p "$dir"
    local tls=() btls=()
    if [ "$scheme" = wss ]; then
        tls=(--tls-cert "$CERTS/$cert.pem" --tls-key "$CERTS/$cert.key")
        btls=(--tls-ca "$CERTS/ca.pem" --tls-resume "$resume")
    fi
    $NSX timeout 120 "$SERVER" --threads 1 --port 8443 --bind 127.0.0.1 --interval 0 --admin off \
        "${tls[@]}" 2>"$dir/server.log" &
    local tp=$! sp=""
    PIDS+=("$tp")
    for _ in $(seq 1 100); do grep -q event=listening "$dir/server.log" && break; sleep 0.05; done
    sp=$(cat "/proc/$tp/task/$tp/children" | awk '{print $1}')
    local c0 c1
    c0=$(cpu_ns "$sp")
    $NSX timeout 100 "$BENCH" --url "$scheme://127.0.0.1:8443/" --conns "$HS_N" --procs 1 \
        --concurrency "$HS_CONC" --duration 60 --quiet "${btls[@]}" --json "$dir/report.json" \
        --status-file "$dir/status" >"$dir/bench.out" 2>&1 &
    local bp=$!
    PIDS+=("$bp")
    for _ in $(seq 1 1200); do grep -q "^ramp_done=1" "$dir/status" 2>/dev/null && break; sleep 0.05; done
    c1=$(cpu_ns "$sp")
    kill -INT "$bp"; wait "$bp" || true
    kill -TERM "$tp"; wait "$tp" || true
    python3 - "$dir" "$name" "$round" "$((c1 - c0))" <<'PY'
import json, sys
d, name, rnd, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(f"{d}/report.json"))
n = r["setups"]
json.dump({"name": name, "round": rnd, "conns": n, "errors": r["errors"]["total"],
           "server_cpu_s": cpu / 1e9, "server_cpu_us_per_conn": cpu / 1e3 / max(n, 1),
           "conns_per_server_cpu_s": n / (cpu / 1e9) if cpu else 0,
           "tls": r["tls"], "ok": n == r["config"]["conns"] and r["errors"]["total"] == 0},
          open(f"{d}/summary.json", "w"), indent=1)
PY
}
cpu_ns() { # every thread's CPU time of pid $1, ns
    local t=0 f v
    for f in /proc/"$1"/task/*/schedstat; do read -r v _ <"$f" 2>/dev/null && t=$((t + v)); done
    echo $t
}

if want handshakes; then
    . "$ROOT/bench/netns.sh"
    netns_start tlshs
    for r in $(seq 1 "$R"); do
        echo "tls-compare: handshakes, round $r" >&2
        hs_run ws ws - - "$r"
        hs_run ecdsa-full wss ec off "$r"
        hs_run ecdsa-resumed wss ec on "$r"
        hs_run rsa-full wss rsa off "$r"
        hs_run rsa-resumed wss rsa on "$r"
    done
    ip netns del "$NS"
    NS=""
    trap - EXIT
fi

# ---- run-local.sh runs: ws:// and wss:// back to back ----
rl() { # tag round scheme args...
    local tag=$1 round=$2 scheme=$3 rc=0
    shift 3
    local dir="$OUT/$tag/$scheme-$round" tls=()
    [ "$scheme" = wss ] && tls=(--tls "$CERTS:ec")
    mkdir -p "$OUT/$tag"
    echo "tls-compare: $tag $scheme round $round -> $dir" >&2
    "$ROOT/bench/run-local.sh" --server "$SERVER" --bench "$BENCH" -o "$dir" \
        --netns "wsp_tlscmp_$$" "${tls[@]}" "$@" >"$dir.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        echo "tls-compare: FAIL: $tag $scheme round $round (see $dir.log)" >&2
        FAILED+=("$tag/$scheme-$round")
    fi
}
for r in $(seq 1 "$R"); do
    if want mem10k && [ "$r" -le 2 ]; then
        for s in ws wss; do rl mem10k "$r" $s -n 10000 -b 1 -t 1 --warmup 200 --settle 20; done
    fi
    if want cpu15k; then
        for s in ws wss; do rl cpu15k "$r" $s -n 15000 -b 5 -t 1; done
    fi
    if want c100k; then
        for s in ws wss; do rl c100k "$r" $s -n 100000 -b 3 -t 1 -s 7 --prefork --warmup 1400 --settle 20; done
    fi
done

# ---- the tables, and one JSON with everything ----
python3 - "$OUT" "$CMDLINE" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    <<'PY' | tee "$OUT/tables.md"
import glob, json, os, platform, statistics, sys, time
out, cmd, commit = sys.argv[1:4]
def mmm(v):
    v = sorted(x for x in v if x is not None)
    return (v[0], statistics.median(v), v[-1]) if v else None
def fmt(t, f="%.1f"):
    return "-" if t is None else " / ".join(f % x for x in t)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {"command": cmd, "commit": commit, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
                   "mem_total_kb": int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))},
       "handshakes": [], "runs": {}}
hs = {}
for f in sorted(glob.glob(f"{out}/hs/*/summary.json")):
    s = json.load(open(f)); res["handshakes"].append(s); hs.setdefault(s["name"], []).append(s)
def per_kind(name, v):
    """Server CPU us per handshake of the row's own kind: a resumed run's first connections
    (one per bench concurrency slot) are full handshakes, costed at the full run's median."""
    full = hs.get(name.replace("resumed", "full"))
    out = []
    for s in v:
        t = s["tls"]
        if name.endswith("resumed") and full and t["resumed"]:
            fmed = statistics.median(f["server_cpu_us_per_conn"] for f in full)
            out.append((s["server_cpu_us_per_conn"] * s["conns"] - fmed * t["full"]) / t["resumed"])
        else:
            out.append(s["server_cpu_us_per_conn"])
    return out
if hs:
    base = statistics.median(s["server_cpu_us_per_conn"] for s in hs.get("ws", [])) if "ws" in hs else 0
    print("| handshakes (3,000 connections, 1 shard) | server CPU us per connection, min / median / max | per handshake of its kind, median | of which TLS (minus ws://) | handshakes per server core-second | full / resumed | ok |")
    print("|---|---|---|---|---|---|---|")
    for name in ("ws", "ecdsa-full", "ecdsa-resumed", "rsa-full", "rsa-resumed"):
        v = hs.get(name)
        if not v: continue
        t = mmm([s["server_cpu_us_per_conn"] for s in v])
        k = statistics.median(per_kind(name, v))
        tl = v[0]["tls"]
        rate = "-" if name == "ws" else f"{1e6 / (k - base):.0f}"
        print(f"| {name} | {fmt(t)} | {k:.1f} | {'-' if name == 'ws' else f'{k - base:.1f}'} "
              f"| {rate} | {tl['full']} / {tl['resumed']} | {all(s['ok'] for s in v)} |")
        for s, kk in zip(v, per_kind(name, v)):
            s["us_per_handshake_of_kind"] = kk
    print()
for tag in ("mem10k", "cpu15k", "c100k"):
    runs = {}
    for f in sorted(glob.glob(f"{out}/{tag}/*/summary.json")):
        s = json.load(open(f)); scheme, rnd = os.path.basename(os.path.dirname(f)).split("-")
        s["scheme"], s["round"] = scheme, int(rnd)
        runs.setdefault(scheme, []).append(s)
    if not runs: continue
    res["runs"][tag] = runs
    print(f"| {tag} | runs | user space B/conn (RssAnon), min / median / max | server CPU us/msg, min / median / max | ramp server CPU us/conn (median) | completion ms (median) | missing / dup / errors | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for scheme in ("ws", "wss"):
        v = runs.get(scheme, [])
        if not v: continue
        print(f"| {scheme} | {len(v)} | {fmt(mmm([s['anon_b_per_conn'] for s in v]), '%.0f')} "
              f"| {fmt(mmm([s['server_cpu_us_per_msg'] for s in v]), '%.2f')} "
              f"| {statistics.median(s['ramp_server_cpu_us_per_conn'] for s in v):.0f} "
              f"| {statistics.median(s['completion_median_ms'] for s in v):.0f} "
              f"| {sum(s['missing'] for s in v)} / {sum(s['duplicates'] for s in v)} / {sum(s['errors'] for s in v)} "
              f"| {all(s['ok'] for s in v)} |")
    ws, wss = runs.get("ws", []), runs.get("wss", [])
    pairs = [(a, b) for a in ws for b in wss if a["round"] == b["round"]]
    if pairs:
        t = mmm([b["server_cpu_us_per_msg"] / a["server_cpu_us_per_msg"] for a, b in pairs])
        print(f"\nwss/ws server CPU per message, same round: {fmt(t, '%.2f')} (min / median / max)\n")
json.dump(res, open(f"{out}/tls-compare.json", "w"), indent=1)
PY
echo "tls-compare: tables in $OUT/tables.md, everything in $OUT/tls-compare.json" >&2
[ ${#FAILED[@]} -eq 0 ] || { echo "tls-compare: FAIL: ${FAILED[*]}" >&2; exit 1; }
