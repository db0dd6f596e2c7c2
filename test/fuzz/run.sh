#!/bin/sh
# Builds one libFuzzer target with clang and runs it for a bounded time.
#
# usage: test/fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#   TARGET   upgrade | frame | ipc | utf8 | channels | admin | pmd | inflate | jwt | tlsrec | tlshs
#            | auth | framed | tlsconn | handover
#   SECONDS  -max_total_time; 0 only replays the seeds (-runs=0)
# env: WSP_FUZZ_BUILD  build directory (default: <repo>/build/fuzz)
#
# The checked-in seeds (test/fuzz/corpus/TARGET) are only read; inputs that find new coverage
# go to $WSP_FUZZ_BUILD/corpus/TARGET and survive between runs. A crash, leak, timeout or
# out-of-memory leaves the input in $WSP_FUZZ_BUILD/artifacts/TARGET/ and exits non-zero:
# reproduce with `$WSP_FUZZ_BUILD/test/fuzz/fuzz_TARGET FILE`, then add it to
# test/fuzz/corpus/TARGET/ as crash-<what> once the fix is in.
set -eu

usage() { echo "usage: $0 upgrade|frame|ipc|utf8|channels|admin|pmd|inflate|jwt|tlsrec|tlshs|auth|framed|tlsconn|handover SECONDS [libFuzzer flags...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
target=$1
secs=$2
shift 2
case $target in
upgrade) max_len=10240 ;; # past the 8 KiB header cap
frame) max_len=8192 ;;    # past the 4 KiB message cap
ipc) max_len=4096 ;;      # lengths up to 64 KiB are reached through the header alone
utf8) max_len=1024 ;;
channels) max_len=1024 ;; # 8 names of 64 bytes fit
admin) max_len=70000 ;;   # past the 64 KiB body cap with a head: see below
pmd) max_len=4096 ;;      # header lines; the parser is linear, longer adds nothing
inflate) max_len=9000 ;;  # a 4 KiB message stored, and bounds up to 8 KiB
jwt) max_len=5120 ;;      # past the 4 KiB token cap
tlsrec) max_len=40000 ;;  # two full records and a bit, sealed or raw
tlshs) max_len=20000 ;;   # past the longest record (18,437 bytes) the driver accepts
auth) max_len=10240 ;;    # a request past the 8 KiB header cap, a token past 4 KiB
framed) max_len=2048 ;;   # queries of 8 x 64-byte names; payloads: the encoder is linear
tlsconn) max_len=40000 ;; # as tlsrec: two full records and a bit, in any split
handover) max_len=200000 ;; # one datagram (WSP_HO_DGRAM_MAX, 192 KiB) and a bit
*) usage ;;
esac
# admin: 70,000 bytes hold a head and a body over the 64 KiB cap (413 mid-body, chunked). Over
# loopback (one TCP connection per input) 60 s runs with -len_control=0 made 395 exec/s at
# 70,000 and 419 at 12,288 (just past the 8 KiB head cap), and the longer inputs reached a few
# more edges; in memory (httpd's transport seam) it makes 3,000-4,000 a second here.
case $secs in '' | *[!0-9]*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${WSP_FUZZ_BUILD:-$root/build/fuzz}

if ! grep -q 'add_subdirectory(fuzz)' "$root/test/CMakeLists.txt"; then
    echo "$0: test/CMakeLists.txt does not add_subdirectory(fuzz) yet" >&2
    exit 1
fi
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DWSP_FUZZ=ON -DWSP_SANITIZER= \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSP_WERROR=ON >/dev/null
cmake --build "$build" --target "fuzz_$target" -j 2 >/dev/null

bin=$build/test/fuzz/fuzz_$target
seeds=$here/corpus/$target
work=$build/corpus/$target
art=$build/artifacts/$target
mkdir -p "$work" "$art"
set -- -max_len=$max_len -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" "$@"
[ -f "$here/$target.dict" ] && set -- -dict="$here/$target.dict" "$@"
if [ "$secs" -eq 0 ]; then
    set -- -runs=0 "$@"
else
    set -- -max_total_time="$secs" "$@"
fi
echo "$0: $bin $* $work $seeds" >&2
exec "$bin" "$@" "$work" "$seeds"
