#!/usr/bin/env bash
# Two wspush binaries on the same load, rounds interleaved (A, B, A, B, ...): the check that a
# change which must not cost anything (issue #15's restructuring, a merge) keeps the server's
# CPU per delivered message and the broadcast completion where they were. Each run is one
# bench/run-local.sh run (its own namespace, the same bench binary, only the server binary
# differs); a run that misses, doubles or errs is a FAIL and the script exits 1 at the end.
#   bench/ab-binaries.sh -A OLD_WSPUSH -B NEW_WSPUSH [-n 15000] [-b 5] [-r 3] [-t 2] [-o DIR]
# Prints a Markdown table (per round, then min / median / max and the B/A ratio of medians);
# DIR/summary.json keeps every round's figures and the provenance of the run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A="" B="" N=15000 BC=5 R=3 T=2 OUT=/tmp/wspush-ab-$(date +%Y%m%d-%H%M%S)
while getopts "A:B:n:b:r:t:o:" o; do
    case $o in
    A) A=$OPTARG ;; B) B=$OPTARG ;; n) N=$OPTARG ;; b) BC=$OPTARG ;; r) R=$OPTARG ;;
    t) T=$OPTARG ;; o) OUT=$OPTARG ;; *) exit 2 ;;
    esac
done
[ -x "$A" ] && [ -x "$B" ] || { echo "usage: bench/ab-binaries.sh -A OLD -B NEW [-n N] [-b B] [-r R] [-t T] [-o DIR]" >&2; exit 2; }
mkdir -p "$OUT"
fail=0
for round in $(seq 1 "$R"); do
    for side in A B; do
        bin=$A
        [ "$side" = B ] && bin=$B
        dir=$OUT/$side-$round
        echo "ab-binaries: round $round, $side ($bin) -> $dir" >&2
        if ! "$ROOT/bench/run-local.sh" -n "$N" -b "$BC" -t "$T" --server "$bin" -o "$dir" \
            --netns "wsp_ab_$$" >"$dir.log" 2>&1; then
            echo "ab-binaries: FAIL: $side round $round (see $dir.log)" >&2
            fail=1
        fi
    done
done
WSP_AB_CMD="bench/ab-binaries.sh $*" /usr/bin/python3 - "$OUT" "$A" "$B" "$ROOT/bench" <<'EOF'
import glob, json, os, statistics, sys
out, a, b, benchdir = sys.argv[1:]
sys.path.insert(0, benchdir)
import provenance
rows = {"A": [], "B": []}
for side in rows:
    for f in sorted(glob.glob(os.path.join(out, f"{side}-*", "summary.json"))):
        s = json.load(open(f))
        rows[side].append({"round": f.split(os.sep)[-2], "ok": s.get("ok"),
                           "server_cpu_us_per_msg": s["server_cpu_us_per_msg"],
                           "completion_median_ms": s["completion_median_ms"],
                           "delivered": s.get("delivered"), "missing": s.get("missing")})
def mmm(v):
    return [min(v), statistics.median(v), max(v)] if v else None
summary = {"A": a, "B": b, "rounds": rows, "provenance":
           provenance.provenance(os.environ.get("WSP_AB_CMD"), [a, b])}
print("| round | server CPU µs/msg | completion ms (median of the run) | ok |")
print("| --- | --- | --- | --- |")
for side in rows:
    for r in rows[side]:
        print(f"| {r['round']} | {r['server_cpu_us_per_msg']:.2f} | {r['completion_median_ms']:.1f} | {r['ok']} |")
for key in ("server_cpu_us_per_msg", "completion_median_ms"):
    ma, mb = mmm([r[key] for r in rows["A"]]), mmm([r[key] for r in rows["B"]])
    summary[key] = {"A": ma, "B": mb, "ratio_B_A_median": mb[1] / ma[1] if ma and mb else None}
    if ma and mb:
        print(f"{key}: A {ma[0]:.2f} / {ma[1]:.2f} / {ma[2]:.2f}, B {mb[0]:.2f} / {mb[1]:.2f} / "
              f"{mb[2]:.2f} (min / median / max); B/A of medians {mb[1] / ma[1]:.3f}")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
EOF
exit "$fail"
