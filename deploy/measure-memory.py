#!/usr/bin/env python3
"""Per-connection memory of a wspush server, for capacity planning (docs/TUNING.md).

Starts wspush on 127.0.0.1, opens N idle WebSocket connections from this process (plain
sockets, no reads after the upgrade), and reports per connection:

  rss_B       server VmRSS delta / N (user space; MEASURING.md's method), which includes
              one-off growth (allocator extents, libuv's fd-indexed watcher array)
  rss_slope_B VmRSS growth from N/3 to N connections / (2N/3): the marginal cost of one
              more connection, the figure to multiply for capacity planning
  slab_B      /proc/meminfo Slab delta / N: kernel memory of one loopback *pair*
              (the server's socket and the client's), system-wide, so noisy
  queued_B    /proc/net/sockstat "TCP mem" delta / N after one broadcast that no client
              reads: what one unread message costs in tcp_mem accounting (sender's
              queue plus receiver's, as both ends are here)

Every process it starts is stopped by pid; the server also has a lifetime bound.

  deploy/measure-memory.py --server build/release/server/wspush --conns 15000 --runs 3
"""
import argparse
import base64
import os
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def tcp_mem_bytes():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                return int(line.split("mem")[1].split()[0]) * os.sysconf("SC_PAGE_SIZE")
    raise KeyError("TCP mem")


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmRSS")


def wait_listening(proc, deadline):
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], 0.2)
        if r:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            m = re.search(rb"event=listening .*?port=(\d+)", buf)
            if m:
                return int(m.group(1))
    raise RuntimeError("server did not log event=listening: " + buf.decode(errors="replace"))


def upgrade(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the upgrade")
        resp += chunk
    if not resp.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("upgrade refused: " + resp.split(b"\r\n")[0].decode())
    return s


def one_run(server, conns, threads):
    proc = subprocess.Popen(
        ["timeout", "300", server, "--threads", str(threads), "--bind", "127.0.0.1", "--port", "0",
         "--interval", "0", "--log-level", "info", "--admin", "off"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    socks = []
    try:
        port = wait_listening(proc, time.monotonic() + 10)
        # timeout(1) is the parent; the server is its only child.
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            spid = int(f.read().split()[0])
        time.sleep(0.5)
        rss0, slab0 = rss(spid), meminfo("Slab")
        third = conns // 3
        for _ in range(third):
            socks.append(upgrade(port))
        time.sleep(0.5)
        rss_third = rss(spid)
        for _ in range(conns - third):
            socks.append(upgrade(port))
        time.sleep(1.0)
        rss1, slab1, mem1 = rss(spid), meminfo("Slab"), tcp_mem_bytes()
        os.kill(spid, signal.SIGUSR1)  # one broadcast; nobody reads it
        time.sleep(1.0)
        mem2 = tcp_mem_bytes()
        return {
            "rss_B": (rss1 - rss0) / conns,
            "rss_slope_B": (rss1 - rss_third) / (conns - third),
            "slab_B": (slab1 - slab0) / conns,
            "queued_B": (mem2 - mem1) / conns,
        }
    finally:
        for s in socks:
            s.close()
        proc.terminate()  # timeout(1) passes SIGTERM on to the server
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--conns", type=int, default=15000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns + 64
    if hard < need:
        sys.exit(f"need a nofile hard limit of {need}, have {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    runs = [one_run(a.server, a.conns, a.threads) for _ in range(a.runs)]
    print(f"{a.conns} idle connections, {a.runs} runs, --threads {a.threads}: min / median / max")
    for k in ("rss_B", "rss_slope_B", "slab_B", "queued_B"):
        v = sorted(r[k] for r in runs)
        print(f"  {k:11} {v[0]:8.0f} {statistics.median(v):8.0f} {v[-1]:8.0f}")


if __name__ == "__main__":
    main()
