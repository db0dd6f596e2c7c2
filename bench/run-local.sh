#!/usr/bin/env bash
# One whole C1000K experiment on this box, inside a network namespace this script creates:
# S wspush processes on one port (SO_REUSEPORT), wspush-bench ramping N connections, B
# broadcasts (SIGUSR1) spaced apart, memory and CPU sampled; then a summary. The bench is told
# how many broadcasts to expect: the run FAILs (exit 1) unless every connection got every
# broadcast, once, with no error. Everything it starts has a bounded lifetime and is stopped
# by pid on exit or error; the namespace is deleted. Needs root (ip netns). See
# docs/BENCHMARKS.md and ../shared/MEASURING.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export WSP_RUN_CMD=${WSP_RUN_CMD:-"$0 $*"} # the command of the whole run, for summary.json
SERVER=${WSPUSH_SERVER:-$ROOT/build/release/server/wspush}
BENCH=${WSPUSH_BENCH:-$ROOT/build/release/bench/wspush-bench}
CONNS=10000
BCASTS=3
SERVERS=0 # 0 = one per 15,000 connections
THREADS=1
GAP=2
OUT=""
EHASH=0
BACKLOG=0
PLOT=0
PORT=8080
CONC=""
BENCH_ARGS=""
PREFORK=0
HOLD=0
SERVER_ARGS=""
SERVER_CMD=""
STOP_BENCH=0
NS=${WSP_NETNS:-wsp_bench_$$}
UPGRADE=0
BCAST_WAIT=${WSP_BCAST_WAIT:-}
TLS="" # DIR[:NAME]: wss:// with DIR/NAME.pem, DIR/NAME.key, DIR/ca.pem (issue #18)
WARMUP=0
SETTLE=1
PUBLISH=""
ADMIN_PORT=8081 # with --publish: the admin API inside the namespace

usage() {
    cat <<EOF
usage: bench/run-local.sh [options]
  -n, --conns N        connections (default $CONNS)
  -b, --broadcasts B   broadcasts, SIGUSR1 to every server (default $BCASTS)
  -s, --servers S      server processes (default: one per 15,000 connections)
  -t, --threads T      --threads of each server (default $THREADS)
  -g, --gap SEC        pause after each broadcast completes (default $GAP)
  -c, --concurrency K  bench handshakes in flight per process (default: the bench's)
  -o, --out DIR        results directory (default /tmp/wspush-run-DATE)
  --bench-args "ARGS"  more wspush-bench options, e.g. "--coalesce-us 500"
  --server-args "ARGS" more wspush options, e.g. "--tcp-keepalive 0"
  --prefork            one supervisor, wspush --procs S (instead of S separate processes);
                       broadcasts are SIGUSR1 to the supervisor
  --hold SEC           keep the connections at least SEC seconds after the ramp, the
                       broadcasts spread over that time (overrides --gap)
  --ehash              4M-bucket established hash for the namespace (MEASURING.md)
  --backlog N          net.core.netdev_max_backlog for the run (restored after; global):
                       loopback's per-CPU input queue. 0 = leave it (the default)
  --plot               also run bench/plot.sh on the report
  --server PATH        server binary (env WSPUSH_SERVER; default build/release/server/wspush)
  --bench PATH         bench binary (env WSPUSH_BENCH; default build/release/bench/wspush-bench)
  --server-cmd "CMD"   run another server instead of wspush: CMD --port PORT --bind 127.0.0.1
                       (CMD split on spaces), one process that logs 'event=listening' and
                       'event=broadcast seq=' to stderr and broadcasts on SIGUSR1 (bench/peers/);
                       -s, -t and --prefork do not apply
  --stop-bench         send side only: SIGSTOP the bench for each broadcast until every server
                       logged 'event=broadcast seq=' (the pass), then SIGCONT and let it drain
  --wait SEC           how long to wait for a broadcast to reach every connection before
                       going on (env WSP_BCAST_WAIT; default 30 s + 1 s per 20,000)
  --netns NAME         the network namespace to create (env WSP_NETNS; default wsp_bench_PID):
                       one name per concurrent run
  --tls DIR[:NAME]     wss://: the servers get --tls-cert DIR/NAME.pem --tls-key DIR/NAME.key
                       (NAME default ec), the bench --tls-ca DIR/ca.pem (test/common/mkcerts.sh
                       makes such a DIR)
  --warmup N           before the memory baseline, N connections for 2 s, closed: what the first
                       handshakes fault in once per process is then not counted per connection
  --settle SEC         seconds after the ramp before memory is read (default 1): freed handshake
                       memory goes back to the kernel ~10 s after use (jemalloc's decay)
  --publish FILE       each broadcast is FILE (a JSON object starting {"time":N,"seq":N,...})
                       published through the admin API (POST /publish on 127.0.0.1:$ADMIN_PORT in
                       the namespace) with "time" set to the sender's clock and "seq" to the
                       broadcast's number, instead of SIGUSR1's time tick; the server's /metrics
                       are kept (metrics.prom, and a summary in summary.json). One server
                       process, or --prefork
  --upgrade            a live upgrade (SIGUSR2 to every server, issue #20) after the first
                       broadcast: timed from the signal until every server has taken over
                       (with --prefork: every worker replaced); needs -b 2 or more
The bench runs with --expect-broadcasts B. The run passes (exit 0, "result ok" in the
summary) only if the bench does: every connection open for a broadcast got it, once
(delivered = expected = connections x B), 0 missing, 0 duplicates, 0 errors. Otherwise the
summary says FAIL, with the missing seqs, and the script exits 1 (2: bad arguments).
EOF
}

die() {
    echo "run-local: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
    -n | --conns) CONNS=$2; shift 2 ;;
    -b | --broadcasts) BCASTS=$2; shift 2 ;;
    -s | --servers) SERVERS=$2; shift 2 ;;
    -t | --threads) THREADS=$2; shift 2 ;;
    -g | --gap) GAP=$2; shift 2 ;;
    -c | --concurrency) CONC=$2; shift 2 ;;
    -o | --out) OUT=$2; shift 2 ;;
    --bench-args) BENCH_ARGS=$2; shift 2 ;;
    --prefork) PREFORK=1; shift ;;
    --server-args) SERVER_ARGS=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --ehash) EHASH=1; shift ;;
    --backlog) BACKLOG=$2; shift 2 ;;
    --plot) PLOT=1; shift ;;
    --server) SERVER=$2; shift 2 ;;
    --bench) BENCH=$2; shift 2 ;;
    --server-cmd) SERVER_CMD=$2; shift 2 ;;
    --stop-bench) STOP_BENCH=1; shift ;;
    --netns) NS=$2; shift 2 ;;
    --wait) BCAST_WAIT=$2; shift 2 ;;
    --tls) TLS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --publish) PUBLISH=$2; shift 2 ;;
    --upgrade) UPGRADE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for v in CONNS BCASTS SERVERS THREADS HOLD WARMUP SETTLE BACKLOG ${BCAST_WAIT:+BCAST_WAIT}; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run-local: ${v,,} must be an integer" >&2; exit 2; }
done
[[ $GAP =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run-local: --gap must be seconds" >&2; exit 2; }
[ "$CONNS" -ge 1 ] || { echo "run-local: --conns must be >= 1" >&2; exit 2; }
[ "$UPGRADE" = 0 ] || [ "$BCASTS" -ge 2 ] || { echo "run-local: --upgrade needs 2 or more broadcasts" >&2; exit 2; }
[ "$BCASTS" -le 8191 ] || { echo "run-local: at most 8191 broadcasts (the bench's seq table)" >&2; exit 2; }
[[ $NS =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || { echo "run-local: --netns: letters, digits, _ . - only" >&2; exit 2; }
! ip netns list 2>/dev/null | grep -q "^$NS\( \|$\)" || { echo "run-local: namespace $NS exists" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root for ip netns"
if [ -n "$SERVER_CMD" ]; then
    SERVERS=1 PREFORK=0
else
    [ -x "$SERVER" ] || die "no server binary at $SERVER (make build, or --server PATH)"
fi
[ -x "$BENCH" ] || die "no bench binary at $BENCH (make build, or --bench PATH)"
if [ -n "$PUBLISH" ]; then
    [ -r "$PUBLISH" ] || die "--publish: cannot read $PUBLISH"
    grep -q '^{"time":[0-9]*,"seq":[0-9]*' "$PUBLISH" || die "--publish: $PUBLISH must start {\"time\":N,\"seq\":N"
    [ -z "$SERVER_CMD" ] || die "--publish needs wspush's admin API, not --server-cmd"
    command -v curl >/dev/null || die "--publish needs curl"
fi
command -v python3 >/dev/null || die "needs python3 for the summary"
[ "$SERVERS" -gt 0 ] || SERVERS=$(((CONNS + 14999) / 15000))
PER_SERVER=$(((CONNS + SERVERS - 1) / SERVERS))
# SO_REUSEPORT spreads by hash, not evenly: leave each process room under the 20,000 cap.
[ "$PER_SERVER" -le 17000 ] || die "$CONNS connections need more than $SERVERS server processes (-s)"
[ -z "$PUBLISH" ] || [ "$SERVERS" -eq 1 ] || [ "$PREFORK" = 1 ] ||
    die "--publish needs one server process or --prefork (one admin API for all)"
ADMIN=off
[ -z "$PUBLISH" ] || ADMIN=127.0.0.1:$ADMIN_PORT
# --hold: the broadcasts are spaced so that the last one ends no earlier than HOLD seconds
# after the ramp.
[ "$HOLD" -eq 0 ] || GAP=$(((HOLD + BCASTS - 1) / BCASTS))
OUT=${OUT:-/tmp/wspush-run-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
HZ=$(getconf CLK_TCK)

# wss://: the servers' certificate and key, the bench's CA, and the scheme.
SCHEME=ws
TLS_BENCH=()
if [ -n "$TLS" ]; then
    tdir=${TLS%%:*} tname=${TLS#*:}
    [ "$tname" != "$TLS" ] || tname=ec
    for f in "$tdir/$tname.pem" "$tdir/$tname.key" "$tdir/ca.pem"; do
        [ -r "$f" ] || { echo "run-local: --tls: cannot read $f" >&2; exit 2; }
    done
    SERVER_ARGS="$SERVER_ARGS --tls-cert $tdir/$tname.pem --tls-key $tdir/$tname.key"
    TLS_BENCH=(--tls-ca "$tdir/ca.pem")
    SCHEME=wss
fi
# Lifetimes: the ramp gets 60 s plus 1 s per 2,000 connections (per 500 over TLS: every
# connection is a handshake); each broadcast 30 s plus 1 s per 20,000 connections.
RAMP_MAX=$((60 + CONNS / (${#TLS_BENCH[@]} ? 500 : 2000) + SETTLE))
BCAST_MAX=${BCAST_WAIT:-$((30 + CONNS / 20000))}
LIFE=$((RAMP_MAX + BCASTS * (BCAST_MAX + ${GAP%.*} + 1) + 60 + (WARMUP ? 30 : 0)))

SERVER_TPIDS=() # the `timeout` wrappers
SERVER_PIDS=()  # the servers themselves (with --prefork: the supervisor and its workers)
SIGNAL_PIDS=()  # who gets SIGUSR1 for a broadcast
BENCH_TPID=""
BENCH_PID=""
WORKERS=""
EHASH_SET=0
BACKLOG0="" # the value --backlog replaced, restored on exit

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$BENCH_PID" ] && kill -CONT "$BENCH_PID" $WORKERS 2>/dev/null || true # --stop-bench
    [ -n "$BENCH_PID" ] && kill -INT "$BENCH_PID" 2>/dev/null || true
    for p in "${SIGNAL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    local deadline=$((SECONDS + 20))
    for p in $BENCH_TPID "${SERVER_TPIDS[@]}"; do
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in $BENCH_PID "${SERVER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    [ "$EHASH_SET" = 1 ] && sysctl -qw net.ipv4.tcp_child_ehash_entries=0 || true
    [ -n "$BACKLOG0" ] && sysctl -qw net.core.netdev_max_backlog="$BACKLOG0" || true
    exit $rc
}
trap cleanup EXIT
trap 'echo "run-local: interrupted" >&2; exit 130' INT TERM

# Polled every 20 ms during a broadcast: bash builtins only, no fork per poll.
meminfo() { # kB
    local k v _
    while read -r k v _; do
        [ "$k" = "$1:" ] && { echo "$v"; return; }
    done </proc/meminfo
}
declare -A ST
st_read() { # the bench's status file into ST; zeros until it exists
    local k v
    ST=([active]=0 [messages]=0 [errors]=0 [ramp_done]=0)
    [ -f "$OUT/status" ] || return 0
    while IFS== read -r k v; do ST[$k]=$v; done <"$OUT/status"
}
status() { st_read; echo "${ST[$1]:-0}"; }
# Packets the kernel dropped because a CPU's input backlog (net.core.netdev_max_backlog) was
# full, summed over CPUs since boot (/proc/net/softnet_stat's second column, hexadecimal): on
# loopback a saturated box drops SYNs, ACKs and keepalive probes here, not on a wire.
softnet_dropped() {
    local n=0 _p d _r
    while read -r _p d _r; do n=$((n + 16#$d)); done </proc/net/softnet_stat
    echo "$n"
}
child_of() { cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{ print $1 }'; }
children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }
rss_kb() { # summed VmRSS (or the field in $RSS_FIELD) of the given pids
    local t=0 v f=${RSS_FIELD:-VmRSS}
    for p in "$@"; do
        v=$(awk -v k="$f:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        t=$((t + ${v:-0}))
    done
    echo $t
}
cpu_ns() { # CPU time of every thread of the given pids, ns (schedstat: exact, unlike ticks)
    local t=0 p f v
    for p in "$@"; do
        for f in /proc/"$p"/task/*/schedstat; do
            read -r v _ <"$f" 2>/dev/null || continue
            t=$((t + v))
        done
    done
    echo $t
}
busy_ns() { # the whole machine's busy CPU time, ns (user, nice, system, irq, softirq; not steal)
    local cpu u n s i w q sq _
    read -r cpu u n s i w q sq _ </proc/stat
    echo $(((u + n + s + q + sq) * 1000000000 / HZ))
}
fds() { # open descriptors of the given pids (a readdir each: only for soak sampling)
    local t=0 p n
    for p in "$@"; do
        n=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        t=$((t + n))
    done
    echo $t
}
sample() { # one line of samples.tsv
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date +%s.%N | cut -c1-14)" "$(status active)" \
        "$(rss_kb "${SERVER_PIDS[@]}")" "$(meminfo Slab)" "$(meminfo MemAvailable)" \
        "$(cpu_ns "${SERVER_PIDS[@]}")" "$(fds "${SERVER_PIDS[@]}")" "$(status messages)" \
        >>"$OUT/samples.tsv"
}

if [ -n "$SERVER_CMD" ]; then
    echo "run-local: $CONNS connections, server: $SERVER_CMD, $BCASTS broadcasts${SERVER_ARGS:+, server args: $SERVER_ARGS}; results in $OUT"
else
    echo "run-local: $CONNS connections, $SERVERS server process(es) x $THREADS thread(s), $BCASTS broadcasts${SERVER_ARGS:+, server args: $SERVER_ARGS}; results in $OUT"
fi
if [ "$EHASH" = 1 ]; then
    sysctl -qw net.ipv4.tcp_child_ehash_entries=4194304
    EHASH_SET=1
fi
ip netns add "$NS"
if [ "$EHASH_SET" = 1 ]; then
    sysctl -qw net.ipv4.tcp_child_ehash_entries=0
    EHASH_SET=0
fi
ip -n "$NS" link set lo up
if [ "$BACKLOG" != 0 ]; then
    # Loopback delivers through each CPU's input backlog: a burst larger than it (a ~2-second
    # slot of the timer wheel firing the keepalive probes of ~16,000 connections at once) is
    # dropped there, probes, answers and the RSTs that follow alike (BENCHMARKS.md section 3).
    BACKLOG0=$(sysctl -n net.core.netdev_max_backlog)
    sysctl -qw net.core.netdev_max_backlog="$BACKLOG"
    echo "run-local: net.core.netdev_max_backlog $BACKLOG0 -> $BACKLOG for this run"
fi
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="15000 65535"
printf 't\tactive\tserver_rss_kb\tslab_kb\tmemavailable_kb\tserver_cpu_ns\tserver_fds\tmessages\n' \
    >"$OUT/samples.tsv"

# --procs 1 is a plain single process (no supervisor): the ordinary path.
[ "$SERVERS" -ge 2 ] || PREFORK=0
if [ "$PREFORK" = 1 ]; then
    ip netns exec "$NS" timeout -s TERM -k 30 "$LIFE" "$SERVER" --procs "$SERVERS" \
        --threads "$THREADS" --port "$PORT" --bind 127.0.0.1 --interval 0 --admin "$ADMIN" \
        --max-conns 19900 $SERVER_ARGS 2>"$OUT/server-1.log" &
    SERVER_TPIDS+=($!)
    deadline=$((SECONDS + 30))
    until [ "$(grep -c ' event=listening' "$OUT/server-1.log" 2>/dev/null)" -ge "$SERVERS" ]; do
        [ $SECONDS -lt $deadline ] || die "workers did not start: $(tail -2 "$OUT/server-1.log")"
        sleep 0.05
    done
    sup=$(child_of "${SERVER_TPIDS[0]}")
    [ -n "$sup" ] || die "supervisor: no pid"
    SIGNAL_PIDS=("$sup")
    SERVER_PIDS=("$sup" $(children "$sup"))
    [ "${#SERVER_PIDS[@]}" -eq $((SERVERS + 1)) ] || die "expected $SERVERS workers, found $((${#SERVER_PIDS[@]} - 1))"
else
    if [ -n "$SERVER_CMD" ]; then
        read -r -a srv_cmd <<<"$SERVER_CMD"
        srv_cmd+=(--port "$PORT" --bind 127.0.0.1)
    else
        srv_cmd=("$SERVER" --threads "$THREADS" --port "$PORT" --bind 127.0.0.1 --interval 0
            --admin "$ADMIN" --max-conns 19900)
    fi
    for i in $(seq 1 "$SERVERS"); do
        ip netns exec "$NS" timeout -s TERM -k 10 "$LIFE" "${srv_cmd[@]}" \
            $SERVER_ARGS 2>"$OUT/server-$i.log" &
        SERVER_TPIDS+=($!)
    done
    deadline=$((SECONDS + 15))
    for i in $(seq 1 "$SERVERS"); do
        until grep -q 'event=listening' "$OUT/server-$i.log" 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || die "server $i did not start: $(tail -2 "$OUT/server-$i.log")"
            sleep 0.05
        done
        p=$(child_of "${SERVER_TPIDS[$((i - 1))]}")
        [ -n "$p" ] || die "server $i: no pid"
        SERVER_PIDS+=("$p")
    done
    SIGNAL_PIDS=("${SERVER_PIDS[@]}")
fi
sleep 0.5
if [ "$WARMUP" -gt 0 ]; then
    ip netns exec "$NS" timeout -s INT -k 10 30 "$BENCH" --url "$SCHEME://127.0.0.1:$PORT/" \
        --conns "$WARMUP" --duration 2 --quiet "${TLS_BENCH[@]}" >"$OUT/warmup.out" 2>&1 ||
        die "the warm-up failed: $(tail -2 "$OUT/warmup.out")"
    sleep 1 # the servers see the warm-up connections close
fi
RSS0=$(rss_kb "${SERVER_PIDS[@]}")
ANON0=$(RSS_FIELD=RssAnon rss_kb "${SERVER_PIDS[@]}")
SRV_CPU0=$(cpu_ns "${SERVER_PIDS[@]}")
SOFTNET0=$(softnet_dropped)
SLAB0=$(meminfo Slab)
sample

BENCH_DUR=$((LIFE - 30))
ip netns exec "$NS" timeout -s INT -k 30 "$((BENCH_DUR + 20))" "$BENCH" \
    --url "$SCHEME://127.0.0.1:$PORT/" --conns "$CONNS" --duration "$BENCH_DUR" "${TLS_BENCH[@]}" \
    ${CONC:+--concurrency "$CONC"} --json "$OUT/report.json" --status-file "$OUT/status" \
    --report-interval 10 --expect-broadcasts "$BCASTS" $BENCH_ARGS >"$OUT/bench.out" 2>&1 &
BENCH_TPID=$!
deadline=$((SECONDS + 5))
until [ -n "$BENCH_PID" ]; do
    BENCH_PID=$(child_of "$BENCH_TPID")
    [ $SECONDS -lt $deadline ] || die "the bench did not start: $(tail -2 "$OUT/bench.out")"
    sleep 0.02
done

# The ramp: wait until every connection is resolved; guard memory.
deadline=$((SECONDS + RAMP_MAX))
next=0
STOPPED=""
while st_read && [ "${ST[ramp_done]}" != 1 ]; do
    kill -0 "$BENCH_PID" 2>/dev/null || die "the bench exited during the ramp: $(tail -3 "$OUT/bench.out")"
    [ $SECONDS -lt $deadline ] || die "ramp not done after ${RAMP_MAX}s"
    avail=$(meminfo MemAvailable)
    [ "$avail" -ge $((2 * 1024 * 1024)) ] || die "MemAvailable below 2 GiB: aborting"
    if [ -z "$STOPPED" ] && [ "$avail" -lt $((3 * 1024 * 1024)) ]; then
        kill -USR2 "$BENCH_PID"
        STOPPED="MemAvailable fell below 3 GiB"
        echo "run-local: $STOPPED: ramp stopped"
    fi
    if [ $SECONDS -ge $next ]; then
        next=$((SECONDS + 1))
        sample
        echo "run-local: ramp: ${ST[active]}/$CONNS connected, errors ${ST[errors]}"
    fi
    sleep 0.1
done
sleep "$SETTLE" # let the servers settle: the last upgrades' buffers (--settle)
# Dropped SYNs cost a 1 s retransmit each: they explain a slow ramp tail. Connections the
# kernel aborted on a timeout (TCP_USER_TIMEOUT, keepalive) vanish from a server without the
# bench hearing of it when the RST is dropped too: TcpExtTCPAbortOnTimeout, softnet drops.
{ ip netns exec "$NS" nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop \
    TcpExtSyncookiesSent TcpRetransSegs TcpExtTCPAbortOnTimeout TcpExtTCPKeepAlive 2>/dev/null |
    awk 'NR > 1 { printf "%s=%s ", $1, $2 }'
  echo "softnet_dropped=$(($(softnet_dropped) - SOFTNET0)) netdev_max_backlog=$(sysctl -n net.core.netdev_max_backlog)"
} >"$OUT/nstat.txt" || true
ACTIVE=$(status active)
WORKERS=$(children "$BENCH_PID")
# The ramp's CPU per connection: the bench's is everything it used so far.
RAMP_SRV_CPU=$(($(cpu_ns "${SERVER_PIDS[@]}") - SRV_CPU0))
RAMP_BENCH_CPU=$(cpu_ns "$BENCH_PID" $WORKERS)
RSS1=$(rss_kb "${SERVER_PIDS[@]}")
ANON1=$(RSS_FIELD=RssAnon rss_kb "${SERVER_PIDS[@]}")
SLAB1=$(meminfo Slab)
sample
echo "run-local: ramp done: $ACTIVE connected, errors $(status errors)"

# --upgrade: SIGUSR2 to every server; timed until each has logged its takeover (with --prefork
# the supervisor's last worker replaced). The pids change: sampling and cleanup follow them.
UPGRADE_MS="" UPGRADE_LOG=""
live_upgrade() {
    local t0 t1 i p
    t0=$(date +%s%N)
    kill -USR2 "${SIGNAL_PIDS[@]}"
    local deadline=$((SECONDS + 120 + CONNS / 5000)) done_re='event=upgrade_complete'
    # A supervisor replaces its workers one at a time: done once it says so.
    [ "$PREFORK" = 1 ] && done_re='event=upgrade_workers_done'
    for i in $(seq 1 "$SERVERS"); do
        [ "$PREFORK" = 1 ] && [ "$i" -gt 1 ] && break
        until grep -q "$done_re" "$OUT/server-$i.log"; do
            ! grep -q 'event=upgrade_failed' "$OUT/server-$i.log" ||
                die "upgrade failed: $(grep 'event=upgrade_failed' "$OUT/server-$i.log" | tail -1)"
            [ $SECONDS -lt $deadline ] || die "server $i: upgrade not done after 120 s"
            sleep 0.01
        done
    done
    t1=$(date +%s%N)
    UPGRADE_MS=$(((t1 - t0) / 1000000))
    # The last new worker logs its takeover around when the supervisor logs the last old one's
    # exit: wait for every line before reading them.
    local want=$SERVERS
    until [ "$(cat "$OUT"/server-*.log | grep -c 'event=upgrade_complete')" -ge "$want" ]; do
        [ $SECONDS -lt $deadline ] || die "only $(cat "$OUT"/server-*.log | grep -c 'event=upgrade_complete') of $want takeovers logged"
        sleep 0.01
    done
    if [ "$PREFORK" = 1 ]; then
        # The old workers are gone (upgrade_workers_done follows the last one's exit).
        SERVER_PIDS=("${SIGNAL_PIDS[0]}" $(children "${SIGNAL_PIDS[0]}"))
    else
        SERVER_PIDS=()
        for i in $(seq 1 "$SERVERS"); do
            p=$(sed -n 's/.* event=upgrade_started pid=\([0-9]*\).*/\1/p' "$OUT/server-$i.log" | tail -1)
            [ -n "$p" ] || die "server $i: no new pid"
            SERVER_PIDS+=("$p")
        done
        SIGNAL_PIDS=("${SERVER_PIDS[@]}")
    fi
    UPGRADE_LOG=$(cat "$OUT"/server-*.log | grep -E 'event=(upgrade_handed_over|handover_sent|handover_adopted|upgrade_complete|upgrade_failed)' || true)
    printf '%s\n' "$UPGRADE_LOG" >"$OUT/upgrade.log"
    echo "run-local: upgrade: $UPGRADE_MS ms from SIGUSR2 until every server took over; $(grep -c 'event=upgrade_complete' "$OUT/upgrade.log") process(es) replaced"
}

# The broadcasts: all servers at once, then wait for every active connection to have it.
SRV_CPU=0 BENCH_CPU=0 BUSY=0 GOT=0 SEND_CPU=0
passes_logged() { cat "$OUT"/server-*.log 2>/dev/null | grep -c 'event=broadcast seq=' || true; }
trigger() { # broadcast $1: SIGUSR1 to every server, or --publish's file through the admin API
    if [ -z "$PUBLISH" ]; then
        kill -USR1 "${SIGNAL_PIDS[@]}"
        return
    fi
    local code
    code=$(sed "1s/^{\"time\":[0-9]*,\"seq\":[0-9]*/{\"time\":$(date +%s%3N),\"seq\":$1/" "$PUBLISH" |
        ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
            --data-binary @- "http://127.0.0.1:$ADMIN_PORT/publish" || true)
    [ "$code" = 202 ] || echo "run-local: broadcast $1: POST /publish answered '$code'" >&2
}
for b in $(seq 1 "$BCASTS"); do
    if [ "$UPGRADE" = 1 ] && [ "$b" = 2 ]; then
        live_upgrade
        sample
    fi
    m0=$(status messages)
    s0=$(cpu_ns "${SERVER_PIDS[@]}")
    c0=$(cpu_ns $WORKERS)
    u0=$(busy_ns)
    if [ "$STOP_BENCH" = 1 ]; then
        # Nothing reads while the servers write: the pass lands in the socket buffers.
        p0=$(passes_logged)
        kill -STOP "$BENCH_PID" $WORKERS
        trigger "$b"
        deadline=$((SECONDS + BCAST_MAX))
        until [ "$(passes_logged)" -ge $((p0 + SERVERS)) ]; do
            [ $SECONDS -lt $deadline ] || { echo "run-local: broadcast $b: no pass logged after ${BCAST_MAX}s"; break; }
            sleep 0.02
        done
        sm=$(cpu_ns "${SERVER_PIDS[@]}")
        SEND_CPU=$((SEND_CPU + sm - s0))
        kill -CONT "$BENCH_PID" $WORKERS
        echo "run-local: broadcast $b: send side with the bench stopped: server CPU $(((sm - s0) / 1000000)) ms"
    else
        trigger "$b"
    fi
    deadline=$((SECONDS + BCAST_MAX))
    while st_read && [ "${ST[messages]}" -lt $((m0 + ACTIVE)) ]; do
        [ $SECONDS -lt $deadline ] || { echo "run-local: broadcast $b incomplete after ${BCAST_MAX}s (the summary will say FAIL)"; break; }
        sleep 0.02
    done
    s1=$(cpu_ns "${SERVER_PIDS[@]}")
    c1=$(cpu_ns $WORKERS)
    u1=$(busy_ns)
    m1=$(status messages)
    SRV_CPU=$((SRV_CPU + s1 - s0))
    BENCH_CPU=$((BENCH_CPU + c1 - c0))
    BUSY=$((BUSY + u1 - u0))
    GOT=$((GOT + m1 - m0))
    sample
    echo "run-local: broadcast $b: $((m1 - m0)) received (CPU ms: server $(((s1 - s0) / 1000000)), bench $(((c1 - c0) / 1000000)), machine busy $(((u1 - u0) / 1000000)))"
    sleep "$GAP"
done

[ -z "$PUBLISH" ] || ip netns exec "$NS" curl -s --max-time 10 "http://127.0.0.1:$ADMIN_PORT/metrics" \
    >"$OUT/metrics.prom" || true
kill -INT "$BENCH_PID"
# Closing the sockets takes time at scale: 140 workers x 15,000 at 2.1M.
deadline=$((SECONDS + 60 + CONNS / 20000))
while kill -0 "$BENCH_TPID" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "the bench did not stop"
    sleep 0.1
done
BENCH_PID=""
BENCH_RC=0
wait "$BENCH_TPID" 2>/dev/null || BENCH_RC=$? # 1: the bench's own FAIL (missing, errors)
BENCH_TPID=""
[ -s "$OUT/report.json" ] || die "no report.json: $(tail -3 "$OUT/bench.out")"
sed -n '/ final -/,$p' "$OUT/bench.out" # the bench's own final report and verdict
echo "-- run-local summary ------------------------------------------------------"

SUMMARY_RC=0
WSP_BENCH_DIR="$ROOT/bench" WSP_RUN_SERVER="$SERVER" WSP_RUN_BENCH="$BENCH" \
WSP_UPGRADE_MS="$UPGRADE_MS" WSP_UPGRADE_LOG="$OUT/upgrade.log" \
python3 - "$OUT" "$CONNS" "$SERVERS" "$THREADS" "$BCASTS" "$RSS0" "$RSS1" "$SLAB0" "$SLAB1" \
    "$SRV_CPU" "$BENCH_CPU" "$BUSY" "$GOT" "$EHASH" "$RAMP_SRV_CPU" "$RAMP_BENCH_CPU" \
    "${STOPPED:-}" "$ANON0" "$ANON1" "$SEND_CPU" "$STOP_BENCH" "$SERVER_CMD" "$BENCH_RC" \
    "$WARMUP" "$SETTLE" "$PUBLISH" \
    <<'EOF' | tee "$OUT/summary.txt" || SUMMARY_RC=$?
import json, os, statistics, sys
sys.path.insert(0, os.environ["WSP_BENCH_DIR"])
import provenance
(out, conns, servers, threads, bcasts, rss0, rss1, slab0, slab1, srv_cpu, bench_cpu, busy, got,
 ehash, ramp_srv, ramp_bench, stopped, anon0, anon1, send_cpu, stop_bench, server_cmd,
 bench_rc, warmup, settle, publish) = sys.argv[1:]
r = json.load(open(f"{out}/report.json"))
active = r["active"] or 1
got = int(got) or 1
lat = r["latency_ms"]
bc = [b for b in r["broadcasts"] if b["got"]]
comp = statistics.median([b["last_ms"] for b in bc]) if bc else 0
each = ", ".join("%.1f" % b["last_ms"] for b in bc)
other = (int(busy) - int(srv_cpu) - int(bench_cpu)) / 1e9
e = r["errors"]
what = f"server: {server_cmd}" if server_cmd else f"{servers} server process(es) x {threads} thread(s)"
print(f"connections          {r['active']} of {conns}, {r['retries']} retries ({what}, "
      f"ehash {'4M' if ehash == '1' else 'default'})")
if stopped:
    print(f"ramp stopped         {stopped}")
print(f"setup                {r['ramp']['seconds']:.2f} s, {r['ramp']['rate_per_s']:.0f} connections/s; "
      f"CPU per connection: server {int(ramp_srv) / 1e3 / active:.1f} us, bench {int(ramp_bench) / 1e3 / active:.1f} us")
# VmRSS also grows by the shared-library pages the first handshake touches (libcrypto's
# SHA-1 and its tables: ~3 MB once per process), which are not per-connection memory.
print(f"server user space    {(int(anon1) - int(anon0)) * 1024 / active:.0f} B per connection (RssAnon delta; "
      f"VmRSS delta {(int(rss1) - int(rss0)) * 1024 / active:.0f} B includes library pages faulted in once)")
print(f"kernel               {(int(slab1) - int(slab0)) * 1024 / active:.0f} B per connection pair (Slab delta)")
print(f"broadcast completion {comp:.1f} ms median of {len(bc)} (last receive - message time); "
      f"all: {each}")
print(f"latency              p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, p99.9 {lat['p999']:.1f} ms, max {lat['max']:.1f} ms")
print(f"server CPU           {int(srv_cpu) / 1e3 / got:.2f} us per delivered message")
if stop_bench == "1":
    print(f"send side            {int(send_cpu) / 1e3 / got:.2f} us of server CPU per message, trigger until every "
          f"pass was logged, the bench stopped (latency and completion include the stop)")
print(f"bench CPU            {int(bench_cpu) / 1e3 / got:.2f} us per received message")
print(f"other CPU            {other:.2f} s busy outside server and bench during the broadcasts "
      f"(softirq off task, this script, the rest of the machine)")
print(f"messages             {r['messages']['count']} received, {r['missing']} missing, {r['duplicates']} duplicates")
print(f"delivery             expected {r['expected']} = {r['active']} connections x {bcasts} broadcasts? "
      f"{'yes' if r['expected'] == r['active'] * int(bcasts) else 'NO'}; delivered {r['delivered']}, "
      f"missing {r['missing']}" + (f" (seqs {', '.join(map(str, r['missing_seqs']))})" if r['missing'] else "")
      + f", duplicates {r['duplicates']}, unexpected {r['unexpected']}")
print(f"errors               {e['total']}" + ("" if not e["total"] else
      " (" + ", ".join(f"{k} {v}" for k, v in e.items() if isinstance(v, int) and v and k != "total") + ")"))
closed = sum(int(v) for v in (e.get("closed_codes") or {}).values())
upgrade = None
if os.environ.get("WSP_UPGRADE_MS"):
    import re
    log = open(os.environ["WSP_UPGRADE_LOG"]).read()
    ho = [int(x) for x in re.findall(r"event=upgrade_handed_over .*?handover_ms=(\d+)", log)]
    upgrade = {"total_ms": int(os.environ["WSP_UPGRADE_MS"]),
               "processes": len(re.findall(r"event=upgrade_complete", log)),
               "conns_moved": sum(int(x) for x in re.findall(r"event=upgrade_complete .*?conns=(\d+)", log)),
               "handover_ms_each": ho, "closing": sum(int(x) for x in re.findall(
                   r"event=handover_sent .*?closing=(\d+)", log)),
               "failed": len(re.findall(r"event=upgrade_failed", log))}
    print(f"live upgrade         {upgrade['total_ms']} ms SIGUSR2 to the last takeover, "
          f"{upgrade['processes']} process(es), {upgrade['conns_moved']} connections moved; "
          f"per process READY->END (broadcasts paused) max {max(ho) if ho else 0} ms; "
          f"{closed} closed by the server, {r['missing']} missing, {r['duplicates']} duplicates")
nst = open(f"{out}/nstat.txt").read().strip() if os.path.exists(f"{out}/nstat.txt") else ""
print(f"kernel counters      {nst or 'n/a'} (after the ramp)")
# --publish: what the server says it wrote (every worker's counters, one /metrics).
metrics = None
if publish and os.path.exists(f"{out}/metrics.prom"):
    metrics = {}
    for line in open(f"{out}/metrics.prom"):
        if line.startswith("wspush_") and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            metrics[name] = metrics.get(name, 0) + float(line.rsplit(" ", 1)[1])
    keep = ("wspush_messages_written_total", "wspush_bytes_written_total",
            "wspush_deflate_connections_total", "wspush_deflate_broadcasts_total",
            "wspush_deflate_input_bytes_total", "wspush_deflate_output_bytes_total",
            "wspush_deflate_compress_seconds_total", "wspush_deflate_messages_written_total",
            "wspush_broadcast_passes_total")
    metrics = {k: metrics.get(k, 0) for k in keep}
    w = metrics["wspush_messages_written_total"] or 1
    print(f"server wrote         {metrics['wspush_bytes_written_total'] / w:.1f} bytes per message "
          f"({metrics['wspush_deflate_messages_written_total']:.0f} of {w:.0f} compressed); "
          f"payload {os.path.getsize(publish)} bytes ({publish})")
print(f"files                {out}/report.json, bench.out, summary.txt, summary.json, samples.tsv, server-*.log")
# The verdict: the bench's own (it knew how many broadcasts to expect), and the arithmetic.
why = []
if bench_rc != "0":
    why.append(f"wspush-bench exited {bench_rc}")
if r["missing"] or r["duplicates"] or r["unexpected"] or e["total"]:
    seqs = f" (seqs {', '.join(map(str, r['missing_seqs']))})" if r["missing"] else ""
    why.append(f"{r['missing']} missing{seqs}, {r['duplicates']} duplicates, {r['unexpected']} "
               f"unexpected, {e['total']} errors")
if not (r["delivered"] == r["expected"] == r["active"] * int(bcasts)) or r["active"] == 0:
    why.append(f"delivered {r['delivered']}, expected {r['expected']}, connections x broadcasts "
               f"{r['active'] * int(bcasts)}")
ok = not why
print(f"result               " + (f"ok: every connection got all {bcasts} broadcasts once" if ok else
                                  "FAIL: " + "; ".join(why)))
# The same figures for scripts (bench/compare.sh, bench/shard-scaling.sh, bench/uring-compare.sh).
json.dump({"server_cmd": server_cmd or None, "conns": int(conns), "active": r["active"],
           "servers": int(servers), "threads": int(threads), "broadcasts": int(bcasts),
           "retries": r["retries"],
           "setup_s": r["ramp"]["seconds"], "setup_rate_per_s": r["ramp"]["rate_per_s"],
           "ramp_server_cpu_us_per_conn": int(ramp_srv) / 1e3 / active,
           "ramp_bench_cpu_us_per_conn": int(ramp_bench) / 1e3 / active,
           # --jwt-alg: the tokens were minted before the ramp, in the bench's parent
           "bench_mint_s": (r.get("auth") or {}).get("mint_s", 0),
           "rss_b_per_conn": (int(rss1) - int(rss0)) * 1024 / active,
           "anon_b_per_conn": (int(anon1) - int(anon0)) * 1024 / active,
           "slab_b_per_pair": (int(slab1) - int(slab0)) * 1024 / active,
           "completion_ms": [b["last_ms"] for b in bc], "completion_median_ms": comp,
           "latency_ms": {k: lat[k] for k in ("p50", "p99", "p999", "max")},
           "server_cpu_us_per_msg": int(srv_cpu) / 1e3 / got, "bench_cpu_us_per_msg": int(bench_cpu) / 1e3 / got,
           "send_side_cpu_us_per_msg": int(send_cpu) / 1e3 / got if stop_bench == "1" else None,
           "other_cpu_s": other, "messages": r["messages"]["count"], "expected": r["expected"],
           "delivered": r["delivered"], "missing": r["missing"], "missing_seqs": r["missing_seqs"],
           "duplicates": r["duplicates"], "unexpected": r["unexpected"], "errors": e["total"],
           "bench_exit": int(bench_rc), "ok": ok, "fail": "; ".join(why) or None,
           "closed_by_server": closed, "upgrade": upgrade,
           "provenance": provenance.provenance(os.environ.get("WSP_RUN_CMD"),
                                               [os.environ.get("WSP_RUN_SERVER"),
                                                os.environ.get("WSP_RUN_BENCH")]),
           "ramp_server_cpu_us_per_conn": int(ramp_srv) / 1e3 / active,
           "ramp_bench_cpu_us_per_conn": int(ramp_bench) / 1e3 / active,
           "warmup": int(warmup), "settle_s": int(settle),
           "kernel_counters": {k: int(v) for k, v in (x.split("=", 1) for x in nst.split())
                               if v.isdigit()},
           "tls": r["tls"] if r["config"].get("tls") else None,
           "publish": publish or None, "server_metrics": metrics, "deflate": r.get("deflate")},
          open(f"{out}/summary.json", "w"), indent=1)
sys.exit(0 if ok else 1)
EOF
if [ "$PLOT" = 1 ]; then
    "$ROOT/bench/plot.sh" "$OUT/report.json" "$OUT"
fi
if [ "$SUMMARY_RC" != 0 ]; then
    echo "run-local: FAIL: $(sed -n 's/^result *FAIL: //p' "$OUT/summary.txt") ($OUT)" >&2
    exit 1
fi
