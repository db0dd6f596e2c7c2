#!/bin/sh
# Runs deploy/compose.yaml with podman-compose (`make compose-test`; not part of ctest) and
# checks the publish path: 200 clients on each wspush instance, one POST /publish to instance
# a, and every client of both instances gets it once (a -> Redis -> a and b).
#
# Everything happens in a network namespace made for the run: the compose bridge, its NAT
# and the connection tracking that published ports switch on stay there, and deleting the
# namespace removes them (run on the host's own namespace, they would start tracking every
# connection of the machine). The namespace's loopback is private, so the compose file's
# default ports are free. Bounded in time; cleans up by project label, pid and name.
#
#   compose-test.sh COMPOSE_FILE WSPUSH_BENCH
set -eu
compose=$(readlink -f "$1")
bench=$(readlink -f "$2")
PODMAN_ARGS=${PODMAN_ARGS:---storage-driver vfs --runtime runc}
CONNS=200
ns=wsp_compose_$$
project=wspct$$
. "$(dirname "$0")/lib.sh"
export WSP_NOFILE=${WSP_NOFILE:-4096}

# nsenter, not `ip netns exec`: that one mounts a fresh /sys without the cgroup hierarchy,
# where runc cannot create containers.
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
pc() { in_ns podman-compose --podman-args "$PODMAN_ARGS" -p "$project" -f "$compose" "$@"; }
pm() { in_ns podman $PODMAN_ARGS "$@"; }

on_cleanup() {
    if ip netns list | grep -qw "$ns"; then
        pc down -t 5 >/dev/null 2>&1
        ids=$(pm ps -aq --filter "label=io.podman.compose.project=$project" 2>/dev/null)
        [ -n "$ids" ] && pm rm -f $ids >/dev/null 2>&1
        pm network rm -f "${project}_default" >/dev/null 2>&1
        # Whatever still runs in the namespace (benches, dnsmasq of the compose network).
        stop_pids $(ip netns pids "$ns")
        ip netns del "$ns"
    fi
}

on_fail() {
    for s in redis wspush-a wspush-b; do
        echo "--- $s"
        pm logs --tail 15 "${project}_${s}_1" 2>&1
    done
}

logs_match() { pm logs "$1" 2>&1 | grep -Eq "$2"; }

wait_logs() { # CONTAINER PATTERN SECONDS
    wait_until "$3" "a line matching '$2' from $1" logs_match "$1" "$2"
}

for img in "${WSP_IMAGE:-localhost/wspush:latest}" "${WSP_REDIS_IMAGE:-localhost/wspush-redis:latest}"; do
    podman $PODMAN_ARGS image exists "$img" || fail "no image $img (make image redis-image)"
done

ip netns add "$ns"
ip -n "$ns" link set lo up
timeout 120 podman-compose --version >/dev/null
pc up -d >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fail "podman-compose up"; }
for s in wspush-a wspush-b; do
    wait_logs "${project}_${s}_1" 'event=redis_subscribed' 30
done
echo "ok: compose up: redis, wspush-a, wspush-b; both instances subscribed to redis://redis:6379"

# Published ports are NATed from the namespace's 127.0.0.1 only: one source address.
for port in 8080 8090; do
    in_ns timeout 60 "$bench" --url "ws://127.0.0.1:$port/" --conns $CONNS --duration 6 \
        --sources 127.0.0.1-127.0.0.1 --quiet --json "$tmp/$port.json" \
        --status-file "$tmp/$port.status" >"$tmp/$port.out" 2>&1 &
done
for port in 8080 8090; do
    wait_until 15 "$CONNS connections to :$port open" grep -qx "active=$CONNS" "$tmp/$port.status"
done
echo "ok: $CONNS clients on each instance (:8080 and :8090)"

now=$(date +%s%3N)
code=$(in_ns curl -s -o "$tmp/publish.out" -w '%{http_code}' -X POST \
    --data-binary "{\"time\":$now,\"seq\":1}" http://127.0.0.1:8081/publish)
[ "$code" = 202 ] || fail "POST /publish to instance a answered $code: $(cat "$tmp/publish.out")"
wait
for port in 8080 8090; do
    bench_got_once "$tmp/$port.json" "$CONNS" ":$port"
done
echo "ok: one POST /publish to a reached every client of a and b once, through Redis"

for s in wspush-a wspush-b; do
    pm stop -t 30 "${project}_${s}_1" >/dev/null
    st=$(pm inspect --format '{{.State.ExitCode}}' "${project}_${s}_1")
    [ "$st" = 0 ] || fail "$s exited $st after SIGTERM"
    pm logs "${project}_${s}_1" 2>&1 | grep -q 'event=stopped' || fail "$s did not log event=stopped"
done
echo "ok: SIGTERM (podman stop -t 30) drained both instances, exit 0"
echo "compose-test passed"
