#!/usr/bin/python3
"""The live upgrade (SIGUSR2, issue #20) with wss:// connections (issue #18), against the real
binary (the helpers are test_upgrade.py's):

  tls       wss:// (issue #18, --tls-cert): a new process started without --tls-cert is
            refused at READY (logged) and the old one keeps serving; then TLS 1.3 and 1.2
            clients, channel clients, clients with ciphertext queued (--sndbuf 4096, not
            reading), one with half a record sent, one connected but not yet in its TLS
            handshake and openssl s_client after a KeyUpdate all move to the new process
            over their same TLS sessions: none closed, every broadcast after once and intact,
            the half record completes (a ping answered), the fresh one handshakes with the
            new process, a KeyUpdate after the upgrade is answered; one stuck half-way
            through its TLS handshake is the only connection closed (after the wait)

usage: /usr/bin/python3 test_upgrade_tls.py tls PATH_TO_WSPUSH
"""
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tls"))
import wsptest as wt  # noqa: E402
from test_tls import SClient, closed_soon  # noqa: E402
from test_upgrade import install, session, upgraded  # noqa: E402


# ---- tls ----

class MemTls:
    """A TLS client over memory BIOs on a socket connected already: the test says when its
    handshake starts, and sends the records it seals itself, whole or in parts."""

    def __init__(self, sock, ctx):
        self.sock, self.buf = sock, bytearray()
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.outg, server_hostname=wt.HOST)

    def _pull(self, deadline):
        """Feeds TLS what the socket has by deadline: False on EOF or at the deadline."""
        self.sock.settimeout(max(0.01, deadline - wt.now()))
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return False
        except OSError:
            return False
        self.inc.write(data)
        return bool(data)

    def handshake(self, timeout=10):
        deadline = wt.now() + timeout
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outg.read())
                if not self._pull(deadline):
                    raise RuntimeError("TLS handshake cut off")
        self.sock.sendall(self.outg.read())

    def seal(self, data):
        """The records of data, not sent."""
        self.tls.write(data)
        return self.outg.read()

    def read_until(self, cond, timeout=10):
        deadline = wt.now() + timeout
        while not cond():
            try:
                self.buf += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            if not self._pull(deadline):
                break
        return cond()

    def upgrade(self, path="/"):
        req, key = wt.upgrade_request(path)
        self.sock.sendall(self.seal(req))
        got = self.read_until(lambda: wt.parse_head(self.buf))
        if not got:
            return False
        self.buf = bytearray(got[2])
        return got[0] == 101 and wt.check_101(got[1], key)

    def read_frame(self, timeout=10):
        got = self.read_until(lambda: wt.parse_frame(self.buf), timeout)
        if not got:
            return None
        del self.buf[:got[3]]
        return got[:3]

    def close_notify(self, timeout=10):
        """Sends close_notify; True once the server's own came back and opened."""
        deadline = wt.now() + timeout
        while True:
            try:
                self.tls.unwrap()
                return True
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outg.read())
                if not self._pull(deadline):
                    return False
            except ssl.SSLError:
                return False


def server_read_all(port, sock):
    """True once the server's end of sock has nothing unread (its rx_queue in /proc/net/tcp
    is 0): what the client sent is in the server process, not in the kernel."""
    mine = sock.getsockname()[1]

    def unread():
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                x = line.split()
                if (int(x[1].rsplit(":", 1)[1], 16) == port and
                        int(x[2].rsplit(":", 1)[1], 16) == mine and x[3] == "01"):
                    return int(x[4].split(":")[1], 16)
        return None
    return wt.poll(lambda: unread() == 0, 10)


# The real binary without --tls-cert and --tls-key: a new process that serves plain ws://.
NO_TLS = """#!/bin/sh
n=$#
while [ "$n" -gt 0 ]; do
    a=$1; shift; n=$((n - 1))
    case $a in
    --tls-cert|--tls-key) shift; n=$((n - 1)) ;;
    *) set -- "$@" "$a" ;;
    esac
done
exec {real} "$@"
"""


def texts(c, until, timeout=15):
    """Text payloads c reads up to and including until (or what came by the timeout)."""
    got = []
    while until not in got:
        f = c.read_frame(timeout)
        if f is None:
            break
        if f[1] == wt.OP_TEXT:
            got.append(f[2])
    return got


def printed(sc, needle, times, timeout=10):
    """True once s_client has printed needle `times` times (bounded by timeout)."""
    deadline = wt.now() + timeout
    while sc.out.count(needle) < times and wt.now() < deadline:
        sc.wait_for(b"\0never printed\0", min(0.2, max(0.01, deadline - wt.now())))
    return sc.out.count(needle) >= times


def is_tick(m):
    return wt.parse_time_msg(m) is not None


def tls_clients(port, ca):
    """Every kind of wss:// client the scenario moves, upgraded and reading nothing yet."""
    ctx13, ctx12 = wt.tls_ctx(ca, ssl.TLSVersion.TLSv1_3), wt.tls_ctx(ca, ssl.TLSVersion.TLSv1_2)
    cl = {"v13": [wt.TlsConn(port, ctx13) for _ in range(16)],
          "v12": [wt.TlsConn(port, ctx12) for _ in range(8)],
          "slow": [wt.TlsConn(port, ctx13, rcvbuf=4096)],
          "news": []}
    for ctx in (ctx13, ctx12):
        m = MemTls(socket.create_connection((wt.HOST, port), timeout=10), ctx)
        m.handshake()
        if not m.upgrade("/?channels=news"):
            raise RuntimeError("news client: upgrade failed")
        cl["news"].append(m)
    half = MemTls(socket.create_connection((wt.HOST, port), timeout=10), ctx13)
    half.handshake()
    if not half.upgrade("/?channels=quiet"):
        raise RuntimeError("half-record client: upgrade failed")
    cl["half"] = half
    return cl, ctx13


def tls_refused(ck, srv, exe, real, cl):
    """A SIGUSR2 whose new process would not serve TLS fails at READY; the old one serves."""
    with open(real, "rb") as f:
        binary = f.read()
    install(exe, NO_TLS.format(real=real).encode())
    srv.signal(signal.SIGUSR2)
    ck.check("an upgrade to a process without --tls-cert is refused, logged with why",
             srv.wait_log("event=upgrade_failed", "reason=new_process_without_tls", timeout=20))
    install(exe, binary)
    srv.publish("still-old")
    fast = cl["v13"] + cl["v12"]
    ck.check("the old process still serves every TLS client",
             srv.alive() and all(texts(c, b"still-old") == [b"still-old"] for c in fast))


def tls_after(ck, srv, new, cl, ku, half_rec, fresh, stuck):
    """After the handover: every client on its same session, exactly once."""
    fresh.handshake()  # first: its handshake timeout runs since it connected
    ck.check("the client that had not begun its TLS handshake makes it with the new process",
             fresh.upgrade("/"))
    cl["half"].sock.sendall(half_rec)
    ck.check("the half record completed with the new process: its ping is answered",
             cl["half"].read_frame() == (True, wt.OP_PONG, b"half"))
    ck.check("close_notify to the new process is answered with its own, under the moved keys",
             cl["half"].close_notify())
    ck.check("the client stuck in its TLS handshake is closed after the wait",
             closed_soon(stuck, 10))
    sent = re.findall(r"event=handover_sent conns=(\d+) closing=(\d+)", srv.log())
    ck.check("the old process closed only that one, and handed over the rest",
             sum(int(c) for _, c in sent) == 1 and sum(int(n) for n, _ in sent) == 30,
             str(sent))
    os.kill(new, signal.SIGUSR1)
    tick = fresh.read_frame()  # the tick is out before the marker is published: in that order
    ck.check("the fresh client gets the tick from the new process",
             tick and tick[1] == wt.OP_TEXT and is_tick(tick[2]))
    srv.publish("marker")
    big = [f"big-{k}-".encode() * 600 for k in range(8)]
    for kind in ("v13", "v12", "slow"):
        got = [texts(c, b"marker") for c in cl[kind]]
        if kind == "slow":
            want = ["tick", b"still-old"] + big + ["tick", b"marker"]
        else:
            want = big + ["tick", b"marker"]
        norm = [["tick" if is_tick(m) else m for m in g] for g in got]
        short = [[m if m == "tick" or len(m) < 20 else m[:6] + b"*%d" % len(m) for m in g]
                 for g in norm if g != want]
        ck.check(f"{kind}: every broadcast once, in order, intact, over the same session",
                 all(g == want for g in norm), f"{len(short)} differ, e.g. {short[:2]}")
    ck.check("and the marker after it", texts(fresh, b"marker") == [b"marker"])
    srv.publish("news-after", channel="news")
    ck.check("channel clients (TLS 1.3, 1.2) got the channel's message next",
             all(texts(c, b"news-after") == [b"news-after"] for c in cl["news"]))
    ck.check("s_client got the broadcasts", ku.wait_for(b"marker"))
    ku.type("K\n")  # KeyUpdate, update_requested, to the new process
    ck.check("s_client sent a KeyUpdate to the new process", printed(ku, b"KEYUPDATE", 2))
    for i in range(2):
        srv.publish(f"after-ku-{i}")
        ck.check(f"received after that KeyUpdate ({i})", ku.wait_for(f"after-ku-{i}".encode()))
    ck.check("the new process closed nothing for TLS",
             srv.metric('wspush_connections_closed_total{reason="tls"}') == 0 and
             srv.metric('wspush_connections_closed_total{reason="error"}') == 0)


def tls(ck, binary):
    certs = wt.make_certs()
    ca = os.path.join(certs, "ca.pem")
    with tempfile.TemporaryDirectory(prefix="wspush-upgrade-") as tmp:
        exe, real = os.path.join(tmp, "wspush"), os.path.join(tmp, "wspush.real")
        shutil.copy(binary, exe)
        shutil.copy(binary, real)
        flags = ("--tls-cert", os.path.join(certs, "ec.pem"), "--tls-key",
                 os.path.join(certs, "ec.key"), "--sndbuf", "4096")
        with session(ck, exe, *flags) as (srv, _):
            cl, ctx13 = tls_clients(srv.port, ca)
            ku = SClient(srv.port, ca, "-tls1_3")
            try:
                tls_moves(ck, srv, exe, real, cl, ctx13, ku)
            finally:
                ku.close()
                for c in cl["v13"] + cl["v12"] + cl["slow"]:
                    c.close()
                for c in cl["news"] + [cl["half"]]:
                    c.sock.close()


def tls_moves(ck, srv, exe, real, cl, ctx13, ku):
    ck.check("s_client TLS 1.3: upgraded", ku.upgrade(), ku.out[-300:])
    srv.signal(signal.SIGUSR1)  # every client is OPEN once this arrived
    fast = cl["v13"] + cl["v12"]
    ck.check("TLS 1.3 and 1.2 clients got the first tick",
             all((f := c.read_frame()) and is_tick(f[2]) for c in fast))
    ku.type("K\n")  # a KeyUpdate before the upgrade: rotated secrets must move
    ck.check("s_client KeyUpdate before the upgrade", printed(ku, b"KEYUPDATE", 1))
    tls_refused(ck, srv, exe, real, cl)
    srv.publish("news-before", channel="news")
    ck.check("channel clients got theirs", all(
        texts(c, b"news-before") == [b"news-before"] for c in cl["news"]))
    for k in range(8):  # 29 KB nobody reads yet: with --sndbuf 4096 most stays queued
        srv.publish(f"big-{k}-" * 600)
    ck.check("s_client got them before the upgrade", ku.wait_for(b"big-7-"))
    rec = cl["half"].seal(wt.frame(wt.OP_PING, b"half"))
    cl["half"].sock.sendall(rec[:len(rec) // 2])
    stuck = socket.create_connection((wt.HOST, srv.port), timeout=10)
    hello = wt.client_hello()
    stuck.sendall(hello[:len(hello) // 2])
    accepted = srv.metric("wspush_connections_accepted_total")
    fresh = MemTls(socket.create_connection((wt.HOST, srv.port), timeout=10), ctx13)
    ck.check("the server holds the half record, the half ClientHello and the fresh socket",
             server_read_all(srv.port, cl["half"].sock) and server_read_all(srv.port, stuck)
             and wt.poll(lambda: srv.metric("wspush_connections_accepted_total") > accepted,
                         10))
    srv.signal(signal.SIGUSR2)
    new = upgraded(ck, srv)
    try:
        tls_after(ck, srv, new, cl, ku, rec[len(rec) // 2:], fresh, stuck)
    finally:
        fresh.sock.close()
        stuck.close()


if __name__ == "__main__":
    sys.exit(wt.main({"tls": tls}, timeout=120))
