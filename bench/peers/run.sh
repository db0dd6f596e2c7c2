#!/usr/bin/env bash
# Starts one peer push server built by bench/peers/build.sh, in place of this shell (exec:
# the pid you started is the server's, so SIGUSR1 reaches it directly):
#   bench/peers/run.sh node|netty|go [--port 8080] [--bind 127.0.0.1]
# The open-file soft limit is raised to the hard one first: Node cannot do that itself (the
# JVM and Go do it at startup anyway). On this box both are 20,000 per process.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/peers
[ $# -ge 1 ] || { echo "usage: bench/peers/run.sh node|netty|go [--port P] [--bind ADDR]" >&2; exit 2; }
WHICH=$1
shift
ulimit -n "$(ulimit -Hn)"
case $WHICH in
node)
    [ -f "$OUT/node/node_modules/ws/package.json" ] || { echo "run.sh: bench/peers/build.sh node first" >&2; exit 1; }
    exec node "$OUT/node/server.js" "$@"
    ;;
netty)
    [ -f "$OUT/netty/classes/PushServer.class" ] || { echo "run.sh: bench/peers/build.sh netty first" >&2; exit 1; }
    exec java -cp "$OUT/netty/classes:$(cat "$OUT/netty/classpath")" PushServer "$@"
    ;;
go)
    [ -x "$OUT/go/wsppeer" ] || { echo "run.sh: bench/peers/build.sh go first" >&2; exit 1; }
    exec "$OUT/go/wsppeer" "$@"
    ;;
*)
    echo "run.sh: unknown peer $WHICH (node, netty or go)" >&2
    exit 2
    ;;
esac
