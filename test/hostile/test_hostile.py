#!/usr/bin/python3
"""Hostile clients against the real wspush binary: the protocol side (test_resources.py has
the descriptors, queues and vanished peers), one scenario per run.

usage: /usr/bin/python3 test_hostile.py SCENARIO PATH_TO_WSPUSH

Scenarios (each bounded well under its ctest TIMEOUT; loopback only; only processes this
script started are signalled, by pid):
  slowloris       1,000 connections sending one header byte a second, reconnecting, while
                  legitimate clients connect and receive SIGUSR1 broadcasts
  headers         oversized and endless headers, garbage, HTTP/1.0, HTTP/2, TLS ClientHello,
                  silent and half-closed peers: the right status or a close, never a hang
  burst           10,000 handshakes at once from two processes: 101s + clean 503s = 10,000
  floods          ping flood without reading; endless empty and 1-byte fragments

Prints a line per check, notes on measured behaviour and a summary; exits 1 on any failure
(a missing tool too: make test installs them all).
"""

import json
import os
import random
import re
import selectors
import signal
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as h  # noqa: E402

HOST = "127.0.0.1"


# ---- slowloris ----

def scenario_slowloris(ck, binary):
    """1,000 attackers keep a header byte a second flowing, reconnecting when closed; the
    handshake timeout (3 s) must close each, while legitimate clients keep connecting and
    receiving broadcasts."""
    slow = ck.slow
    h.raise_nofile()
    n_attackers, attack_s, timeout = 1000, 12.0, 3
    srv = h.Server(binary, "--handshake-timeout", str(timeout))
    try:
        sel = selectors.DefaultSelector()
        req, _ = h.upgrade_request()
        attackers = {}  # sock -> [connected_at, bytes_sent]
        lifetimes, early, got_bytes, connect_errors = [], 0, 0, 0

        def open_attacker():
            nonlocal connect_errors
            s = h.connect_nb(HOST, srv.port)
            if s is None:
                connect_errors += 1
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
                data = h.recv_nb(s)
                if data is None:
                    continue
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


def scenario_headers(ck, binary):
    slow = ck.slow
    timeout = 3
    srv = h.Server(binary, "--handshake-timeout", str(timeout))
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
                time.sleep(0.05)  # pacing, not a wait: one read of it all is as valid
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
                h.ready([c.sock], 0.01, write=True)
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
    sel = selectors.DefaultSelector()
    st = {}  # sock -> [state, key, buf]; state 0 connecting, 1 reading, 2 done
    for _ in range(count):
        s = h.connect_nb(HOST, port)
        if s is None:
            res["connect_error"] += 1
            continue
        req, key = h.upgrade_request()
        st[s] = [0, key, bytearray(), req]
        sel.register(s, 2)  # EVENT_WRITE: connected
    opened, pending = [], len(st)

    def done(s, outcome, keep=False):
        """s has its outcome: counted, no longer watched, closed unless kept."""
        nonlocal pending
        pending -= 1
        res[outcome] += 1
        st[s][0] = 2
        sel.unregister(s)
        if not keep:
            s.close()

    while pending and h.now() < deadline:
        for k, ev in sel.select(0.2):
            s = k.fileobj
            state = st[s]
            if state[0] == 0:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    done(s, "connect_error")
                    continue
                try:
                    s.send(state[3])  # < 200 bytes: fits an empty socket buffer
                except OSError:
                    done(s, "eof")
                    continue
                state[0] = 1
                sel.modify(s, 1)
                continue
            data = h.recv_nb(s)
            if data is None:
                continue
            if not data:
                done(s, "eof")
                continue
            state[2] += data
            got = h.parse_head(state[2])
            if not got:
                continue
            status, head, rest = got
            if status == 101:
                if not h.check_101(head, state[1]):
                    res["bad_accept"] += 1
                opened.append((s, bytearray(rest)))
            done(s, str(status) if status in (101, 503) else "other", keep=status == 101)
    res["timeout"] = pending
    sel.close()
    os.write(out_fd, (json.dumps(res) + "\n").encode())
    os.read(go_fd, 1)  # the parent has sent SIGUSR1
    sel = selectors.DefaultSelector()
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
            data = h.recv_nb(k.fileobj)
            if data is None:
                continue
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
    srv = h.Server(binary, *extra)
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


def scenario_burst(ck, binary):
    slow = ck.slow
    h.raise_nofile()
    agg, room = burst(binary, ck, slow, "burst", [])
    if room >= 10000:
        ck.check("burst: all served (room for them)", agg.get("101", 0) == 10000, str(agg))
    # Over --max-conns: exactly that many 101s, every other one a 503.
    agg, _ = burst(binary, ck, slow, "burst over --max-conns 4000", ["--max-conns", "4000"])
    ck.check("burst over --max-conns: exactly 4,000 served, 6,000 refused with 503",
             agg.get("101") == 4000 and agg.get("503") == 6000, str(agg))


# ---- floods ----

def scenario_floods(ck, binary):
    slow = ck.slow
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
        ck.check("floods: ping flood RSS bounded", peak - rss0 < h.rss_bound_kb(slow))
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
        answered = c.read_frame(5)
        code = (int.from_bytes(answered[2][:2], "big")
                if answered and answered[1] == h.OP_CLOSE and len(answered[2]) >= 2 else None)
        ck.note(f"endless empty fragments: {frames} frames in {took:.1f} s "
                f"({frames / took:.0f}/s, server CPU {cpu * 100:.0f}% of a core); answer "
                f"{answered}; RSS {rss0} -> {peak} KiB")
        # A message may come in at most WSP_WS_MAX_FRAGMENTS (1,024) frames (docs/SECURITY.md
        # known issue 3): the flood must end with 1009, not be accepted forever.
        ck.check("floods: empty-fragment flood closed with 1009", code == 1009, str(answered)[:80])
        ck.check("floods: empty-fragment flood RSS bounded", peak - rss0 < h.rss_bound_kb(slow))
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


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items()
             if name.startswith("scenario_")}


if __name__ == "__main__":
    sys.exit(h.main(SCENARIOS))
