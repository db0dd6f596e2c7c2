#!/bin/sh
# deploy/systemd/wspush.service passes `systemd-analyze verify` with no output at all (verify
# exits 0 even for unknown keys and unparsable values, it only prints them) and keeps its
# offline security exposure at or below 2.0 ("OK"; it is 1.4 when this was written).
#
# verify checks that ExecStart's binary exists. So it runs against a throwaway root holding a
# copy of the unit, the distribution's own units (for the default dependencies such as
# sysinit.target), the wspush binary at ExecStart's path and the host's copy of any other
# Exec*= program (ExecReload's kill); nothing is installed on the host.
#
#   check_systemd.sh UNIT_FILE WSPUSH_BINARY        a missing systemd-analyze fails the test
set -eu
unit=$1
bin=$2
. "$(dirname "$0")/lib.sh"
need systemd-analyze systemd
name=$(basename "$unit")

root=$tmp
exec_path=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit" | head -n 1)
case $exec_path in /*) ;; *) fail "ExecStart is not an absolute path: '$exec_path'" ;; esac
mkdir -p "$root$(dirname "$exec_path")" "$root/etc/systemd/system" "$root/usr/lib/systemd"
install -m 0755 "$bin" "$root$exec_path"
for other in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' "$unit" | sort -u); do
    [ "$other" = "$exec_path" ] && continue
    [ -x "$other" ] || fail "$other (named by an Exec*= line) is not on this host"
    mkdir -p "$root$(dirname "$other")"
    cp "$(readlink -f "$other")" "$root$other"
done
cp "$unit" "$root/etc/systemd/system/$name"
cp -a "$(readlink -f /lib/systemd/system)" "$root/usr/lib/systemd/system"

status=0
out=$(systemd-analyze verify --root="$root" --man=no "$name" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$out" ]; then
    fail "systemd-analyze verify $name (exit $status):
$out"
fi
echo "ok: systemd-analyze verify $name: no findings"

# --threshold compares the exposure times ten: 20 = 2.0.
status=0
out=$(systemd-analyze security --offline=yes --threshold=20 --no-pager "$unit" 2>&1) || status=$?
level=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ "$status" -ne 0 ] || [ -z "$level" ]; then
    fail "systemd-analyze security --offline: exposure '${level:-?}' over 2.0 (exit $status):
$(echo "$out" | grep -v '^✓' || true)"
fi
echo "ok: systemd-analyze security --offline: exposure $level"
