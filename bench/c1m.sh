#!/usr/bin/env bash
# The C1000K experiment in one command: 1,000,000 WebSocket connections from wspush-bench to
# one `wspush --procs P --threads 1` inside a network namespace, held at least 5 minutes with
# broadcasts spread over the hold, every figure of run-local.sh's summary, plus plots.
#   bench/c1m.sh                 # the 1M run
#   bench/c1m.sh --ehash         # the same with a 4M-bucket established hash (MEASURING.md)
#   bench/c1m.sh --probe         # capacity: ramp towards 2.1M until MemAvailable < 3 GiB,
#                                # then one broadcast to every connection held; with
#                                # --backlog 100000 (run-local.sh): its ramp outlasts the
#                                # keepalive give-up (240 s), see docs/BENCHMARKS.md section 3
# Other run-local.sh options pass through (e.g. -n, -b, --hold, -o, --netns; --help shows them).
# Like run-local.sh it prints FAIL and exits 1 unless every connection got every broadcast,
# once, with no error. Needs root; takes about 8 minutes (the probe about 6). See
# docs/BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=1000000
BCASTS=3
HOLD=300
ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
    --probe) CONNS=2100000; BCASTS=1; HOLD=0; ARGS+=(--backlog 100000); shift ;;
    -n | --conns) CONNS=$2; shift 2 ;;
    -b | --broadcasts) BCASTS=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
    esac
done
# One worker process per 15,000 connections: the per-process open-file cap is 20,000 here
# and SO_REUSEPORT spreads by hash, not evenly.
PROCS=$(((CONNS + 14999) / 15000))
# Read whole before it starts (bash reads a file as it runs): an edit meanwhile cannot land
# in the running experiment.
exec bash -c "$(cat "$ROOT/bench/run-local.sh")" "$ROOT/bench/run-local.sh" -n "$CONNS" -s "$PROCS" -t 1 --prefork -b "$BCASTS" \
    --hold "$HOLD" --plot "${ARGS[@]}"
