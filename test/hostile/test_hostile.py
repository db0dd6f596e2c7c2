#!/usr/bin/python3
"""Hostile clients against the real wspush binary, one scenario per run.

usage: /usr/bin/python3 test_hostile.py SCENARIO PATH_TO_WSPUSH

Scenarios (each bounded well under its ctest TIMEOUT; loopback, or a private veth pair for
half_open; only processes this script started are signalled, by pid):
  slowloris       1,000 connections sending one header byte a second, reconnecting, while
                  legitimate clients connect and receive SIGUSR1 broadcasts
  headers         oversized and endless headers, garbage, HTTP/1.0, HTTP/2, TLS ClientHello,
                  silent and half-closed peers: the right status or a close, never a hang
  burst           10,000 handshakes at once from two processes: 101s + clean 503s = 10,000
  fd_limit        the server under prlimit --nofile=200:200: clients past --max-conns get
                  503s, CPU stays low, it accepts again once connections close
  fd_storm        as fd_limit, but the excess exhausts the server's descriptors (EMFILE) and
                  three processes connect and close flat out
  slow_consumers  100 clients that never read while 64 KiB messages published through a
                  throwaway redis-server flow: closed, RSS bounded, others keep receiving
  publish_64k     a reader with an empty queue gets a 64 KiB (the publish limit) message
  floods          ping flood without reading; endless empty and 1-byte fragments
  half_open       clients vanish without FIN (veth pair, link down): what reaps them, idle
                  (keepalive), with data in flight (--max-pending), with --ping-interval

Prints one line per failed check, notes on measured behaviour, and a final summary; exits 1
on any failure, 77 when the scenario cannot run here (ctest reports a skip).
"""

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile as h  # noqa: E402

HOST = "127.0.0.1"


# ---- slowloris ----

def scenario_slowloris(binary, ck, slow):
    """1,000 attackers keep a header byte a second flowing, reconnecting when closed; the
    handshake timeout (3 s) must close each, while legitimate clients keep connecting and
    receiving broadcasts."""
    h.raise_nofile()
    n_attackers, attack_s, timeout = 1000, 12.0, 3
    srv = h.Server(binary, extra=["--handshake-timeout", str(timeout)])
    try:
        sel = h.selector()
        req, _ = h.upgrade_request()
        attackers = {}  # sock -> [connected_at, bytes_sent]
        lifetimes, early, got_bytes, connect_errors = [], 0, 0, 0

        def open_attacker():
            nonlocal connect_errors
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((HOST, srv.port))
            except BlockingIOError:
                pass
            except OSError:
                connect_errors += 1
                s.close()
                return
            attackers[s] = [h.now(), 0]
            sel.register(s, 1)  # EVENT_READ: the server closing it, or sending anything

        for _ in range(n_attackers):
            open_attacker()
        readers = h.Readers()
        legit_times = []  # seconds each legitimate upgrade took during the attack
        upgraded_at = {}  # conn -> monotonic time its 101 was read
        signals = []  # (seq, monotonic time sent)
        t_start = h.now()
        next_byte = next_legit = next_signal = t_start + 0.5
        while True:
            t = h.now()
            attacking = t - t_start < attack_s
            if not attacking and not attackers:
                break
            if t - t_start > attack_s + timeout + 10:
                ck.check("slowloris: every attacker closed by the server", False,
                         f"{len(attackers)} still open {t - t_start:.1f} s in")
                break
            if t >= next_byte:  # one more header byte on every open attacker
                next_byte += 1.0
                for s, st in list(attackers.items()):
                    try:
                        s.send(req[st[1]:st[1] + 1])
                        st[1] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        pass  # reset: the read side reports it
            if attacking and t >= next_legit:
                next_legit += 0.5
                t0 = h.now()
                try:
                    c = h.ws_connect(HOST, srv.port, timeout=5)
                    legit_times.append(h.now() - t0)
                    readers.add(c)
                    upgraded_at[c] = h.now()
                except (OSError, RuntimeError) as e:
                    ck.check("slowloris: legitimate upgrade during the attack", False, str(e))
            if attacking and t >= next_signal and readers.conns:
                next_signal += 1.0
                signals.append((len(signals) + 1, h.now()))
                srv.signal(signal.SIGUSR1)
            for key, _ in sel.select(0.02):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    got_bytes += len(data)  # the server answers a timeout with nothing
                    continue
                connected, sent = attackers.pop(s)
                life = h.now() - connected
                lifetimes.append(life)
                if life < timeout - 0.1:
                    early += 1
                sel.unregister(s)
                s.close()
                if h.now() - t_start < attack_s:
                    open_attacker()  # sustained: a new one for each one closed
            readers.pump(0)
        # A last broadcast every reader must get, then the per-reader accounting below.
        signals.append((len(signals) + 1, h.now()))
        srv.signal(signal.SIGUSR1)
        readers.wait_seq(len(signals), timeout=10)
        sel.close()

        ck.check("slowloris: attackers opened", len(lifetimes) >= n_attackers,
                 f"{len(lifetimes)} closed, {connect_errors} connect errors")
        ck.check("slowloris: none closed before the handshake timeout", early == 0,
                 f"{early} closed under {timeout} s")
        late_bound = timeout + 1 + (6 if slow else 2)  # deadline tick + scheduling slack
        late = sum(1 for x in lifetimes if x > late_bound)
        ck.check("slowloris: each closed soon after the timeout", late == 0,
                 f"{late} lived over {late_bound} s; max {max(lifetimes, default=0):.2f} s")
        ck.check("slowloris: the server sent attackers nothing", got_bytes == 0,
                 f"{got_bytes} bytes")
        ck.check("slowloris: legitimate clients upgraded throughout",
                 len(legit_times) >= attack_s / 0.5 - 2, f"{len(legit_times)} upgrades")
        ck.check("slowloris: legitimate upgrades were prompt",
                 max(legit_times, default=0) < (3 if slow else 1),
                 f"max {max(legit_times, default=0):.3f} s")
        missing = 0
        for c in readers.conns:
            want = [seq for seq, ts in signals if ts > upgraded_at[c]]
            got = readers.seqs[c]
            if not set(want) <= set(got) or got != sorted(set(got)):
                missing += 1
        ck.check("slowloris: every legitimate client got every broadcast", missing == 0,
                 f"{missing} of {len(readers.conns)} missed some; bad frames {readers.bad[:3]}")
        ck.note(f"{len(lifetimes)} attacker connections, lifetimes "
                f"{min(lifetimes, default=0):.2f}..{max(lifetimes, default=0):.2f} s; "
                f"{len(legit_times)} legitimate upgrades, max "
                f"{max(legit_times, default=0) * 1000:.0f} ms; {len(signals)} broadcasts")
        readers.close()
        ck.check("slowloris: server exits 0", srv.stop() == 0)
    finally:
        srv.close()


# ---- headers ----

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100f8010000f40303") + bytes(range(32)) + bytes.fromhex(
    "20") + bytes(32) + bytes.fromhex(
    "0008130213031301c02f0100") + bytes.fromhex(
    "00a3000000150013000010") + b"wspush.example.com" + bytes(0x80)


def expect_status(ck, name, port, payload, want, close_within, shutdown_after=False):
    """Sends payload at once; wants an HTTP response with status want (None: no bytes at
    all), then the connection closed within close_within seconds."""
    c = h.Conn(HOST, port)
    t0 = h.now()
    err = c.send_all(payload)
    if shutdown_after:
        c.sock.shutdown(socket.SHUT_WR)
    if want is None:
        closed = c.wait_eof(close_within, keep=True)
        ck.check(f"headers: {name}: closed without a response", closed and not c.buf,
                 f"closed={closed} got={bytes(c.buf[:40])!r} after {h.now() - t0:.2f} s")
        c.close()
        return h.now() - t0
    status, head = c.read_head(close_within)
    ck.check(f"headers: {name}: status {want}", status == want,
             f"got {status} {head[:60] if head else b''!r} send={err}")
    c.sock.shutdown(socket.SHUT_WR)  # the server lingers until our FIN: give it
    ck.check(f"headers: {name}: then closed", c.wait_eof(close_within))
    c.close()
    return h.now() - t0


def scenario_headers(binary, ck, slow):
    timeout = 3
    srv = h.Server(binary, extra=["--handshake-timeout", str(timeout)])
    quick = 3 if slow else 1.5  # an answer that must not wait for the timeout
    try:
        port = srv.port
        req, _ = h.upgrade_request()
        base = req[:-2]  # without the final empty line
        expect_status(ck, "one 9,000-byte line", port, b"GET /" + b"a" * 9000, 431, quick)
        expect_status(ck, "letters only, 9,000", port, b"A" * 9000, 431, quick)
        pad = 8192 - len(base + b"X-Pad: \r\n\r\n")
        exact = base + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"
        over = base + b"X-Pad: " + b"p" * (pad + 1) + b"\r\n\r\n"
        # In three pieces, so that conn.c's handshake buffer grows across reads.
        for name, data, want in (("8,192-byte request", exact, 101),
                                 ("8,193-byte request", over, 431)):
            c = h.Conn(HOST, port)
            for i in range(3):
                c.send_all(data[i * len(data) // 3:(i + 1) * len(data) // 3])
                time.sleep(0.05)
            status, _ = c.read_head(quick)
            ck.check(f"headers: {name}: status {want}", status == want, f"got {status}")
            c.close()
        # Endless header lines: keep writing until the server answers, then read it.
        c = h.Conn(HOST, port)
        line = b"X-Filler: " + b"f" * 40 + b"\r\n"
        c.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sent, t0 = 0, h.now()
        while h.now() - t0 < quick * 3:
            if h.ready([c.sock], 0):
                break
            try:
                sent += c.sock.send(line)
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
        status, _ = c.read_head(quick)
        ck.check("headers: endless header lines: 431", status == 431,
                 f"got {status} after {sent} bytes")
        c.sock.shutdown(socket.SHUT_WR)
        ck.check("headers: endless header lines: then closed", c.wait_eof(quick))
        ck.note(f"endless header lines: 431 after {sent} bytes of lines")
        c.close()
        # The same, slowly: a line every 100 ms never completes; the timeout closes it.
        c = h.Conn(HOST, port)
        c.send_all(b"GET / HTTP/1.1\r\n")
        t0 = h.now()
        while not c.eof and h.now() - t0 < timeout + 5:
            c.send_all(b"X-Slow: 1\r\n")
            c.fill(h.now() + 0.1)
        life = h.now() - t0
        ck.check("headers: slow endless headers: closed by the handshake timeout",
                 c.eof and not c.buf and timeout - 0.2 <= life <= timeout + (5 if slow else 2),
                 f"eof={c.eof} after {life:.2f} s, got {bytes(c.buf[:40])!r}")
        c.close()
        garbage = bytes(random.Random(7).randrange(256) for _ in range(512))
        expect_status(ck, "binary garbage", port, b"\x00" + garbage, 400, quick)
        expect_status(ck, "NUL in the request line", port, b"GET /\x00 HTTP/1.1\r\n", 400, quick)
        expect_status(ck, "TLS ClientHello", port, TLS_CLIENT_HELLO, 400, quick)
        expect_status(ck, "HTTP/2 preface", port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, quick)
        r10, _ = h.upgrade_request(version=b"HTTP/1.0")
        expect_status(ck, "HTTP/1.0 upgrade", port, r10, 400, quick)
        expect_status(ck, "HTTP/1.0 GET", port, b"GET / HTTP/1.0\r\n\r\n", 400, quick)
        expect_status(ck, "POST", port, req.replace(b"GET", b"POST", 1), 405, quick)
        expect_status(ck, "no version", port, re.sub(rb"Sec-WebSocket-Version: 13\r\n", b"", req),
                      426, quick)
        r404, _ = h.upgrade_request(path="/nope")
        expect_status(ck, "wrong path", port, r404, 404, quick)
        expect_status(ck, "bare CR", port, b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400, quick)
        expect_status(ck, "obs-fold", port, base + b" folded\r\n\r\n", 400, quick)
        expect_status(ck, "101 header fields", port,
                      base + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", 431,
                      quick)
        life = expect_status(ck, "silent peer", port, b"", None, timeout + (5 if slow else 2))
        ck.check("headers: silent peer lives the whole timeout", life >= timeout - 0.2,
                 f"{life:.2f} s")
        life = expect_status(ck, "half-closed peer", port, b"GET / HT", None, quick,
                             shutdown_after=True)
        # Frames glued to the request: the 101, then a 1002 for the HTTP text.
        c = h.Conn(HOST, port)
        c.send_all(req + b"GET / HTTP/1.1\r\n\r\n")
        status, _ = c.read_head(quick)
        f = c.read_frame(quick)
        ck.check("headers: HTTP after the upgrade: 101 then close 1002",
                 status == 101 and f is not None and f[1] == h.OP_CLOSE and
                 f[2][:2] == struct.pack(">H", 1002), f"got {status} {f}")
        c.close()
        # The server still serves.
        c = h.ws_connect(HOST, port)
        srv.signal(signal.SIGUSR1)
        f = c.read_frame(5)
        ck.check("headers: a broadcast still arrives", f is not None and
                 h.parse_time_msg(f[2]) is not None, str(f))
        c.close()
        ck.check("headers: server exits 0", srv.stop() == 0)
    finally:
        srv.close()


# ---- burst ----

def burst_worker(port, count, deadline, out_fd, go_fd):
    """Runs in a child: count handshakes at once; reports outcomes, then (after the parent
    signalled the server) how many 101 clients got the broadcast."""
    h.raise_nofile()
    res = {"101": 0, "503": 0, "other": 0, "eof": 0, "timeout": 0, "connect_error": 0,
           "bad_accept": 0}
    sel = h.selector()
    st = {}  # sock -> [state, key, buf]; state 0 connecting, 1 reading, 2 done
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((HOST, port))
        except BlockingIOError:
            pass
        except OSError:
            res["connect_error"] += 1
            s.close()
            continue
        req, key = h.upgrade_request()
        st[s] = [0, key, bytearray(), req]
        sel.register(s, 2)  # EVENT_WRITE: connected
    pending = len(st)
    opened = []
    while pending and h.now() < deadline:
        for k, ev in sel.select(0.2):
            s = k.fileobj
            state = st[s]
            if state[0] == 0:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    res["connect_error"] += 1
                    state[0] = 2
                    pending -= 1
                    sel.unregister(s)
                    s.close()
                    continue
                try:
                    s.send(state[3])  # < 200 bytes: fits an empty socket buffer
                except OSError:
                    res["eof"] += 1
                    state[0] = 2
                    pending -= 1
                    sel.unregister(s)
                    s.close()
                    continue
                state[0] = 1
                sel.modify(s, 1)
                continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                state[2] += data
                got = h.parse_head(state[2])
                if not got:
                    continue
                status, head, rest = got
                if status == 101:
                    res["101"] += 1
                    if not h.check_101(head, state[1]):
                        res["bad_accept"] += 1
                    opened.append((s, bytearray(rest)))
                elif status == 503:
                    res["503"] += 1
                    s.close()
                else:
                    res["other"] += 1
                    s.close()
            else:
                res["eof"] += 1
                s.close()
            state[0] = 2
            pending -= 1
            sel.unregister(s)
    res["timeout"] = pending
    sel.close()
    os.write(out_fd, (json.dumps(res) + "\n").encode())
    os.read(go_fd, 1)  # the parent has sent SIGUSR1
    sel = h.selector()
    bufs = {}
    for s, rest in opened:
        bufs[s] = rest
        sel.register(s, 1)
    done = set()
    end = h.now() + 30
    while len(done) < len(opened) and h.now() < end:
        for s, buf in list(bufs.items()):
            if s not in done and h.parse_frame(buf):
                done.add(s)
                sel.unregister(s)
        for k, _ in sel.select(0.2):
            try:
                data = k.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(k.fileobj)
                done.add(k.fileobj)  # closed: counted as not received below
                continue
            bufs[k.fileobj] += data
    res = {"got_broadcast": sum(1 for s, b in bufs.items() if h.parse_frame(b))}
    os.write(out_fd, (json.dumps(res) + "\n").encode())
    for s in bufs:
        s.close()


def burst(binary, ck, slow, name, extra, total=10000, nproc=2):
    """total handshakes at once from nproc processes against a fresh server; returns the
    outcome counts after checking that every one was served or cleanly refused."""
    srv = h.Server(binary, extra=extra)
    try:
        m = re.search(r"room for about (\d+) connections", srv.log())
        room = int(m.group(1)) if m else 0
        deadline = h.now() + (120 if slow else 60)
        kids = []
        for _ in range(nproc):
            r, w = os.pipe()
            gr, gw = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    os.close(r)
                    os.close(gw)
                    burst_worker(srv.port, total // nproc, deadline, w, gr)
                except BaseException as e:  # a child must never fall back into the parent
                    print(f"burst worker: {e!r}", flush=True)
                    code = 1
                os._exit(code)
            os.close(w)
            os.close(gr)
            kids.append((pid, os.fdopen(r), gw))
        t0 = h.now()
        results = []
        for pid, rf, gw in kids:
            line = rf.readline()
            results.append(json.loads(line) if line else {})
        took = h.now() - t0
        agg = {}
        for r in results:
            for k, v in r.items():
                agg[k] = agg.get(k, 0) + v
        ck.note(f"{name}: {total} handshakes in {took:.1f} s (server room {room}): {agg}")
        ck.check(f"{name}: every worker reported", len([r for r in results if r]) == nproc)
        ck.check(f"{name}: 101s + clean 503s = all",
                 agg.get("101", 0) + agg.get("503", 0) == total, str(agg))
        ck.check(f"{name}: no hang", agg.get("timeout", 0) == 0, str(agg))
        ck.check(f"{name}: every 101 has the right accept", agg.get("bad_accept", 0) == 0)
        srv.signal(signal.SIGUSR1)
        for pid, rf, gw in kids:
            os.write(gw, b"g")
        got = 0
        for pid, rf, gw in kids:
            line = rf.readline()
            got += json.loads(line).get("got_broadcast", 0) if line else 0
            os.waitpid(pid, 0)
            rf.close()
            os.close(gw)
        ck.check(f"{name}: every upgraded client got the broadcast", got == agg.get("101", -1),
                 f"{got} of {agg.get('101')}")
        ck.check(f"{name}: server exits 0", srv.stop(timeout=30) == 0)
        return agg, room
    finally:
        srv.close()


def scenario_burst(binary, ck, slow):
    h.raise_nofile()
    agg, room = burst(binary, ck, slow, "burst", [])
    if room >= 10000:
        ck.check("burst: all served (room for them)", agg.get("101", 0) == 10000, str(agg))
    # Over --max-conns: exactly that many 101s, every other one a 503.
    agg, _ = burst(binary, ck, slow, "burst over --max-conns 4000", ["--max-conns", "4000"])
    ck.check("burst over --max-conns: exactly 4,000 served, 6,000 refused with 503",
             agg.get("101") == 4000 and agg.get("503") == 6000, str(agg))


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
        end = h.now() + (3 if slow else 1.5)  # one wait for all: most get nothing at all
        for c in excess:
            status, _ = c.read_head(max(0, end - h.now()))
            k = str(status) if status else ("closed" if c.eof else "waiting")
            outcomes[k] = outcomes.get(k, 0) + 1
        if storm:
            for _ in range(3):
                pid = os.fork()
                if pid == 0:
                    try:
                        end = h.now() + 6
                        while h.now() < end:
                            socks = []
                            for _ in range(200):
                                s = socket.socket()
                                s.setblocking(False)
                                try:
                                    s.connect((HOST, srv.port))
                                except OSError:
                                    pass
                                socks.append(s)
                            time.sleep(0.01)
                            for s in socks:
                                s.close()
                    finally:
                        os._exit(0)
                kids.append(pid)
            time.sleep(1)
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
        for c in excess + legit[:50]:
            c.close()
        legit = legit[50:]
        time.sleep(1)
        served, t0 = 0, h.now()
        end = t0 + 15
        for _ in range(20):
            if h.now() >= end:
                break
            try:
                legit.append(h.ws_connect(HOST, srv.port, timeout=max(0.1, end - h.now())))
                served += 1
            except (OSError, RuntimeError):
                pass
        ck.check(f"{name}: accepts again once connections close", served == 20,
                 f"{served} of 20 upgraded in {h.now() - t0:.1f} s; server fds {srv.nfds()}")
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


def scenario_fd_limit(binary, ck, slow):
    fd_phase(binary, ck, slow, storm=False)


def scenario_fd_storm(binary, ck, slow):
    fd_phase(binary, ck, slow, storm=True)


# ---- slow consumers ----

def rss_bound_kb(slow):
    return {"": 16 << 10, "asan": 96 << 10, "ubsan": 16 << 10, "tsan": 256 << 10}[slow]


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
    ck.check(f"{name}: server RSS bounded", peak - rss0 < rss_bound_kb(slow),
             f"grew {peak - rss0} KiB (bound {rss_bound_kb(slow)})")
    readers.wait_seq(sent, timeout=10)
    gaps = [c for c in readers.conns if readers.seqs[c] != list(range(1, sent + 1))]
    ck.check(f"{name}: readers got every broadcast, in order", not gaps and not readers.bad,
             f"{len(gaps)} with gaps; bad {readers.bad[:2]}")
    # Now read the non-readers: what they were sent, then the server's close. The server
    # gives a 1008 close 5 s to flush behind the queue; after that it closes TCP and the
    # kernel delivers what it holds (megabytes: see above), then FIN. A bigger receive buffer
    # now lets that drain quickly; all of them at once, under one deadline.
    time.sleep(6)
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


class Redis:
    """A throwaway redis-server on a free loopback port; no persistence; killed by pid."""

    def __init__(self):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(exe):
            raise h.Skip("no redis-server")
        self.port = h.free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=h._die_with_parent)
        deadline = h.now() + 10
        while h.now() < deadline:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError("redis-server did not start")

    def publish(self, channel, msg):
        args = [b"PUBLISH", channel, msg]
        cmd = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(cmd)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = self.sock.recv(64)
            if not chunk:
                raise RuntimeError("redis closed")
            reply += chunk
        return int(reply[1:-2])  # subscribers reached

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@contextlib.contextmanager
def subscribed_server(binary, ck, name, extra=()):
    """A throwaway redis-server and a wspush subscribed to it (a checked step of the
    scenario); yields (redis, server) and closes both whatever happens."""
    redis = Redis()
    srv = None
    try:
        srv = h.Server(binary, extra=["--redis", f"redis://127.0.0.1:{redis.port}", *extra])
        ck.check(f"{name}: subscribed", srv.wait_log("event=redis_subscribed", timeout=15))
        yield redis, srv
    finally:
        if srv:
            srv.close()
        redis.close()


def scenario_slow_consumers(binary, ck, slow):
    """64 KiB messages published through Redis, default --max-pending (64 KiB). Time frames
    (SIGUSR1) are too small for this: Linux autotunes a loopback socket's send buffer to
    tcp_wmem's maximum (4 MiB), which ~40-byte frames take ~100,000 broadcasts to fill; 64 KiB
    messages fill it in ~60, then --max-pending's 64 KiB in one more."""
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


def scenario_publish_64k(binary, ck, slow):
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


def scenario_short_sends(binary, ck, slow):
    """Sends the socket does not take whole: 5 clients with a tiny receive buffer read nothing
    while 40 distinct ~60 KiB messages are published (--max-pending 8 MiB keeps them), then
    read everything. Each must get every message exactly once, in order, byte for byte: the
    first short send (io_uring or uv_try_write) hands its tail to the libuv queue and later
    broadcasts queue behind it. With WSP_IT_IO_URING=on the server's log must show io_uring
    sends that came back short; with off, none through io_uring at all."""
    path = os.environ.get("WSP_IT_IO_URING", "")
    total = 40
    keep_all = ["--max-pending", str(8 << 20)]
    with subscribed_server(binary, ck, "short_sends", extra=keep_all) as (redis, srv):
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
        ck.check("short_sends: nothing more arrived",
                 all(not c.buf and not h.ready([c], 0.2) for c in cs))
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


# ---- floods ----

def scenario_floods(binary, ck, slow):
    srv = h.Server(binary)
    try:
        watcher = h.ws_connect(HOST, srv.port)  # a reader that must keep receiving
        seq = 0

        def still_served(what):
            nonlocal seq
            seq += 1
            srv.signal(signal.SIGUSR1)
            f = watcher.read_frame(5 if slow else 3)
            ok = f is not None and (h.parse_time_msg(f[2]) or (0, -1))[1] == seq
            ck.check(f"floods: {what}: other clients still get broadcasts", ok, str(f)[:80])

        # 1. Ping flood, never reading: pongs pile up until --max-pending (64 KiB) closes it.
        rss0 = srv.rss_kb()
        c = h.ws_connect(HOST, srv.port, rcvbuf=1024)
        ping = h.frame(h.OP_PING, b"p" * 125)
        sent, err, t0 = 0, None, h.now()
        while h.now() - t0 < 20 and err is None:
            try:
                sent += c.sock.send(ping)
            except BlockingIOError:
                h.ready([c.sock], 0.05, write=True)
            except OSError as e:
                err = e.strerror
        took = h.now() - t0
        peak = srv.rss_kb()
        closed = err is not None or c.wait_eof(5)
        ck.check("floods: ping flood closed", closed, f"{sent} bytes in {took:.1f} s")
        ck.note(f"ping flood: {sent // len(ping)} pings sent in {took:.2f} s before the server "
                f"closed it ({err}); RSS {rss0} -> {peak} KiB")
        ck.check("floods: ping flood RSS bounded", peak - rss0 < rss_bound_kb(slow))
        c.close()
        still_served("after the ping flood")

        # 2. Endless empty fragments: a text message that never ends and never grows.
        c = h.ws_connect(HOST, srv.port)
        c.send_all(h.frame(h.OP_TEXT, b"", fin=False))
        cont = h.frame(h.OP_CONT, b"", fin=False) * 1000
        rss0, frames, t0, err = srv.rss_kb(), 0, h.now(), None
        cpu0 = srv.cpu_seconds()
        while h.now() - t0 < 5 and err is None:
            err = c.send_all(cont, timeout=5)
            frames += 1000
            if h.ready([c.sock], 0):
                break  # the server answered (a close) or closed
        took = h.now() - t0
        cpu = (srv.cpu_seconds() - cpu0) / took
        peak = srv.rss_kb()
        answered = c.read_frame(1)
        still_open = answered is None and not c.eof
        ck.note(f"endless empty fragments: {frames} frames in {took:.1f} s "
                f"({frames / took:.0f}/s, server CPU {cpu * 100:.0f}% of a core); connection "
                f"{'still open: accepted forever' if still_open else f'closed: {answered}'}; "
                f"RSS {rss0} -> {peak} KiB")
        ck.check("floods: empty-fragment flood RSS bounded", peak - rss0 < rss_bound_kb(slow))
        still_served("during the empty-fragment flood")
        c.close()

        # 3. One-byte fragments: the message grows by one byte a frame, so 4 KiB ends it: 1009.
        c = h.ws_connect(HOST, srv.port)
        c.send_all(h.frame(h.OP_TEXT, b"a", fin=False))
        one = h.frame(h.OP_CONT, b"a", fin=False)
        err, n = None, 1
        while n < 5000 and err is None:
            err = c.send_all(one * 100, timeout=5)
            n += 100
        f = c.read_frame(5)
        ck.check("floods: one-byte fragments past 4 KiB: close 1009",
                 f is not None and f[1] == h.OP_CLOSE and f[2][:2] == struct.pack(">H", 1009),
                 f"{f} after {n} fragments ({err})")
        c.close()
        still_served("after the one-byte fragments")
        watcher.close()
        ck.check("floods: server exits 0", srv.stop() == 0)
    finally:
        srv.close()


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
        if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("ss"):
            raise h.Skip("needs root, ip and ss")
        tag = f"wh{os.getpid() % 100000}"
        self.ns, self.vh, self.vn = f"{tag}ns", f"{tag}h", f"{tag}n"
        x = 16 + os.getpid() % 200
        self.host_ip, self.ns_ip = f"10.213.{x}.1", f"10.213.{x}.2"
        if f"10.213.{x}." in run("ip", "-4", "addr", check=False):
            raise h.Skip(f"10.213.{x}.0/30 is in use here")
        try:
            run("ip", "netns", "add", self.ns)
        except RuntimeError as e:
            raise h.Skip(f"no network namespaces: {e}")
        self.helper = None
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
        """n upgraded clients in the namespace; True once they are."""
        run("ip", "-n", self.ns, "link", "set", self.vn, "up")
        self.helper = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c", NS_CLIENT, self.host_ip,
             str(port), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, preexec_fn=h._die_with_parent)
        return bool(h.ready([self.helper.stdout], 15)) and \
            self.helper.stdout.readline() == b"ready\n"

    def vanish(self):
        run("ip", "-n", self.ns, "link", "set", self.vn, "down")
        self.kill_helper()
        return f"dev {self.vh}" in run("ip", "route", "get", self.ns_ip)

    def kill_helper(self):
        if self.helper and self.helper.poll() is None:
            self.helper.kill()  # our own child: ip netns exec execs python, same pid
            self.helper.wait(10)
        self.helper = None

    def close(self):
        self.kill_helper()
        run("ip", "link", "del", self.vh, check=False)
        run("ip", "netns", "del", self.ns, check=False)


def wait_reaped(srv, ip, timeout):
    """Seconds until srv holds no established socket to ip, or None after timeout."""
    t0 = h.now()
    while h.now() - t0 < timeout:
        if not established(srv.port, ip, srv.pid):
            return h.now() - t0
        time.sleep(0.25)
    return None


def scenario_half_open(binary, ck, slow):
    """Clients that vanish without a FIN, and what reaps them:
    A. idle: TCP keepalive (--tcp-keepalive 2: probes after 2 s idle, 4 probes 2 s apart);
    B. a broadcast in flight: keepalive never probes while data is unacknowledged, so only
       the write backlog passing --max-pending (or the kernel's tcp_retries2, ~15 min) does;
    C. --ping-interval 2: no answer by the next round closes it, data in flight or not."""
    n = 5
    veth = Veth()
    srv = None
    try:
        ip = veth.ns_ip
        srv = h.Server(binary, bind=veth.host_ip,
                       extra=["--max-pending", "256", "--tcp-keepalive", "2"])
        readers = h.Readers()
        readers.add(h.ws_connect(veth.host_ip, srv.port))
        # A: idle.
        ck.check("half_open: A: clients in the namespace upgraded", veth.connect(srv.port, n))
        ck.check("half_open: A: server holds them", len(established(srv.port, ip, srv.pid)) == n)
        ck.check("half_open: packets to the vanished peer stay on the veth", veth.vanish())
        took = wait_reaped(srv, ip, 30)
        ck.check("half_open: A: idle ones reaped by TCP keepalive", took is not None,
                 "still held after 30 s")
        ck.note(f"A: idle half-open connections reaped by keepalive {took or 0:.1f} s after "
                f"vanishing (--tcp-keepalive 2: 2 s idle + 4 probes 2 s apart)")
        # B: a broadcast in flight.
        ck.check("half_open: B: clients upgraded", veth.connect(srv.port, n))
        veth.vanish()
        srv.signal(signal.SIGUSR1)
        readers.wait_seq(1, 5)
        time.sleep(14)
        held = established(srv.port, ip, srv.pid)
        timers = sorted({m.group(0) for line, info in held for m in
                         [re.search(r"timer:\([^)]*\)", line + info)] if m})
        retries2 = open("/proc/sys/net/ipv4/tcp_retries2").read().strip()
        ck.note(f"B: one broadcast unacknowledged: {len(held)} of {n} still held 14 s later "
                f"(keepalive would have taken 10 s); {timers[:1]}: the kernel retransmits "
                f"until tcp_retries2={retries2} (~15 min)")
        # Signals sent faster than the coordinator takes them coalesce: count what it logged.
        t0 = h.now()
        while established(srv.port, ip, srv.pid) and h.now() - t0 < 60:
            for _ in range(50):
                srv.signal(signal.SIGUSR1)
                time.sleep(0.004)
            readers.pump(0.1)
        made, prev = srv.count("event=broadcast "), -1
        while made != prev:  # the last pass may still be logging
            time.sleep(0.3)
            prev, made = made, srv.count("event=broadcast ")
        left = established(srv.port, ip, srv.pid)
        ck.check("half_open: B: reaped once the write backlog passes --max-pending", not left,
                 f"{len(left)} still held after {made} broadcasts")
        ck.note(f"B: reaped after {made} broadcasts of ~40 bytes ({h.now() - t0:.1f} s incl. "
                f"the drain) with --max-pending 256")
        ck.check("half_open: B: the reader got every broadcast",
                 readers.wait_seq(made, 10) and readers.seqs[readers.conns[0]] ==
                 list(range(1, made + 1)), f"{made} made")
        readers.close()
        ck.check("half_open: server exits 0", srv.stop() == 0)
        srv.close()
        # C: application pings, keepalive off.
        srv = h.Server(binary, bind=veth.host_ip,
                       extra=["--ping-interval", "2", "--tcp-keepalive", "0"])
        ck.check("half_open: C: clients upgraded", veth.connect(srv.port, n))
        veth.vanish()
        srv.signal(signal.SIGUSR1)  # data in flight too: pings reap regardless
        took = wait_reaped(srv, ip, 20)
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


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        print(f"usage: {sys.argv[0]} {{{','.join(SCENARIOS)}}} PATH_TO_WSPUSH", file=sys.stderr)
        return 2
    name, binary = sys.argv[1], os.path.abspath(sys.argv[2])
    ck = h.Checks(name)
    slow = h.sanitized(binary)
    t0 = h.now()
    try:
        SCENARIOS[name](binary, ck, slow)
    except h.Skip as e:
        print(f"{name}: skipped: {e}")
        return 77
    except Exception as e:  # noqa: BLE001 (any escape is a failed check, with its trace)
        import traceback
        traceback.print_exc()
        ck.check(f"{name}: ran to the end", False, repr(e))
    print(f"{name}: {ck.passed} passed, {ck.failed} failed in {h.now() - t0:.1f} s"
          f"{' (' + slow + ' build)' if slow else ''}")
    return 1 if ck.failed or not ck.passed else 0


if __name__ == "__main__":
    sys.exit(main())
