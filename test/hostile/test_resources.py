#!/usr/bin/python3
"""Hostile clients against the real wspush binary: what they cost the server in descriptors,
queues and memory, and peers that vanish (test_hostile.py has the protocol side), one
scenario per run.

usage: /usr/bin/python3 test_resources.py SCENARIO PATH_TO_WSPUSH

Scenarios (each bounded well under its ctest TIMEOUT; loopback, or a private veth pair for
half_open; only processes this script started are signalled, by pid):
  fd_limit        the server under prlimit --nofile=200:200: clients past --max-conns get
                  503s, CPU stays low, it accepts again once connections close
  fd_storm        as fd_limit, but the excess exhausts the server's descriptors (EMFILE) and
                  three processes connect and close flat out
  slow_consumers  100 clients that never read while 64 KiB messages published through a
                  throwaway redis-server flow: closed, RSS bounded, others keep receiving
  publish_64k     a reader with an empty queue gets a 64 KiB (the publish limit) message
  short_sends     sends the socket takes only in part, on both send paths: every message
                  once, in order, intact
  half_open       clients vanish without FIN (veth pair, link down): what reaps them, idle
                  (keepalive), with data in flight (--tcp-user-timeout, or --max-pending when
                  it is off), with --ping-interval; and what --tcp-user-timeout does to live
                  clients whose window is closed (one reading slowly, one not at all)

Prints a line per check, notes on measured behaviour and a summary; exits 1 on any failure
(a missing tool too: make test installs them all), 77 only for half_open without root (its
network namespace), which test/SKIPS lists.
"""

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as h  # noqa: E402

HOST = "127.0.0.1"


# ---- fd limit ----

def fd_phase(binary, ck, slow, storm):
    """The server under prlimit --nofile=200:200, which it sizes --max-conns to (room = the
    limit less 48 descriptors for itself, about 20 of which it uses). Fills most of its
    connections, then throws excess clients at it, samples its CPU, closes clients and wants
    new ones served.
    - fd_limit: up to 30 excess clients: 10 fill --max-conns, the rest get 503s, all within
      the descriptors.
    - fd_storm: 150 excess clients that keep their sockets (a refused one holds a server
      descriptor until our FIN or the 5 s drain), so the server runs out of descriptors and
      libuv's EMFILE path takes over, then three processes connect and close flat out."""
    h.raise_nofile()
    name = "fd_storm" if storm else "fd_limit"

    srv = h.Server(binary, prefix=["prlimit", "--nofile=200:200", "--"])
    kids = []
    try:
        m = re.search(r"room for about (\d+) connections", srv.log())
        room = int(m.group(1)) if m else 0
        ck.check(f"{name}: server sized itself to the limit", 100 <= room < 200, f"room {room}")
        # --max-conns defaults to the room less a margin kept for 503 answers.
        m = re.search(r"event=limits max_conns=(\d+)", srv.log())
        max_conns = int(m.group(1)) if m else room
        ck.check(f"{name}: --max-conns within the room", 90 <= max_conns <= room,
                 f"max_conns {max_conns}, room {room}")
        legit = []
        for _ in range(max_conns - 10):
            legit.append(h.ws_connect(HOST, srv.port, timeout=5))
        # fd_limit stays 3 descriptors clear of the limit, whatever the server uses itself.
        n_503 = 0 if storm else min(20, 200 - srv.nfds() - 10 - 3)
        n_excess = 150 if storm else 10 + n_503
        # Excess: each sends a whole request and keeps its socket.
        excess, outcomes = [], {}
        for _ in range(n_excess):
            try:
                c = h.Conn(HOST, srv.port, timeout=3)
            except OSError as e:
                outcomes[f"connect:{e.strerror}"] = outcomes.get(f"connect:{e.strerror}", 0) + 1
                continue
            req, _ = h.upgrade_request()
            c.send_all(req)
            excess.append(c)
        # One wait for all, since most get nothing at all: long enough for the ones the server
        # serves (in accept order, first) on a loaded machine, then short for the rest once
        # the room's 10 have their 101 (what waits in the backlog never answers).
        short = 3 if slow else 1.5
        end = h.now() + (short if storm else 20 if slow else 10)
        for c in excess:
            status, _ = c.read_head(max(0, end - h.now()))
            k = str(status) if status else ("closed" if c.eof else "waiting")
            outcomes[k] = outcomes.get(k, 0) + 1
            if outcomes.get("101", 0) == 10 and not storm:
                end = min(end, h.now() + short)
        if storm:
            started_r, started_w = os.pipe()
            for _ in range(3):
                pid = os.fork()
                if pid == 0:
                    try:
                        end = h.now() + 6
                        first = True
                        while h.now() < end:
                            socks = [h.connect_nb(HOST, srv.port) for _ in range(200)]
                            time.sleep(0.01)  # pacing: connects and closes flat out, not a wait
                            for s in socks:
                                if s:
                                    s.close()
                            if first:  # one round done: the parent measures from here
                                os.write(started_w, b"r")
                                first = False
                    finally:
                        os._exit(0)
                kids.append(pid)
            os.close(started_w)
            rounds = b""
            while len(rounds) < 3 and h.ready([started_r], 10):
                rounds += os.read(started_r, 3)
            os.close(started_r)
            ck.check(f"{name}: the three connecting processes are under way", len(rounds) == 3)
        fds = srv.nfds()
        ck.note(f"excess outcomes: {outcomes}; server fds {fds}/200")
        ck.check(f"{name}: excess clients refused or dropped, none served beyond room",
                 outcomes.get("101", 0) <= 10, str(outcomes))
        if not storm:
            # Refused (503) or left in the backlog until a slot frees; never served past
            # --max-conns, never dropped while descriptors remain.
            ck.check("fd_limit: the ones past --max-conns refused or waiting",
                     n_503 >= 5 and outcomes.get("101") == 10 and
                     outcomes.get("503", 0) + outcomes.get("waiting", 0) == n_503,
                     f"{outcomes}, {n_503} past --max-conns")
            ck.check("fd_limit: descriptors left over", fds < 200, f"{fds}/200")
        share = srv.cpu_share(2.0)
        ck.note(f"server CPU while the excess waits: {share * 100:.0f}% of a core")
        ck.check(f"{name}: server CPU stays low (no busy loop)", share < 0.5,
                 f"{share * 100:.0f}% of a core")
        for pid in kids:
            os.waitpid(pid, 0)
        kids.clear()
        ck.check(f"{name}: server still running", srv.alive())
        # Broadcasts still reach the connected clients.
        srv.signal(signal.SIGUSR1)
        end = h.now() + (10 if slow else 5)
        got = sum(1 for c in legit if (f := c.read_frame(max(0, end - h.now()))) and
                  h.parse_time_msg(f[2]))
        ck.check(f"{name}: connected clients still get broadcasts", got == len(legit),
                 f"{got} of {len(legit)}")
        fds = srv.nfds()
        for c in excess + legit[:50]:
            c.close()
        legit = legit[50:]
        # Closed excess clients still queued in the listen backlog get accepted (a slot each)
        # before the server sees their end: wait until it holds only the remaining clients.
        ck.check(f"{name}: the server closes its ends of the closed clients", h.poll(
            lambda: srv.nfds() <= fds - 50 and srv.backlog() == 0 and srv.held() == len(legit),
            15, 0.1), f"{srv.nfds()} fds ({fds} before), backlog {srv.backlog()}, holds "
            f"{srv.held()} for {len(legit)} clients")
        served, t0, errors = 0, h.now(), []
        end = t0 + 15
        for _ in range(20):
            if h.now() >= end:
                break
            try:
                legit.append(h.ws_connect(HOST, srv.port, timeout=max(0.1, end - h.now())))
                served += 1
            except (OSError, RuntimeError) as e:
                errors.append(str(e)[:100])
        ck.check(f"{name}: accepts again once connections close", served == 20,
                 f"{served} of 20 upgraded in {h.now() - t0:.1f} s; server fds {srv.nfds()}; "
                 f"{errors[:3]}")
        ck.note(f"after closing 50 clients and the excess: {served} of 20 new clients upgraded "
                f"in {h.now() - t0:.1f} s")
        share = srv.cpu_share(1.0)
        ck.check(f"{name}: server idle afterwards", share < 0.5, f"{share * 100:.0f}%")
        for c in legit:
            c.close()
        t0 = h.now()
        rc = srv.stop()
        ck.check(f"{name}: server exits 0", rc == 0,
                 f"exit {rc} after {h.now() - t0:.1f} s (-9: SIGTERM did not stop it)")
    finally:
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        srv.close()


def scenario_fd_limit(ck, binary):
    slow = ck.slow
    fd_phase(binary, ck, slow, storm=False)


def scenario_fd_storm(ck, binary):
    slow = ck.slow
    fd_phase(binary, ck, slow, storm=True)


# ---- slow consumers ----

# 64 KiB less the 10-byte frame header: a frame of exactly --max-pending's default, so that
# any tail left queued makes the next one cross it.
REDIS_MSG = 65536 - 10


def parse_redis_msg(p):
    """(0, seq) for the 64 KiB messages scenario_slow_consumers publishes."""
    m = re.match(rb'\{"time":0,"seq":(\d+),"pad":"x+"\}$', p)
    return (0, int(m.group(1))) if m and len(p) == REDIS_MSG else None


def slow_consumers(ck, srv, slow, publish, name, max_msgs, parse=None):
    """100 clients that never read (small SO_RCVBUF) and 10 that read everything; publish()
    makes one broadcast and returns its seq. Broadcasts until the server has closed every
    non-reader (coordinator failed= totals 100) or max_msgs."""
    fds0 = srv.nfds()
    readers = h.Readers(parse)
    for _ in range(10):
        readers.add(h.ws_connect(HOST, srv.port))
    sluggards = [h.ws_connect(HOST, srv.port, rcvbuf=1024) for _ in range(100)]
    rss0 = srv.rss_kb()
    peak, sent, t0, failed = rss0, 0, h.now(), 0
    while sent < max_msgs and failed < 100 and h.now() - t0 < 60:
        seq = publish()
        sent += 1
        readers.wait_seq(seq, timeout=10)
        peak = max(peak, srv.rss_kb())
        if sent % 10 == 0 or max_msgs < 100:
            srv.wait_log(f"event=broadcast seq={seq} ", timeout=5)
            failed = srv.broadcast_failed_total()
    took = h.now() - t0
    failed = srv.broadcast_failed_total()
    ck.note(f"{sent} broadcasts in {took:.1f} s; coordinator failed= total {failed}; "
            f"RSS {rss0} -> peak {peak} KiB")
    ck.check(f"{name}: every non-reading client cut off", failed == 100, f"failed={failed}")
    ck.check(f"{name}: server RSS bounded", peak - rss0 < h.rss_bound_kb(slow),
             f"grew {peak - rss0} KiB (bound {h.rss_bound_kb(slow)})")
    readers.wait_seq(sent, timeout=10)
    gaps = [c for c in readers.conns if readers.seqs[c] != list(range(1, sent + 1))]
    ck.check(f"{name}: readers got every broadcast, in order", not gaps and not readers.bad,
             f"{len(gaps)} with gaps; bad {readers.bad[:2]}")
    # Now read the non-readers: what they were sent, then the server's close. The server
    # gives a 1008 close 5 s to flush behind the queue; after that it closes TCP (its
    # descriptor count falls back to the readers') and the kernel delivers what it holds
    # (megabytes: see above), then FIN. A bigger receive buffer now lets that drain quickly;
    # all of them at once, under one deadline.
    ck.check(f"{name}: the server closed its end of every non-reader",
             h.poll(lambda: srv.nfds() <= fds0 + len(readers.conns), 30 if slow else 15, 0.1),
             f"{srv.nfds()} descriptors, {fds0} + {len(readers.conns)} readers expected")
    for c in sluggards:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    eof_wait = 60 if slow else 30
    end = h.now() + eof_wait
    saw_1008 = set()
    live = list(sluggards)
    while live and h.now() < end:
        for c in h.ready(live, 0.2):
            if not c.fill(h.now()):
                live.remove(c)
            while True:
                try:
                    f = h.parse_frame(c.buf)
                except ValueError:
                    c.buf.clear()
                    break
                if not f:
                    break
                del c.buf[:f[3]]
                if f[1] == h.OP_CLOSE and f[2][:2] == struct.pack(">H", 1008):
                    saw_1008.add(c)
    closed, with_1008 = sum(1 for c in sluggards if c.eof), len(saw_1008)
    for c in sluggards:
        c.close()
    ck.check(f"{name}: the server closed every non-reader", closed == 100,
             f"{closed} of 100 saw EOF/RST within {eof_wait} s")
    ck.note(f"{with_1008} of 100 non-readers could read a 1008 close frame before EOF")
    ck.check(f"{name}: readers still receive", readers.wait_seq(publish(), timeout=10))
    readers.close()


@contextlib.contextmanager
def subscribed_server(binary, ck, name, extra=()):
    """A throwaway redis-server and a wspush subscribed to it (a checked step of the
    scenario); yields (redis, server) and closes both whatever happens."""
    with h.Redis() as redis, h.Server(binary, *extra, redis=redis) as srv:
        ck.check(f"{name}: subscribed", srv.wait_log("event=redis_subscribed", timeout=15))
        yield redis, srv


def scenario_slow_consumers(ck, binary):
    """64 KiB messages published through Redis, default --max-pending (64 KiB). Time frames
    (SIGUSR1) are too small for this: Linux autotunes a loopback socket's send buffer to
    tcp_wmem's maximum (4 MiB), which ~40-byte frames take ~100,000 broadcasts to fill; 64 KiB
    messages fill it in ~60, then --max-pending's 64 KiB in one more."""
    slow = ck.slow
    h.raise_nofile()
    with subscribed_server(binary, ck, "slow_consumers") as (redis, srv):
        count = [0]
        readers_payload = b'{"time":0,"seq":%d,"pad":"'

        def publish():
            count[0] += 1
            body = readers_payload % count[0]
            msg = body + b"x" * (REDIS_MSG - len(body) - 2) + b'"}'
            n = redis.publish(b"wspush", msg)
            if n != 1:
                raise RuntimeError(f"PUBLISH reached {n} subscribers")
            return count[0]

        slow_consumers(ck, srv, slow, publish, "slow_consumers", max_msgs=300,
                       parse=parse_redis_msg)
        ck.check("slow_consumers: server exits 0", srv.stop() == 0)


def scenario_publish_64k(ck, binary):
    """A reader with nothing queued must receive the largest message the server accepts for
    publishing (64 KiB), whose frame (65,546 bytes) is larger than --max-pending's default
    (65,536): the limit applies to bytes queued behind others, not to one frame."""
    with subscribed_server(binary, ck, "publish_64k") as (redis, srv):
        c = h.ws_connect(HOST, srv.port)
        for size in (65536 - 10, 65536):
            redis.publish(b"wspush", b"x" * size)
            f = c.read_frame(10)
            ck.check(f"publish_64k: a {size}-byte message arrives whole",
                     f is not None and f[1] == h.OP_TEXT and len(f[2]) == size,
                     f"got {f[:2] if f else f} {len(f[2]) if f else ''} "
                     f"{f[2][:2] if f and f[1] == h.OP_CLOSE else ''}")
        c.close()
        ck.check("publish_64k: server exits 0", srv.stop() == 0)


def scenario_short_sends(ck, binary):
    """Sends the socket does not take whole: 5 clients with a tiny receive buffer read nothing
    while 40 distinct ~60 KiB messages are published (--max-pending 8 MiB keeps them), then
    read everything. Each must get every message exactly once, in order, byte for byte: the
    first short send (io_uring or uv_try_write) hands its tail to the libuv queue and later
    broadcasts queue behind it. With WSP_IT_IO_URING=on the server's log must show io_uring
    sends that came back short; with off, none through io_uring at all."""
    slow = ck.slow
    path = os.environ.get("WSP_IT_IO_URING", "")
    total = 40
    keep_all = ["--max-pending", str(8 << 20)]
    with subscribed_server(binary, ck, "short_sends", keep_all) as (redis, srv):
        ck.check("short_sends: the send path is logged",
                 srv.wait_log("event=send_path path=" +
                              ("io_uring" if path == "on" else "uv_try_write"), timeout=5)
                 if path in ("on", "off") else True)
        cs = [h.ws_connect(HOST, srv.port, rcvbuf=1024) for _ in range(5)]

        def body(i):
            head = b'{"seq":%d,"pad":"' % i
            fill = bytes([0x61 + i % 26]) * (60000 + i * 7 - len(head) - 2)
            return head + fill + b'"}'

        for i in range(1, total + 1):
            n = redis.publish(b"wspush", body(i))
            if n != 1:
                raise RuntimeError(f"PUBLISH reached {n} subscribers")
        srv.wait_log(f"event=broadcast seq={total} ", timeout=20)
        for c in cs:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = {c: [] for c in cs}
        deadline = h.now() + (60 if slow else 30)
        while h.now() < deadline and any(len(v) < total for v in got.values()):
            for c in h.ready([c for c in cs if len(got[c]) < total and not c.eof], 0.2):
                c.fill(h.now())
                while True:
                    f = h.parse_frame(c.buf)
                    if not f:
                        break
                    del c.buf[:f[3]]
                    got[c].append(f[2] if f[1] == h.OP_TEXT and f[0] else (f[0], f[1]))
        want = [body(i) for i in range(1, total + 1)]
        bad = [i for i, c in enumerate(cs) if got[c] != want]
        ck.check("short_sends: every client got all messages once, in order, intact", not bad,
                 f"clients {bad}: counts {[len(got[cs[i]]) for i in bad]}")
        redis.publish(b"wspush", b"marker")
        nxt = [c.read_frame(10) for c in cs]
        ck.check("short_sends: nothing more arrived: a marker published after came next",
                 all(f is not None and f[2] == b"marker" for f in nxt),
                 str([f if f is None else (f[0], f[1], f[2][:20]) for f in nxt]))
        sends = short = 0
        for m in re.finditer(r"event=shard_broadcast .*?uring_sends=(\d+) uring_short=(\d+)",
                             srv.log()):
            sends += int(m.group(1))
            short += int(m.group(2))
        ck.note(f"io_uring sends {sends}, of which short {short}")
        ck.check("short_sends: no io_uring failure logged",
                 srv.count("event=io_uring_failed") == 0)
        if path == "on":
            ck.check("short_sends: io_uring sends came back short (the tested path)",
                     sends > 0 and short > 0, f"sends={sends} short={short}")
        elif path == "off":
            ck.check("short_sends: --io-uring off sends nothing through io_uring", sends == 0,
                     f"sends={sends}")
        for c in cs:
            c.close()
        ck.check("short_sends: server exits 0", srv.stop() == 0)


# ---- half-open ----

def run(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def socket_inodes(pid):
    """Inodes of the sockets pid holds (from /proc, not ss -p: that scans every process)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def established(port, peer, pid):
    """Server-owned ESTABLISHED sockets on port to peer: [first ss line, details]."""
    out = run("ss", "-tnoie", "state", "established", f"( sport = :{port} and dst {peer} )",
              check=False)
    socks = []
    for line in out.splitlines()[1:]:
        if not line.startswith((" ", "\t")):
            socks.append([line, ""])
        elif socks:
            socks[-1][1] += line.strip()
    owned = socket_inodes(pid)
    return [s for s in socks if (m := re.search(r"\bino:(\d+)", s[0] + s[1])) and
            m.group(1) in owned]


NS_CLIENT = r"""
import socket, sys, os, base64
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            sys.exit(1)
        head += d
    if not head.startswith(b"HTTP/1.1 101 "):
        sys.exit(1)
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


class Veth:
    """A veth pair to a private network namespace (10.213.X.0/30), removed on close. Clients
    run in the namespace; vanish() takes its end of the link down, then kills them, so their
    FINs go nowhere. The host end stays up without carrier: its route stays and packets to
    the namespace are dropped at the veth, never sent out a default route."""

    def __init__(self):
        h.need("ip", "iproute2")
        h.need("ss", "iproute2")
        if os.geteuid() != 0:
            raise h.Skip("needs root (network namespaces, a veth pair)")
        tag = f"wh{os.getpid() % 100000}"
        self.ns, self.vh, self.vn = f"{tag}ns", f"{tag}h", f"{tag}n"
        used = run("ip", "-4", "addr", check=False)
        x = next((x for k in range(200) if f"10.213.{(x := 16 + (os.getpid() + k) % 200)}."
                  not in used), None)
        if x is None:
            raise RuntimeError("every 10.213.X.0/30 (X 16..215) is in use here")
        self.host_ip, self.ns_ip = f"10.213.{x}.1", f"10.213.{x}.2"
        try:
            run("ip", "netns", "add", self.ns)
        except RuntimeError as e:
            raise h.Skip(f"no network namespaces: {e}")
        self.helpers = []
        try:
            run("ip", "link", "add", self.vh, "type", "veth", "peer", "name", self.vn)
            run("ip", "link", "set", self.vn, "netns", self.ns)
            run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.vh)
            run("ip", "link", "set", self.vh, "up")
            run("ip", "-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.vn)
            run("ip", "-n", self.ns, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def connect(self, port, n):
        """n more upgraded clients in the namespace (to port); True once they are."""
        run("ip", "-n", self.ns, "link", "set", self.vn, "up")
        helper = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c", NS_CLIENT, self.host_ip,
             str(port), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, preexec_fn=h.die_with_parent)
        self.helpers.append(helper)
        return bool(h.ready([helper.stdout], 15)) and helper.stdout.readline() == b"ready\n"

    def vanish(self):
        """Every client in the namespace vanishes at once."""
        run("ip", "-n", self.ns, "link", "set", self.vn, "down")
        self.kill_helpers()
        return f"dev {self.vh}" in run("ip", "route", "get", self.ns_ip)

    def kill_helpers(self):
        for helper in self.helpers:
            if helper.poll() is None:
                helper.kill()  # our own child: ip netns exec execs python, same pid
                helper.wait(10)
        self.helpers = []

    def close(self):
        self.kill_helpers()
        run("ip", "link", "del", self.vh, check=False)
        run("ip", "netns", "del", self.ns, check=False)


def wait_reaped(srv, ip, timeout, port=None):
    """Seconds until srv holds no established socket to ip (to ip:port with port), or None
    after timeout."""
    t0 = h.now()
    peer = f"{ip}:{port}" if port else ip
    while h.now() - t0 < timeout:
        if not established(srv.port, peer, srv.pid):
            return h.now() - t0
        time.sleep(0.25)
    return None


class SlowReader(threading.Thread):
    """A live client that reads slowly: at most `chunk` bytes ten times a second through a
    4 KiB receive buffer, so that a burst of broadcasts closes its window until it has caught
    up. What it read is kept for the end."""

    def __init__(self, host, port, chunk=4096):
        super().__init__(daemon=True)
        self.conn = h.ws_connect(host, port, rcvbuf=4096)
        self.chunk = chunk
        self.port = self.conn.sock.getsockname()[1]
        self.data = bytearray(self.conn.buf)  # bytes after the 101 already read
        self.lock = threading.Lock()
        self.eof = False
        self.stop = threading.Event()
        self.start()

    def run(self):
        sock = self.conn.sock
        while not self.stop.wait(0.1):  # the pace of a slow reader: the behaviour under test
            if not h.ready([sock], 0):
                continue
            try:
                d = sock.recv(self.chunk)
            except OSError:
                d = b""
            with self.lock:
                self.data += d
                self.eof = not d
            if not d:
                return

    def payloads(self):
        """The payloads read so far, in order."""
        with self.lock:
            buf = bytearray(self.data)
        out = []
        while (f := h.parse_frame(buf)):
            out.append(f[2])
            del buf[:f[3]]
        return out


def half_open_user_timeout(ck, veth, binary):
    """--tcp-user-timeout 4 --tcp-keepalive 2. An idle vanished peer is dropped when the first
    keepalive probe past 4 s goes unanswered (4 s, not 10: TCP_USER_TIMEOUT replaces
    TCP_KEEPCNT); with data in flight, 4 s after the first unacknowledged send. Beside them,
    three live clients behind 4 KiB receive buffers, which every burst of broadcasts (40 KB)
    closes: one that never reads, and one that reads 10 KB/s and so never catches up, are
    dropped once their window has been closed for 4 s without a break (what the bound does to
    a peer whose window stays closed: reading does not restart the clock, catching up does);
    one that reads 40 KB/s, and so catches up within each burst, is kept however long it goes
    on (here 3 bounds)."""
    ut, ip = 4, veth.ns_ip
    with h.Server(binary, "--tcp-keepalive", "2", "--tcp-user-timeout", str(ut),
                  "--max-pending", str(8 << 20), bind=veth.host_ip) as srv:
        ck.check("half_open: UT: the option is set", srv.wait_log(
            "event=socket_options", f"tcp_user_timeout_s={ut} "))
        ck.check("half_open: UT idle: clients upgraded", veth.connect(srv.port, 5))
        ck.check("half_open: UT idle: packets to the vanished peer stay on the veth",
                 veth.vanish())
        took = wait_reaped(srv, ip, 30)
        ck.check("half_open: UT idle: reaped at the first keepalive probe past 4 s",
                 took is not None and ut - 0.5 <= took <= ut + 3, f"{took}")
        ck.note(f"UT idle: reaped {took or 0:.1f} s after vanishing (keepalive 2 s idle, probes "
                f"2 s apart, --tcp-user-timeout {ut}; without it 10 s)")
        # Data in flight, and two live clients behind closed windows.
        ck.check("half_open: UT data: clients upgraded", veth.connect(srv.port, 5))
        slow = SlowReader(veth.host_ip, srv.port)
        lagging = SlowReader(veth.host_ip, srv.port, chunk=1024)
        stopped = h.ws_connect(veth.host_ip, srv.port, rcvbuf=1024)
        sport = stopped.sock.getsockname()[1]

        def holds(port):
            return len(established(srv.port, f"{veth.host_ip}:{port}", srv.pid)) == 1

        ck.check("half_open: UT data: the server holds the live ones",
                 holds(slow.port) and holds(sport))
        veth.vanish()
        sent, bursts, t0 = [], 0, h.now()
        at = {"reaped": None, "gone": None, "lagging": None}  # seconds after t0

        def progress():
            """Notes when the vanished peers and the non-reader went; True once the slow
            reader has read everything sent (or lost its connection)."""
            for k, gone in (("reaped", lambda: not established(srv.port, ip, srv.pid)),
                            ("gone", lambda: not holds(sport)),
                            ("lagging", lambda: not holds(lagging.port))):
                if at[k] is None and gone():
                    at[k] = h.now() - t0
            return slow.eof or slow.payloads() == sent

        while h.now() - t0 < 3 * ut:  # a burst each time the slow reader has caught up
            for _ in range(4):
                sent.append(b"%d:" % len(sent) + b"x" * 10000)
                st, _ = srv.publish(sent[-1])
                if st != 202:
                    ck.check("half_open: UT data: publish", False, str(st))
            bursts += 1
            if not h.poll(progress, 3 * ut, 0.1):
                break
        h.poll(lambda: progress() and None not in at.values(), 10, 0.1)
        reaped, gone, lag = at["reaped"], at["gone"], at["lagging"]
        ck.check("half_open: UT data: vanished peers reaped 4 s after the unacknowledged send",
                 reaped is not None and ut - 0.5 <= reaped <= ut + 3, f"{reaped}")
        ck.check("half_open: UT data: the client that never reads is dropped once its window "
                 "stayed closed for 4 s", gone is not None and ut - 0.5 <= gone <= ut + 4,
                 f"{gone}")
        ck.check("half_open: UT data: the client that reads 10 KB/s but never catches up is "
                 "dropped 4 s after its window closed, reading all along",
                 lag is not None and ut - 0.5 <= lag <= ut + 4 and len(lagging.data) > 4096,
                 f"{lag}, read {len(lagging.data)} bytes")
        ck.check("half_open: UT data: the slow reader caught up with every burst and is kept "
                 "past three bounds", not slow.eof and holds(slow.port) and
                 h.now() - t0 >= 3 * ut and slow.payloads() == sent,
                 f"{bursts} bursts, eof {slow.eof}, {len(slow.payloads())} of {len(sent)}")
        ck.note(f"UT data: vanished peers reaped {reaped or 0:.1f} s after the first send; the "
                f"non-reader {gone or 0:.1f} s after its window closed, the lagging reader "
                f"{lag or 0:.1f} s (having read {len(lagging.data)} bytes); the slow reader "
                f"kept through {bursts} bursts of 40 KB in {h.now() - t0:.1f} s")
        for r in (slow, lagging):
            r.stop.set()
            r.join(5)
            r.conn.close()
        stopped.close()
        ck.check("half_open: UT: server exits 0", srv.stop() == 0)


def half_open_defaults(ck, veth, binary):
    """--tcp-keepalive 2 with the default --tcp-user-timeout (keepalive's own give-up time,
    10 s) against --tcp-user-timeout 0 (as before it existed), side by side, clients
    vanishing at the same moment: idle ones go after 10 s either way; with a broadcast in
    flight the default drops them after 10 s too, while without it they are held (the kernel
    retransmits until tcp_retries2, ~15 min) until the write backlog passes --max-pending."""
    n, end, ip = 5, 10**9, veth.ns_ip
    flags = ("--max-pending", "256", "--tcp-keepalive", "2")
    with h.Server(binary, *flags, bind=veth.host_ip) as dflt, \
            h.Server(binary, *flags, "--tcp-user-timeout", "0", bind=veth.host_ip) as off:
        ck.check("half_open: the default follows keepalive (2 + 4 x 2 s)",
                 dflt.wait_log("event=socket_options", "tcp_user_timeout_s=10 ") and
                 off.wait_log("event=socket_options", "tcp_user_timeout_s=0 "))
        readers = h.Readers(lambda p: h.parse_time_msg(p) or ((0, end) if p == b"end" else None))
        readers.add(h.ws_connect(veth.host_ip, off.port))
        # A: idle, on the default. Keepalive's clock starts at the last segment from the peer,
        # during the upgrade: no earlier than `before`, no later than `vanished`, which a
        # loaded machine may keep apart by more than the timer's slack.
        before = h.now()
        ck.check("half_open: A: clients in the namespace upgraded", veth.connect(dflt.port, n))
        ck.check("half_open: A: server holds them",
                 len(established(dflt.port, ip, dflt.pid)) == n)
        vanished = h.now()
        ck.check("half_open: packets to the vanished peer stay on the veth", veth.vanish())
        waited = h.now()
        reaped = wait_reaped(dflt, ip, 30)
        took = since = None
        if reaped is not None:
            took, since = waited + reaped - vanished, waited + reaped - before
        ck.check("half_open: A: idle ones reaped by TCP keepalive after 10 s, as before",
                 took is not None and since >= 9.5 and took <= 14,
                 f"{took} s after vanishing, {since} s after the upgrade began")
        ck.note(f"A: idle half-open connections reaped by keepalive {took or 0:.1f} s after "
                f"vanishing, {since or 0:.1f} s after the upgrade began (--tcp-keepalive 2: "
                f"2 s idle + 4 probes 2 s apart)")
        # B: a broadcast in flight to both servers' clients.
        ck.check("half_open: B: clients upgraded", veth.connect(dflt.port, n) and
                 veth.connect(off.port, n))
        veth.vanish()
        t0 = h.now()
        dflt.signal(signal.SIGUSR1)
        off.signal(signal.SIGUSR1)
        readers.wait_seq(1, 5)
        took = wait_reaped(dflt, ip, 30)
        ck.check("half_open: B: with the default, reaped 10 s after the unacknowledged send",
                 took is not None and 9.5 <= took <= 14, f"{took}")
        held = established(off.port, ip, off.pid)
        timers = sorted({m.group(0) for line, info in held for m in
                         [re.search(r"timer:\([^)]*\)", line + info)] if m})
        retries2 = open("/proc/sys/net/ipv4/tcp_retries2").read().strip()
        ck.check("half_open: B: with --tcp-user-timeout 0, still held then",
                 len(held) == n, f"{len(held)} of {n}")
        ck.note(f"B: one broadcast unacknowledged: the default reaped them {took or 0:.1f} s "
                f"later; with --tcp-user-timeout 0 {len(held)} of {n} still held "
                f"{h.now() - t0:.1f} s later, {timers[:1]}: the kernel retransmits until "
                f"tcp_retries2={retries2} (~15 min)")
        # Signals sent faster than the coordinator takes them coalesce: count what it logged.
        t0 = h.now()
        while established(off.port, ip, off.pid) and h.now() - t0 < 60:
            for _ in range(50):
                off.signal(signal.SIGUSR1)
                time.sleep(0.004)
            readers.pump(0.1)
        # A publish after the signals: once the server logs it done, every broadcast before it
        # is done too (each shard takes them in order); its seq counts them.
        st, reply = off.publish("end")
        ck.check("half_open: B: the closing publish is 202", st == 202, str(st))
        made = reply.get("seq", 1) - 1
        ck.check("half_open: B: the closing publish done",
                 off.wait_log(f"event=broadcast seq={made + 1} "))
        left = established(off.port, ip, off.pid)
        ck.check("half_open: B: reaped once the write backlog passes --max-pending", not left,
                 f"{len(left)} still held after {made} broadcasts")
        ck.note(f"B: with --tcp-user-timeout 0, reaped after {made} broadcasts of ~40 bytes "
                f"({h.now() - t0:.1f} s incl. the drain) with --max-pending 256")
        ck.check("half_open: B: the reader got every broadcast, the closing one last",
                 readers.wait_seq(end, 10) and readers.seqs[readers.conns[0]] ==
                 list(range(1, made + 1)) + [end], f"{made} made")
        readers.close()
        ck.check("half_open: server exits 0", dflt.stop() == 0 and off.stop() == 0)


def scenario_half_open(ck, binary):
    """Clients that vanish without a FIN, and what reaps them:
    A. idle: TCP keepalive (--tcp-keepalive 2: probes after 2 s idle, 4 probes 2 s apart);
    B. a broadcast in flight: keepalive never probes while data is unacknowledged:
       TCP_USER_TIMEOUT (--tcp-user-timeout, by default keepalive's give-up time) does, or,
       with it off, only the write backlog passing --max-pending (or tcp_retries2, ~15 min);
    UT. a short --tcp-user-timeout against live clients behind closed windows;
    C. --ping-interval 2: no answer by the next round closes it, data in flight or not."""
    n = 5
    veth = Veth()
    srv = None
    try:
        half_open_defaults(ck, veth, binary)
        half_open_user_timeout(ck, veth, binary)
        # C: application pings, keepalive and the user timeout off.
        srv = h.Server(binary, "--ping-interval", "2", "--tcp-keepalive", "0",
                       "--tcp-user-timeout", "0", bind=veth.host_ip)
        ck.check("half_open: C: clients upgraded", veth.connect(srv.port, n))
        veth.vanish()
        srv.signal(signal.SIGUSR1)  # data in flight too: pings reap regardless
        took = wait_reaped(srv, veth.ns_ip, 20)
        ck.check("half_open: C: reaped by --ping-interval", took is not None,
                 "still held after 20 s")
        ck.note(f"C: reaped by --ping-interval 2 {took or 0:.1f} s after vanishing")
        ck.check("half_open: C: server exits 0", srv.stop() == 0)
    finally:
        if srv:
            srv.close()
        veth.close()


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items()
             if name.startswith("scenario_")}


if __name__ == "__main__":
    sys.exit(h.main(SCENARIOS))
