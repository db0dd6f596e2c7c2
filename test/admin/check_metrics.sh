#!/usr/bin/env bash
# Lints a Prometheus text exposition (what GET /metrics returns) with promtool and fails on
# any complaint, lint warnings included: Prometheus ingests many mistakes silently, and a
# dashboard finds them months later.
#
# Usage: test/admin/check_metrics.sh METRICS_FILE   ("-" reads standard input)
# Exit: 0 clean, 1 complaints (printed), 2 usage or environment error.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 METRICS_FILE" >&2
    exit 2
fi

if ! command -v promtool >/dev/null 2>&1; then
    # Debian ships promtool in the prometheus package; install it only where we may.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "$0: promtool missing, installing the prometheus package" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2 ||
            { apt-get update >&2 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2; }
    fi
    if ! command -v promtool >/dev/null 2>&1; then
        echo "$0: promtool not found (apt-get install prometheus)" >&2
        exit 2
    fi
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if [ "$1" = - ]; then
    cat >"$tmp"
elif [ -r "$1" ]; then
    cp -- "$1" "$tmp"
else
    echo "$0: cannot read $1" >&2
    exit 2
fi

# promtool accepts an empty exposition; a /metrics that returns nothing is a bug for us.
if ! grep -q '^[a-zA-Z_:]' "$tmp"; then
    echo "$0: $1 holds no samples" >&2
    exit 1
fi

# promtool exits 1 on a parse error and 3 on lint problems, but print everything it says:
# any output at all counts as a complaint.
rc=0
out=$(promtool check metrics <"$tmp" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "$0: promtool check metrics complained about $1 (exit $rc):" >&2
    printf '%s\n' "$out" >&2
    exit 1
fi
echo "$0: $1 ok ($(grep -c '^[a-zA-Z_:]' "$tmp") samples)"
