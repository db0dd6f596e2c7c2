#!/bin/sh
# Smoke test of the container image (`make image-test`; not part of ctest: building an image
# is too slow for every test run). Loopback only, bounded in time, cleans up by id and pid.
#
#   1. the image's config: non-root user, entrypoint, exposed port;
#   2. `buildah run` (chroot isolation, host network so traffic stays on 127.0.0.1) starts the
#      image's entrypoint with WSP_THREADS=2 and a Redis URL by *name* (localhost: the name
#      lookup inside a FROM-scratch image), as uid 10001;
#   3. wspush-bench opens 500 connections; a message published on Redis reaches all 500;
#   4. SIGTERM drains and the server exits 0.
#
#   image-test.sh IMAGE WSPUSH_BENCH
set -eu
image=$1
bench=$2
BUILDAH=${BUILDAH:-buildah --storage-driver vfs}
CONNS=500

. "$(dirname "$0")/lib.sh"
cid=""
on_cleanup() { [ -n "$cid" ] && $BUILDAH rm "$cid" >/dev/null 2>&1 || true; }
on_fail() {
    for f in "$tmp/server.log" "$tmp/redis.log"; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
}

# 1. Config.
cfg=$($BUILDAH inspect --type image --format '{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.ExposedPorts}}' "$image") ||
    fail "no image $image (make image)"
case $cfg in
"10001:10001|[/usr/bin/wspush-entry]|map[8080/tcp:{}]") echo "ok: config: $cfg" ;;
*) fail "image config is '$cfg'" ;;
esac
size=$($BUILDAH images --format '{{.Size}}' "$image" | head -n 1)
echo "ok: image size $size"

# 2. Redis on loopback, the image under buildah run.
rport=$(free_port)
timeout 120 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    >"$tmp/redis.log" 2>&1 &
track $!
wait_log 'Ready to accept connections' "$tmp/redis.log" 10

cid=$($BUILDAH from --name "wspush-image-test-$$" --ulimit nofile=4096:4096 "$image")
timeout 120 $BUILDAH run --isolation chroot --network host -e WSP_THREADS=2 "$cid" -- \
    /usr/bin/wspush-entry --bind 127.0.0.1 --port 0 --interval 0 --admin off \
    --drain-seconds 1 --redis "redis://localhost:$rport" --channel image-test \
    >"$tmp/server.log" 2>&1 &
run_pid=$!
track $run_pid
wait_log 'event=listening' "$tmp/server.log" 20
wait_log 'event=redis_subscribed' "$tmp/server.log" 20
port=$(sed -n 's/.*event=listening .* port=\([0-9]*\) .*/\1/p' "$tmp/server.log")
grep -q 'event=listening .* threads=2 ' "$tmp/server.log" || fail "WSP_THREADS=2 not applied"
grep -q 'nofile limit 4096' "$tmp/server.log" || fail "the container's nofile limit is not 4096"
# Informational: io_uring depends on the runtime's seccomp profile (--io-uring auto falls back).
echo "info: broadcast send path in the container: $(grep -o 'event=send_path path=[a-z_]*' "$tmp/server.log" | sort -u | sed 's/.*path=//' | tr '\n' ' ')"
echo "ok: the entrypoint started wspush on port $port with threads=2, nofile 4096, Redis by name"

server=""
for p in $(tree "$run_pid"); do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = wspush ] && server=$p
done
[ -n "$server" ] || fail "no wspush process under buildah run"
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$server/status")
[ "$uid" = 10001 ] || fail "wspush runs as uid $uid, want 10001"
echo "ok: wspush (pid $server) runs as uid 10001"

# 3. Load and a broadcast through Redis.
timeout 60 "$bench" --url "ws://127.0.0.1:$port/" --conns $CONNS --duration 6 --quiet \
    --json "$tmp/bench.json" --status-file "$tmp/status" >"$tmp/bench.out" 2>&1 &
bench_pid=$!
track $bench_pid
wait_until 10 "$CONNS connections open" grep -qx "active=$CONNS" "$tmp/status"
now=$(date +%s%3N)
got=$(redis-cli -p "$rport" PUBLISH image-test "{\"time\":$now,\"seq\":1}")
[ "$got" = 1 ] || fail "PUBLISH reached $got subscribers, want 1"
st=0
wait "$bench_pid" || st=$?
[ "$st" -eq 0 ] || { cat "$tmp/bench.out"; fail "wspush-bench exited $st"; }
bench_got_once "$tmp/bench.json" "$CONNS" bench
echo "ok: $CONNS connections through the image, each got the Redis broadcast once"

# 4. Drain and exit.
stop_expect_0 "$server" "$run_pid" "buildah run, wspush given SIGTERM"
grep -q 'event=stopped' "$tmp/server.log" || fail "no event=stopped"
echo "ok: SIGTERM drained and wspush exited 0"
echo "image-test passed ($image, $size)"
