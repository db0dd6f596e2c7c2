#!/bin/sh
# Stages the root filesystem of the wspush image (deploy/Containerfile builds FROM scratch and
# copies it in): the stripped wspush binary, the entrypoint compiled here, exactly the shared
# libraries ldd says the two need plus the dynamic loader, and a minimal /etc for the non-root
# user. No package manager, no shell. Writes DIR/rootfs and DIR/MANIFEST (path, bytes).
#
#   deploy/stage-rootfs.sh WSPUSH_BINARY OUT_DIR
set -eu

[ $# -eq 2 ] || { echo "usage: $0 WSPUSH_BINARY OUT_DIR" >&2; exit 2; }
bin=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
UID_WSPUSH=10001 # not 1000: no collision with the first human user on a host bind mount

[ -x "$bin" ] || { echo "$0: $bin is not an executable" >&2; exit 1; }
case $out in /|"") echo "$0: refusing OUT_DIR '$out'" >&2; exit 1 ;; esac
rm -rf "$out/rootfs"
root=$out/rootfs
mkdir -p "$root/usr/bin" "$root/etc"

# The server, stripped: its symbols help no one inside the image (the build tree keeps them).
install -m 0755 -s "$bin" "$root/usr/bin/wspush"
# The entrypoint links the same libc the image already carries: about 15 KiB instead of the
# ~800 KiB of a static glibc binary.
$CC -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -s -o "$root/usr/bin/wspush-entry" \
    "$here/wspush-entry.c"

# Every library either binary needs, at the path ldd resolved it to, and the loader at the
# path written into the binaries (PT_INTERP). cp -L: the file, not the soname symlink.
libs=$(ldd "$root/usr/bin/wspush" "$root/usr/bin/wspush-entry" |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "$0: ldd found no libraries" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

# The non-root user the image runs as, and name lookups for --redis redis://redis:6379 (the
# files and dns sources are built into glibc 2.36's libc.so.6: no libnss_* to copy).
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/:/nonexistent
wspush:x:$UID_WSPUSH:$UID_WSPUSH:wspush:/:/nonexistent
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
wspush:x:$UID_WSPUSH:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"

(cd "$root" && find . -type f -printf '%p %s\n' | sed 's|^\./|/|' | sort) >"$out/MANIFEST"
echo "staged $(wc -l <"$out/MANIFEST") files, $(du -sk "$root" | cut -f1) KiB, in $root"
