#!/bin/sh
# Installs Node's ws for test_deflate.py's node scenario into DIR (a directory of the build
# tree): npm ci from the committed package-lock.json, which pins ws 8.x with its integrity
# hash. It runs again only when the lock changed; npm's own cache serves a reinstall. The
# npm registry is the only network this needs.
#   test/integration/node/install.sh DIR
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
for t in node npm; do
    command -v $t >/dev/null ||
        { echo "$0: $t is missing (Debian packages nodejs, npm; \`make deps\` installs them)" >&2; exit 1; }
done
stamp=$(sha256sum "$here/package-lock.json" "$here/package.json" | sha256sum | cut -d' ' -f1)
if [ -f "$dir/node_modules/ws/package.json" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "$0: ws $(node -p 'require(process.argv[1]).version' "$dir/node_modules/ws/package.json") already in $dir"
    exit 0
fi
mkdir -p "$dir"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
(cd "$dir" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
echo "$stamp" >"$dir/.stamp"
echo "$0: ws $(node -p 'require(process.argv[1]).version' "$dir/node_modules/ws/package.json") installed in $dir"
