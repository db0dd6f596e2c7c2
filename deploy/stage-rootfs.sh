#!/bin/sh
# Stages the root filesystem of a FROM-scratch image (deploy/Containerfile copies it in): the
# given binaries, stripped, in /usr/bin; exactly the shared libraries ldd says they need, plus
# the dynamic loader; a minimal /etc for one non-root user. No package manager, no shell.
# Writes OUT_DIR/rootfs and OUT_DIR/MANIFEST (path, bytes).
#
#   deploy/stage-rootfs.sh [--user NAME:UID] OUT_DIR BINARY...
#
# `make image` stages wspush and wspush-entry (user wspush:10001); `make redis-image` stages
# Debian's redis-server (user redis:10002) for hosts that cannot pull a Redis image.
set -eu

user=wspush
uid=10001 # not 1000: no collision with the first human user on a host bind mount
if [ "${1:-}" = --user ]; then
    user=${2%%:*}
    uid=${2##*:}
    shift 2
fi
[ $# -ge 2 ] || { echo "usage: $0 [--user NAME:UID] OUT_DIR BINARY..." >&2; exit 2; }
out=$1
shift
case $out in /|"") echo "$0: refusing OUT_DIR '$out'" >&2; exit 1 ;; esac
case $uid in *[!0-9]*|"") echo "$0: bad uid '$uid'" >&2; exit 1 ;; esac

rm -rf "$out/rootfs"
root=$out/rootfs
mkdir -p "$root/usr/bin" "$root/etc"

# The binaries, stripped: symbols help no one inside the image (the build tree keeps them).
for bin in "$@"; do
    [ -x "$bin" ] || { echo "$0: $bin is not an executable" >&2; exit 1; }
    install -m 0755 -s "$bin" "$root/usr/bin/$(basename "$bin")"
done

# Every library any binary needs, at the path ldd resolved it to, and the loader at the path
# written into the binaries (PT_INTERP). cp -L: the file, not the soname symlink.
libs=$(cd "$root/usr/bin" && ldd ./* |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "$0: ldd found no libraries" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

# The non-root user the image runs as, and name lookups (--redis redis://redis:6379): the
# files and dns sources are built into glibc 2.36's libc.so.6, no libnss_* to copy.
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/:/nonexistent
$user:x:$uid:$uid:$user:/:/nonexistent
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
$user:x:$uid:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"

(cd "$root" && find . -type f -printf '%p %s\n' | sed 's|^\./|/|' | sort) >"$out/MANIFEST"
echo "staged $(wc -l <"$out/MANIFEST") files, $(du -sk "$root" | cut -f1) KiB, in $root"
