# Sourced by the small bench scripts: a private network namespace for one experiment, and a
# cleanup that stops what the script started (by pid) and deletes the namespace on any exit.
#   . "$(dirname "$0")/netns.sh"; netns_start NAME   -> $NS, $NSX ("ip netns exec $NS"), PIDS=()
# Scripts append every background pid they start to PIDS.
PIDS=()
netns_cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${NS:-}" ] && ip netns del "$NS" 2>/dev/null || true
    exit $rc
}
netns_start() { # $1: a short name for the namespace
    [ "$(id -u)" = 0 ] || { echo "$1: needs root for ip netns" >&2; exit 1; }
    NS=wsp_$1_$$
    trap netns_cleanup EXIT
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    # The whole client port range: one source address may open ~50,000 connections.
    ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="15000 65535"
    NSX="ip netns exec $NS"
}
