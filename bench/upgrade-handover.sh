#!/usr/bin/env bash
# The live upgrade (issue #20) at scale: wspush-bench holds N connections to one
# `wspush --procs P --threads 1` (P = one worker per 15,000 connections: the per-process
# open-file cap is 20,000 here) in a network namespace; one broadcast; SIGUSR2 to the
# supervisor, which replaces its P workers one at a time with the binary at its path, each
# handing its connections over; two more broadcasts. run-local.sh's bench must see every
# connection get all three broadcasts once, none closed (it exits 1 otherwise). Prints and
# records (summary.json, "upgrade") the time from SIGUSR2 until the last worker took over,
# how long each worker paused broadcasts (READY to END), and the connections moved.
#   bench/upgrade-handover.sh -n 100000 -o DIR     # about 3 minutes here
#   bench/upgrade-handover.sh -n 1000000 --ehash   # the whole machine, about 15 minutes
# Other run-local.sh options pass through (-o, --netns, --ehash, --server, --bench). Needs
# root. See docs/BENCHMARKS.md ("Live upgrade").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=100000
ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
    -n | --conns) CONNS=$2; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
    esac
done
[[ $CONNS =~ ^[0-9]+$ ]] || { echo "upgrade-handover: -n wants a number" >&2; exit 2; }
PROCS=$(((CONNS + 14999) / 15000))
export WSP_RUN_CMD="$0 -n $CONNS ${ARGS[*]}"
# Read whole before it starts (bash reads a file as it runs): an edit meanwhile cannot land
# in the running experiment.
bash -c "$(cat "$ROOT/bench/run-local.sh")" "$ROOT/bench/run-local.sh" -n "$CONNS" -s "$PROCS" \
    -t 1 --prefork -b 3 -g 1 --upgrade "${ARGS[@]}"
