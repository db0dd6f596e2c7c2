#!/usr/bin/env bash
# Builds the three peer push servers that bench/compare.sh measures against wspush, from
# Debian's packages and the npm registry only:
#   node   ws from npm, exactly the version in node/package-lock.json (npm ci)
#   netty  Debian's libnetty-java, compiled with javac against /usr/share/java
#   go     Debian's golang-go and gorilla/websocket, GOPATH mode (GO111MODULE=off)
# Installs the Debian packages that are missing (apt-get update only then, as `make deps`
# does). Everything built goes to build/peers/, with VERSIONS.txt naming every version.
#   bench/peers/build.sh [node|netty|go ...]   (default: all three)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$ROOT/bench/peers
OUT=$ROOT/build/peers
WHICH=("$@")
[ ${#WHICH[@]} -gt 0 ] || WHICH=(node netty go)
for w in "${WHICH[@]}"; do
    case $w in node | netty | go) ;; *) echo "usage: bench/peers/build.sh [node|netty|go ...]" >&2; exit 2 ;; esac
done
wants() { local w; for w in "${WHICH[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

# Debian packages by name, checked with dpkg first. node and javac count as present when
# the command exists (this box's nodejs comes from another repository and bundles npm;
# Debian's npm package would conflict with it).
missing=()
need_deb() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || missing+=("$1")
}
if wants node && ! { command -v node && command -v npm; } >/dev/null; then
    missing+=(nodejs npm)
fi
if wants netty; then
    command -v javac >/dev/null || missing+=(default-jdk-headless)
    need_deb libnetty-java
fi
if wants go; then
    need_deb golang-go
    need_deb golang-github-gorilla-websocket-dev
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "peers: installing: ${missing[*]}"
    [ "$(id -u)" = 0 ] || { echo "peers: need root to install: ${missing[*]}" >&2; exit 1; }
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

mkdir -p "$OUT"
deb_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not a Debian package"; }
VERS=$OUT/VERSIONS.txt
touch "$VERS"
set_version() { # $1 key, $2 value: one "key: value" line per key in VERSIONS.txt
    grep -v "^$1: " "$VERS" >"$VERS.tmp" || true
    echo "$1: $2" >>"$VERS.tmp"
    sort -o "$VERS" "$VERS.tmp"
    rm -f "$VERS.tmp"
}

if wants node; then
    echo "peers: node (npm ci from the lock file)"
    mkdir -p "$OUT/node"
    cp "$SRC/node/package.json" "$SRC/node/package-lock.json" "$SRC/node/server.js" "$OUT/node/"
    (cd "$OUT/node" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
    set_version node "$(node --version) (nodejs $(deb_version nodejs))"
    set_version ws "$(node -p 'require(process.argv[1]).version' "$OUT/node/node_modules/ws/package.json")"
fi

if wants netty; then
    echo "peers: netty (javac against Debian's libnetty-java)"
    # The jars the server uses; netty-transport-native-epoll only helps if its .so ships.
    CP=""
    for j in common buffer transport codec codec-http handler resolver transport-native-unix-common \
        transport-native-epoll; do
        CP=$CP${CP:+:}/usr/share/java/netty-$j.jar
    done
    rm -rf "$OUT/netty/classes"
    mkdir -p "$OUT/netty/classes"
    # sun.misc.Signal (module jdk.unsupported) is Java's only way to catch SIGUSR1;
    # -XDignore.symbol.file silences javac's "internal proprietary API" warning for it.
    javac -XDignore.symbol.file -d "$OUT/netty/classes" -cp "$CP" "$SRC/netty/PushServer.java"
    echo "$CP" >"$OUT/netty/classpath"
    jre=$(dpkg -S "$(readlink -f "$(command -v java)")" 2>/dev/null | cut -d: -f1 || true)
    set_version java "$(java -version 2>&1 | head -1) (${jre:-?} $(deb_version "${jre:-none}"))"
    set_version netty "$(deb_version libnetty-java) (libnetty-java)"
    if unzip -l /usr/share/java/netty-transport-native-epoll.jar 2>/dev/null | grep -q '\.so$'; then
        set_version netty-epoll-native "shipped"
    else
        set_version netty-epoll-native "not shipped by Debian: the server runs on NIO"
    fi
fi

if wants go; then
    echo "peers: go (GOPATH mode against Debian's gorilla/websocket)"
    mkdir -p "$OUT/go"
    (cd "$SRC/go/src/wsppeer" &&
        GO111MODULE=off GOPATH="$SRC/go:/usr/share/gocode" GOCACHE="$OUT/go/cache" GOFLAGS="" \
            go build -o "$OUT/go/wsppeer" .)
    set_version go "$(go version | awk '{ print $3 }') ($(deb_version golang-go))"
    set_version gorilla-websocket "$(deb_version golang-github-gorilla-websocket-dev)"
fi
set_version kernel "$(uname -r)"
echo "peers: built in $OUT"
cat "$VERS"
