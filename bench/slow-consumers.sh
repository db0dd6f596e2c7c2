#!/usr/bin/env bash
# What --sndbuf costs and saves (#20 item 2), in a network namespace of its own: kernel memory
# held by clients that never read (N of them, and a small run), and 64 KiB broadcasts to
# clients that read everything (one to idle readers, then bursts), for each --sndbuf value
# asked for. bench/slow-consumers.py does the work and writes OUT/summary.json; this script
# makes the namespace, runs it there with a bounded lifetime and removes the namespace.
#   bench/slow-consumers.sh [-o DIR] [-- slow-consumers.py options, e.g. -n 10000 --rounds 3]
# The host's TCP memory is shared by every namespace: run it alone (/work/tools/quiet).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
OUT=""
CMD="$0 $*"
while [ $# -gt 0 ]; do
    case $1 in
    -o) OUT=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: bench/slow-consumers.sh [-o DIR] [-- slow-consumers.py options]" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-/tmp/wspush-slow-consumers-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
for t in ss ip; do command -v $t >/dev/null || { echo "slow-consumers: needs $t" >&2; exit 1; }; done
# tcp_mem is the host's (a namespace cannot read it): a memory run stops at its pressure
# threshold, the second value, in pages.
GUARD_KIB=$(($(awk '{print $2}' /proc/sys/net/ipv4/tcp_mem) * 4))
. "$ROOT/bench/netns.sh"
netns_start reliab_slow
ulimit -n "$(ulimit -Hn)"
$NSX timeout 3600 /usr/bin/python3 "$ROOT/bench/slow-consumers.py" --server "$SERVER" \
    --bench "$BENCH" --out "$OUT" --command "$CMD" --guard-kib "$GUARD_KIB" "$@" &
PIDS+=($!)
wait $!
echo "files: $OUT"
