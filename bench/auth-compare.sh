#!/usr/bin/env bash
# What token auth costs (issue #16), measured in one session:
#   1. setup rate and CPU per connection at N connections without auth, with HS256 and with
#      ES256: the same run-local.sh run (S server processes under --prefork, one thread each,
#      one broadcast that must reach everyone), only the auth flags changed, rounds
#      interleaved (none, HS256, ES256, none, ...) so that machine noise hits each alike;
#   2. user-space bytes per idle connection without auth and with HS256 at M connections
#      (core-figures.sh mem: RssAnon delta after a warm-up, one server process), interleaved.
# The bench mints every token before its ramp (wspush-bench --jwt-alg): signing is not in the
# setup rate, and the bench CPU per connection is given without the minting.
#   bench/auth-compare.sh [-n 100000] [-r 3] [-m 10000] [-o DIR]
# Needs root (network namespaces) and the release build (make build). Writes DIR/summary.json
# (command, commit, date, machine, every run, min/median/max, ratios) and DIR/table.md; a run
# that misses a broadcast or has an error is a FAIL: marked, and the script exits 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=100000 R=3 M=10000 OUT=/tmp/wspush-auth-$(date +%Y%m%d-%H%M%S)
CMDLINE="bench/auth-compare.sh $*"
# What was measured, taken before the first run: a commit made while this runs must not be
# named as the one measured, nor a tree with uncommitted changes pass for a clean commit.
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] || COMMIT="$COMMIT-dirty"
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    -m) M=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "usage: bench/auth-compare.sh [-n N] [-r ROUNDS] [-m MEM_CONNS] [-o DIR] (--help)" >&2
       exit 2 ;;
    esac
done
for v in N R M; do [[ ${!v} =~ ^[0-9]+$ ]] || { echo "auth-compare: -${v,,} wants a number" >&2; exit 2; }; done
mkdir -p "$OUT/keys"
command -v openssl >/dev/null || { echo "auth-compare: needs the openssl CLI" >&2; exit 1; }

# Keys made here, used only for this run: the HS secret, and an ES256 pair (the server gets
# the public half, the bench the private one).
K=$OUT/keys
openssl rand -base64 48 >"$K/hs.key"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K/ec.pem" 2>/dev/null
openssl pkey -in "$K/ec.pem" -pubout -out "$K/ec.pub" 2>/dev/null
chmod 600 "$K"/*
server_args() { # config
    case $1 in
    none) echo "" ;;
    HS256) echo "--auth-jwt-alg HS256 --auth-jwt-key $K/hs.key" ;;
    ES256) echo "--auth-jwt-alg ES256 --auth-jwt-key $K/ec.pub" ;;
    esac
}
bench_args() { # config
    case $1 in
    none) echo "" ;;
    HS256) echo "--jwt-alg HS256 --jwt-key $K/hs.key" ;;
    ES256) echo "--jwt-alg ES256 --jwt-key $K/ec.pem" ;;
    esac
}

FAILED=()
SERVERS=$(((N + 14999) / 15000))
setup_run() { # config round
    local c=$1 r=$2 dir="$OUT/setup-$1-$2" pre=()
    [ "$SERVERS" -gt 1 ] && pre=(-s "$SERVERS" --prefork)
    echo "auth-compare: setup $c round $r ($N connections) -> $dir" >&2
    if ! "$ROOT/bench/run-local.sh" -n "$N" -b 1 -t 1 "${pre[@]}" -o "$dir" \
        --netns "wsp_bench_auth_$$" --server-args "$(server_args "$c")" \
        --bench-args "$(bench_args "$c")" >"$dir.log" 2>&1; then
        echo "auth-compare: FAIL: setup $c round $r (see $dir.log)" >&2
        FAILED+=("setup-$c-$r")
    fi
}
mem_run() { # config round
    local c=$1 r=$2 log="$OUT/mem-$1-$2.log"
    echo "auth-compare: memory $c round $r ($M connections) -> $log" >&2
    if ! "$ROOT/bench/core-figures.sh" mem -n "$M" -t 1 -S "$(server_args "$c")" \
        -B "$(bench_args "$c")" >"$log" 2>&1; then
        echo "auth-compare: FAIL: memory $c round $r (see $log)" >&2
        FAILED+=("mem-$c-$r")
    fi
}

for r in $(seq 1 "$R"); do
    for c in none HS256 ES256; do setup_run "$c" "$r"; done
done
for r in $(seq 1 "$R"); do
    for c in none HS256; do mem_run "$c" "$r"; done
done

python3 - "$OUT" "$N" "$M" "$R" "$CMDLINE" "$COMMIT" "$STARTED" \
    <<'PY' | tee "$OUT/table.md"
import glob, json, os, platform, re, statistics, sys, time
out, n, m, rounds, cmd, commit, started = sys.argv[1:]
def mmm(v):
    v = [x for x in v if x is not None]
    return {"min": min(v), "median": statistics.median(v), "max": max(v)} if v else None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
setup = {}
for f in sorted(glob.glob(os.path.join(out, "setup-*", "summary.json"))):
    c, r = os.path.basename(os.path.dirname(f)).split("-")[1:]
    s = json.load(open(f))
    setup.setdefault(c, []).append({
        "round": int(r), "conns": s["active"], "setup_rate_per_s": s["setup_rate_per_s"],
        "setup_s": s["setup_s"], "server_cpu_us_per_conn": s["ramp_server_cpu_us_per_conn"],
        "bench_cpu_us_per_conn": s["ramp_bench_cpu_us_per_conn"] - s["bench_mint_s"] * 1e6 / max(s["active"], 1),
        "bench_mint_s": s["bench_mint_s"], "errors": s["errors"], "missing": s["missing"],
        "ok": s["ok"]})
mem = {}
for f in sorted(glob.glob(os.path.join(out, "mem-*.log"))):
    c, r = os.path.basename(f)[4:-4].split("-")
    t = open(f).read()
    a = re.search(r"user space per idle connection: (-?\d+) B \(RssAnon (\d+) -> (\d+) kB\); VmRSS delta (-?\d+) B", t)
    mem.setdefault(c, []).append({"round": int(r), "anon_b_per_conn": int(a.group(1)) if a else None,
                                  "vmrss_b_per_conn": int(a.group(4)) if a else None})
ratio = {}
for c in ("HS256", "ES256"):
    per = []
    for row in setup.get(c, []):
        base = [b for b in setup.get("none", []) if b["round"] == row["round"]]
        if base and base[0]["setup_rate_per_s"]:
            per.append(row["setup_rate_per_s"] / base[0]["setup_rate_per_s"])
    ratio[c] = {"per_round": per, **(mmm(per) or {})}
mem_delta = []
for row in mem.get("HS256", []):
    base = [b for b in mem.get("none", []) if b["round"] == row["round"]]
    if base and row["anon_b_per_conn"] is not None and base[0]["anon_b_per_conn"] is not None:
        mem_delta.append(row["anon_b_per_conn"] - base[0]["anon_b_per_conn"])
summary = {
    "issue": 16, "what": "token auth: setup rate, CPU and bytes per connection",
    "command": cmd, "commit": commit, "started_utc": started,
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
                "mem_total_kib": next((int(l.split()[1]) for l in open("/proc/meminfo")
                                       if l.startswith("MemTotal:")), None)},
    "conns": int(n), "mem_conns": int(m), "rounds": int(rounds),
    "setup": {c: {"runs": v, "setup_rate_per_s": mmm([x["setup_rate_per_s"] for x in v]),
                  "server_cpu_us_per_conn": mmm([x["server_cpu_us_per_conn"] for x in v]),
                  "bench_cpu_us_per_conn": mmm([x["bench_cpu_us_per_conn"] for x in v])}
              for c, v in setup.items()},
    "setup_rate_ratio_to_none": ratio,
    "targets": {"HS256": 0.9, "ES256": 0.5, "bytes_per_conn_more": 16},
    "memory": {c: {"runs": v, "anon_b_per_conn": mmm([x["anon_b_per_conn"] for x in v])}
               for c, v in mem.items()},
    "memory_hs256_minus_none_b_per_conn": mmm(mem_delta),
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
f2 = lambda d, k="median": f"{d[k]:.1f}" if d else "-"
print(f"| config | runs | setup rate /s min / median / max | ratio to none (median) | server CPU us/conn (median) | bench CPU us/conn (median) | errors |")
print("|---|---|---|---|---|---|---|")
for c in ("none", "HS256", "ES256"):
    s = summary["setup"].get(c)
    if not s:
        continue
    r = s["setup_rate_per_s"]
    rr = ratio.get(c, {}).get("median")
    print(f"| {c} | {len(s['runs'])} | {r['min']:.0f} / {r['median']:.0f} / {r['max']:.0f} "
          f"| {f'{rr:.2f}' if rr else '-'} | {f2(s['server_cpu_us_per_conn'])} "
          f"| {f2(s['bench_cpu_us_per_conn'])} | {sum(x['errors'] + x['missing'] for x in s['runs'])} |")
print()
print("| config | runs | user space B per idle connection (RssAnon delta) min / median / max |")
print("|---|---|---|")
for c, v in summary["memory"].items():
    a = v["anon_b_per_conn"]
    print(f"| {c} | {len(v['runs'])} | {a['min']} / {a['median']} / {a['max']} |" if a else f"| {c} | - | - |")
d = summary["memory_hs256_minus_none_b_per_conn"]
print(f"\nHS256 minus none, same round: {d}")
PY
echo "auth-compare: summary in $OUT/summary.json, table in $OUT/table.md" >&2
[ ${#FAILED[@]} -eq 0 ] || { echo "auth-compare: FAIL: ${FAILED[*]}" >&2; exit 1; }
