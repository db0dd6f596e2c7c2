#!/usr/bin/env bash
# Turns a wspush-bench --json report into PNG plots with gnuplot:
#   PREFIX-latency-cdf.png  message latency CDF (log x), with p50/p99/p99.9 marked
#   PREFIX-ramp.png         active connections and setup rate over time
# usage: bench/plot.sh REPORT.json [OUTDIR (default docs/img)] [PREFIX (default: the
# report's name without .json)]
set -euo pipefail

[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: bench/plot.sh REPORT.json [OUTDIR] [PREFIX]" >&2; exit 2; }
REPORT=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${2:-$ROOT/docs/img}
PREFIX=${3:-$(basename "$REPORT" .json)}
command -v gnuplot >/dev/null || { echo "plot.sh: needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "plot.sh: needs python3" >&2; exit 1; }
mkdir -p "$OUTDIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# JSON to gnuplot data files, and the title line.
python3 - "$REPORT" "$TMP" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
tmp = sys.argv[2]
with open(f"{tmp}/cdf.dat", "w") as f:
    for ms, frac in r["latency_cdf"]:
        f.write(f"{max(ms, 0.001)} {frac}\n")
with open(f"{tmp}/series.dat", "w") as f:
    prev = None
    for p in r["series"]:
        rate = 0.0
        if prev and p["t"] > prev["t"]:
            rate = (p["setups"] - prev["setups"]) / (p["t"] - prev["t"])
        f.write(f"{p['t']} {p['active']} {rate} {p['errors']}\n")
        prev = p
c, l = r["config"], r["latency_ms"]
title = (f"{c['conns']} connections, {c['procs']} bench processes; "
         f"{r['messages']['count']} messages, {r['errors']['total']} errors")
with open(f"{tmp}/vars.gp", "w") as f:
    f.write(f'title = "{title}"\n')
    for k in ("p50", "p99", "p999", "max"):
        f.write(f"{k} = {max(l[k], 0.001)}\n")
    f.write(f"have_cdf = {1 if r['latency_cdf'] else 0}\n")
    f.write(f"ramp_rate = {r['ramp']['rate_per_s']}\n")
EOF

gnuplot <<EOF
load "$TMP/vars.gp"
set terminal pngcairo size 900,540 font "sans,10"
set grid
set key top left  # the p-labels sit at the bottom, right of the middle

set output "$OUTDIR/$PREFIX-latency-cdf.png"
set title "Message latency CDF (receive time - server time in the message)\n" . title
set xlabel "latency (ms, log scale)"
set ylabel "fraction of messages"
set logscale x
set yrange [0:1.02]
set arrow 1 from p50, graph 0 to p50, graph 1 nohead dt 2 lc rgb "#888888"
set arrow 2 from p99, graph 0 to p99, graph 1 nohead dt 2 lc rgb "#888888"
set arrow 3 from p999, graph 0 to p999, graph 1 nohead dt 2 lc rgb "#888888"
# p99 and p99.9 sit near the right end of the curve: their labels go to the LEFT of their
# lines, and the axis runs to twice the maximum, so that no label is cut off at the frame.
set xrange [*:max * 2]
set label 1 sprintf("p50 %.1f", p50) at p50, graph 0.05 left offset 0.5,0
set label 2 sprintf("p99 %.1f", p99) at p99, graph 0.15 right offset -0.5,0
set label 3 sprintf("p99.9 %.1f", p999) at p999, graph 0.25 right offset -0.5,0
if (have_cdf) {
    plot "$TMP/cdf.dat" using 1:2 with steps lw 2 title "latency CDF"
} else {
    set label 9 "no messages received" at graph 0.4, graph 0.5
    plot 2 notitle
}
unset arrow; unset label; unset logscale x; set xrange [*:*]; set yrange [*:*]
set key bottom right  # the ramp climbs along the left and stays at the top

set output "$OUTDIR/$PREFIX-ramp.png"
set title "Connections over time\n" . title
set xlabel "time since start (s)"
set ylabel "active WebSockets"
set y2label "setup rate (connections/s)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot "$TMP/series.dat" using 1:2 with lines lw 2 title "active", \
     "$TMP/series.dat" using 1:3 axes x1y2 with fsteps lw 1 title "setup rate (per sample)"
EOF
echo "$OUTDIR/$PREFIX-latency-cdf.png"
echo "$OUTDIR/$PREFIX-ramp.png"
