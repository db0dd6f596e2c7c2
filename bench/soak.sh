#!/usr/bin/env bash
# The soak: N connections (default 100,000) held for M minutes (default 60) with a broadcast
# every 10 s, through run-local.sh (one wspush --procs supervisor, its own network
# namespace); then server RSS, open descriptors, Slab and messages over time, plotted with
# gnuplot into the output directory (soak.png), and the run's summary (errors, missing,
# retries). The soak FAILs (exit 1) unless every connection got every broadcast, once, with no
# error (run-local.sh's check).
#   bench/soak.sh [-n 100000] [-m 60] [-o DIR]
# Bounded like every run-local.sh run; needs root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=100000 M=60 OUT=/tmp/wspush-soak-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;; -m) M=$2; shift 2 ;; -o) OUT=$2; shift 2 ;;
    -h | --help)
        cat <<EOF
usage: bench/soak.sh [-n CONNS] [-m MINUTES] [-o DIR]
  -n CONNS    connections (default $N)
  -m MINUTES  how long to hold them, one broadcast every 10 s (default $M)
  -o DIR      results directory (default /tmp/wspush-soak-DATE)
The soak passes only if every connection got every broadcast, once, with no error
(run-local.sh's check, printed as its "result" line); otherwise it prints FAIL and exits 1.
EOF
        exit 0 ;;
    *) echo "usage: bench/soak.sh [-n CONNS] [-m MINUTES] [-o DIR] (--help)" >&2; exit 2 ;;
    esac
done
# A broadcast every 10 s: each completes in ~1 s at 100,000 here, then a 9 s gap.
B=$((M * 6))
PROCS=$(((N + 14999) / 15000))
# The script's text is read whole before it starts: bash reads a file as it runs, and an edit
# to run-local.sh during the hour would otherwise land in the running soak.
RC=0
bash -c "$(cat "$ROOT/bench/run-local.sh")" "$ROOT/bench/run-local.sh" -n "$N" -s "$PROCS" -t 1 --prefork -b "$B" -g 9 -o "$OUT" 2>&1 |
    grep -v "^run-local: broadcast [0-9]*: .* received" || RC=${PIPESTATUS[0]}
verdict() { # after the plot: the run's own result decides the exit status
    [ "$RC" = 0 ] && return 0
    echo "soak: FAIL: run-local.sh exited $RC: $(sed -n 's/^result *//p' "$OUT/summary.txt" 2>/dev/null)" >&2
    exit 1
}
[ -s "$OUT/samples.tsv" ] || { echo "soak: no samples" >&2; verdict; exit 1; }
command -v gnuplot >/dev/null || { echo "soak: gnuplot missing: no plot" >&2; verdict; exit 0; }
t0=$(awk -F"\t" 'NR == 2 { print $1 }' "$OUT/samples.tsv")
gnuplot <<GP
set terminal pngcairo size 1000,700
set output "$OUT/soak.png"
set multiplot layout 2,1 title "soak: $N connections, a broadcast every 10 s"
set xlabel "minutes"
set ylabel "MiB"
set y2label "open descriptors"
set y2tics
set key bottom right
plot "$OUT/samples.tsv" using ((\$1-${t0})/60):(\$3/1024) every ::1 with lines title "server RSS (all processes)", \
     "" using ((\$1-${t0})/60):7 every ::1 axes x1y2 with lines title "server fds"
set ylabel "connections"
set y2label "messages received (millions)"
plot "$OUT/samples.tsv" using ((\$1-${t0})/60):2 every ::1 with lines title "active", \
     "" using ((\$1-${t0})/60):(\$8/1e6) every ::1 axes x1y2 with lines title "messages"
unset multiplot
GP
echo "soak: plot $OUT/soak.png"
verdict
