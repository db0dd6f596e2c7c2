#!/usr/bin/python3
"""wss:// against the real wspush binary (issue #18), one scenario per run, with a test CA
made at test time by the openssl CLI (test/common/mkcerts.sh):

  startup    a missing, unreadable or non-PEM certificate or key, a key of another
             certificate: one error line and exit 1 (under --procs too); one flag alone: 2
  broadcast  python3-websockets over TLS 1.3 and TLS 1.2 receive every broadcast, a 60 KB
             one intact; a client that does not trust the CA fails its handshake and the
             server keeps serving; a ticket resumes; the metrics count all of it
  hostile    plain HTTP, random bytes, a garbage record, a truncated ClientHello (EOF) and
             stalled ones (nothing, half a ClientHello: the handshake timeout) are closed
             and counted by reason; a TLS 1.2 renegotiation (openssl s_client "R") is
             refused and counted; an open client keeps receiving throughout
  flood      ClientHellos that never finish, far more than --tls-max-handshakes: handshakes
             in progress never pass the limit (the rest wait in the listen backlog), memory
             stays bounded, every one is closed by the timeout, a legitimate client gets in
  reload     SIGHUP with a new certificate: new connections see it (serial), old ones stay
             open and keep receiving, a ticket from before still resumes; a bad pair keeps
             the current certificate and logs an error
  procs      --procs 2: clients of both workers receive; a ticket issued by one worker
             resumes on the other; SIGHUP to the supervisor reloads every worker
  keyupdate  openssl s_client (TLS 1.3) sends KeyUpdate with update_requested ("K")
             mid-connection and keeps receiving broadcasts
  slow       a client with a tiny receive buffer gets 80 messages of 60 KB intact, in
             order, exactly once (4.8 MB: more than the kernel buffers, so short writes
             queue ciphertext: io_uring and libuv paths); a client that never reads is
             closed as a slow consumer (--max-pending) while another reads everything

usage: /usr/bin/python3 test_tls.py SCENARIO PATH_TO_WSPUSH
"""
import os
import signal
import socket
import ssl
import subprocess
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402

HOST = wt.HOST
TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def tls_server(binary, certs, *flags, cert="ec", **kw):
    return wt.Server(binary, "--tls-cert", os.path.join(certs, f"{cert}.pem"), "--tls-key",
                     os.path.join(certs, f"{cert}.key"), *flags, **kw)


def failures(srv, reason):
    return srv.metric(f'wspush_tls_handshake_failures_total{{reason="{reason}"}}')


def handshakes(srv, kind, worker=None):
    """TLS handshakes completed of kind (full, resumed), by one worker or by all."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in srv.metrics().splitlines()
               if line.startswith("wspush_tls_handshakes_total{") and f'kind="{kind}"' in line
               and (worker is None or f'worker="{worker}"' in line))


async def wss(srv, ctx, n=1):
    """n python3-websockets clients over TLS."""
    url = f"wss://{HOST}:{srv.port}/"
    return [await wt.connect(url, ssl=ctx) for _ in range(n)]


def publish(ck, srv, body, what):
    st, reply = srv.publish(body)
    ck.check(f"{what}: published", st == 202, f"status {st}")
    return reply.get("seq")


# ---- startup ----

def scenario_startup(ck, binary):
    certs = wt.make_certs()
    c = lambda name: os.path.join(certs, name)  # noqa: E731
    cases = [
        ("missing certificate", c("nope.pem"), c("ec.key"), "nope.pem: No such file"),
        ("missing key", c("ec.pem"), c("nope.key"), "nope.key: No such file"),
        ("certificate not PEM", c("garbage.pem"), c("ec.key"), "not a PEM certificate"),
        ("key not PEM", c("ec.pem"), c("garbage.pem"), "not a PEM private key"),
        ("key of another certificate", c("ec.pem"), c("other.key"), "does not match"),
        ("a directory as the key", c("ec.pem"), certs, "key"),
    ]
    for procs in (None, 2):
        for what, cert, key, want in cases:
            args = [binary, "--port", "0", "--bind", HOST, "--admin", "off", "--tls-cert", cert,
                    "--tls-key", key] + (["--procs", str(procs)] if procs else [])
            p = subprocess.run(args, capture_output=True, text=True, timeout=30)
            err = p.stderr.strip().splitlines()
            name = f"{what}{' (--procs 2)' if procs else ''}"
            ck.check(f"{name}: exit 1", p.returncode == 1, f"rc {p.returncode}")
            ck.check(f"{name}: one error line naming it",
                     len(err) == 1 and err[0].startswith("wspush: ") and want in err[0],
                     repr(p.stderr[-300:]))
    p = subprocess.run([binary, "--tls-cert", c("ec.pem")], capture_output=True, text=True,
                       timeout=30)
    ck.check("--tls-cert without --tls-key: usage, exit 2",
             p.returncode == 2 and "--tls-cert needs --tls-key" in p.stderr, p.stderr[:200])


# ---- broadcast ----

async def scenario_broadcast(ck, binary):
    certs = wt.make_certs()
    ca = os.path.join(certs, "ca.pem")
    with tls_server(binary, certs) as srv:
        v13 = await wss(srv, wt.tls_ctx(ca, TLS13), 10)
        v12 = await wss(srv, wt.tls_ctx(ca, TLS12), 5)
        ck.check("TLS 1.3 and 1.2 clients upgraded", len(v13) == 10 and len(v12) == 5)
        ck.check("versions as asked",
                 {c.transport.get_extra_info("ssl_object").version() for c in v13} == {"TLSv1.3"}
                 and {c.transport.get_extra_info("ssl_object").version() for c in v12}
                 == {"TLSv1.2"})
        try:  # a blocking socket: it flushes its alert (asyncio's transport may not)
            wt.TlsConn(srv.port, wt.tls_ctx(os.path.join(certs, "other-ca.pem")))
            ck.check("a client that does not trust the CA fails its handshake", False)
        except ssl.SSLCertVerificationError:
            ck.check("a client that does not trust the CA fails its handshake", True)
        ck.check("counted as client_alert",
                 wt.poll(lambda: failures(srv, "client_alert") == 1, 5))
        late = await wss(srv, wt.tls_ctx(ca))
        clients = v13 + v12 + late
        for i, body in enumerate([b"first", b"x" * 60000, b'{"n":3}']):
            publish(ck, srv, body, f"message {i + 1}")
            got = await wt.recv_all(clients)
            ck.check(f"message {i + 1} ({len(body)} B) reached all {len(clients)} intact",
                     all(g is not None and g.encode() == body for g in got),
                     f"{sum(g is not None and g.encode() == body for g in got)} ok")
        # A ticket: the session of one connection resumes on the next.
        ctx = wt.tls_ctx(ca)
        first = wt.TlsConn(srv.port, ctx)
        second = wt.TlsConn(srv.port, ctx, session=first.session)
        ck.check("a second connection resumes with the ticket of the first",
                 not first.reused and second.reused)
        publish(ck, srv, b"to raw", "raw clients")
        ck.check("the resumed connection receives",
                 second.read_frame() == (True, wt.OP_TEXT, b"to raw"))
        first.close()
        second.close()
        await wt.close_all(clients)
        ok = wt.poll(lambda: srv.metric("wspush_tls_handshakes_in_progress ") == 0 and
                     handshakes(srv, "full") == 17 and handshakes(srv, "resumed") == 1, 5)
        ck.check("metrics: 17 full and 1 resumed handshakes, none in progress", ok,
                 f"full {handshakes(srv, 'full')} resumed {handshakes(srv, 'resumed')}")
        ck.check("metrics: the path is user_records",
                 srv.metric('wspush_tls_path{worker="0",path="user_records"}') == 1 and
                 srv.metric('wspush_tls_sessions_total{path="user_records"}') == 18)
        ck.check("the log says which path, once",
                 srv.count("event=tls_path path=user_records", "no tls ULP") == 1)
        ck.check("no error closes", srv.metric('wspush_connections_closed_total{reason="error"}')
                 == 0)


# ---- hostile ----

def closed_soon(sock, timeout):
    """True when the server closes sock (EOF or reset) within timeout, reading anything."""
    sock.settimeout(timeout)
    deadline = wt.now() + timeout
    try:
        while wt.now() < deadline:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except (TimeoutError, socket.timeout):
        return False
    return False


def raw(port):
    return socket.create_connection((HOST, port), timeout=10)


def scenario_hostile(ck, binary):
    certs = wt.make_certs()
    ca = os.path.join(certs, "ca.pem")
    hello = wt.client_hello()
    with tls_server(binary, certs, "--handshake-timeout", "2", threads=1) as srv:
        ctx = wt.tls_ctx(ca)
        watcher = wt.TlsConn(srv.port, ctx)
        cases = [("plain HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                 ("random bytes", b"\x01" + os.urandom(200)),
                 ("an empty ClientHello", b"\x16\x03\x01\x00\x04\x01\x00\x00\x00")]
        for what, data in cases:
            s = raw(srv.port)
            s.sendall(data)
            ck.check(f"{what}: closed at once", closed_soon(s, 1.5))
            s.close()
        s = raw(srv.port)
        s.sendall(hello[:len(hello) // 2])
        s.close()  # a truncated ClientHello, then EOF
        stalls = [raw(srv.port), raw(srv.port)]
        t0 = wt.now()
        stalls[1].sendall(hello[:len(hello) // 2])  # half a ClientHello, then nothing
        ck.check("stalled handshakes closed by the handshake timeout",
                 all(closed_soon(s, 5) for s in stalls))
        ck.check("not before it (2 s)", wt.now() - t0 >= 1.9, f"{wt.now() - t0:.2f} s")
        for s in stalls:
            s.close()
        renegotiate(ck, srv, ca)
        reasons = {r: failures(srv, r) for r in
                   ("not_tls", "protocol", "eof", "timeout", "renegotiation")}
        ok = wt.poll(lambda: [failures(srv, r) for r in reasons] == [2, 1, 1, 2, 1], 5)
        ck.check("each counted by reason: not_tls 2, protocol 1, eof 1, timeout 2, "
                 "renegotiation 1", ok,
                 str({r: failures(srv, r) for r in reasons}))
        publish(ck, srv, b"still here", "after the attacks")
        ck.check("the open client kept receiving",
                 watcher.read_frame() == (True, wt.OP_TEXT, b"still here"))
        fresh = wt.TlsConn(srv.port, ctx)
        ck.check("and a new client still gets in", fresh.reused is False)
        fresh.close()
        watcher.close()


class SClient:
    """openssl s_client, typed to through stdin; what it prints is collected."""

    def __init__(self, port, ca, version_flag):
        wt.need("openssl")
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"{HOST}:{port}", version_flag, "-CAfile", ca,
             "-verify_return_error", "-crlf"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
            preexec_fn=wt.die_with_parent)
        self.out = b""

    def wait_for(self, needle, timeout=10):
        """True once needle was printed (bounded); False on timeout or exit first."""
        deadline = wt.now() + timeout
        while needle not in self.out:
            if not wt.ready([self.proc.stdout], deadline - wt.now()):
                return False
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return needle in self.out
            self.out += chunk
        return True

    def type(self, text):
        self.proc.stdin.write(text.encode())

    def upgrade(self):
        req, key = wt.upgrade_request()
        self.type(req.decode().replace("\r\n", "\n"))  # -crlf puts the CRs back
        return self.wait_for(b"101 Switching Protocols") and self.wait_for(wt.accept_for(key))

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def renegotiate(ck, srv, ca):
    sc = SClient(srv.port, ca, "-tls1_2")
    try:
        ck.check("s_client TLS 1.2: upgraded", sc.upgrade(), sc.out[-300:])
        sc.type("R\n")  # renegotiation: refused with no_renegotiation, then closed
        ck.check("s_client TLS 1.2: renegotiation attempted", sc.wait_for(b"RENEGOTIATING"))
        ck.check("s_client TLS 1.2: closed for it",
                 wt.poll(lambda: srv.metric('wspush_connections_closed_total{reason="tls"}')
                         == 1, 10))
    finally:
        sc.close()


# ---- flood ----

def scenario_flood(ck, binary):
    """ClientHellos that never finish: each holds a handshake (~35 KB of OpenSSL state)
    until the timeout. 120 of them against --tls-max-handshakes 30."""
    certs = wt.make_certs()
    ca = os.path.join(certs, "ca.pem")
    hello = wt.client_hello()
    limit, n = 30, 120
    with tls_server(binary, certs, "--handshake-timeout", "2", "--tls-max-handshakes",
                    str(limit), threads=2) as srv:
        watcher = wt.TlsConn(srv.port, wt.tls_ctx(ca))
        rss0 = srv.rss_kb()
        socks = []
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((HOST, srv.port))
            socks.append(s)
        wt.ready(socks, 2, write=True)
        for s in socks:
            try:
                s.send(hello)  # the kernel takes it even for a connection still in the backlog
            except OSError:
                pass
        peak, waited, rss_peak = 0, 0, 0
        deadline = wt.now() + 30
        while wt.now() < deadline:
            text = srv.metrics()
            peak = max(peak, wt.metric(text, "wspush_tls_handshakes_in_progress "))
            waited = max(waited, srv.backlog())
            rss_peak = max(rss_peak, srv.rss_kb())
            if wt.metric(text, 'wspush_tls_handshake_failures_total{reason="timeout"}') >= n:
                break
            wt.ready([], 0.05)
        ck.check(f"handshakes in progress never above {limit}", 0 < peak <= limit,
                 f"peak {peak}")
        ck.check("the others waited in the listen backlog", waited > 0, f"max backlog {waited}")
        ck.check("accepting paused and resumed",
                 srv.metric("wspush_tls_accept_paused_total") > 0)
        ck.check(f"all {n} closed by the handshake timeout and counted",
                 failures(srv, "timeout") == n, str(failures(srv, "timeout")))
        bound = wt.rss_bound_kb(ck.slow)
        ck.check("memory bounded", rss_peak - rss0 < bound, f"{rss_peak - rss0} kB")
        ck.note(f"RSS {rss0} -> peak {rss_peak} kB with {int(peak)} handshakes in progress")
        for s in socks:
            s.close()
        publish(ck, srv, b"after the flood", "after the flood")
        ck.check("the client that was open receives",
                 watcher.read_frame() == (True, wt.OP_TEXT, b"after the flood"))
        late = wt.TlsConn(srv.port, wt.tls_ctx(ca))
        ck.check("a new client gets in", late.serial is not None)
        late.close()
        watcher.close()


# ---- reload ----

def scenario_reload(ck, binary):
    one, two = wt.make_certs(), wt.make_certs()
    cas = [os.path.join(one, "ca.pem"), os.path.join(two, "ca.pem")]
    ctx = wt.tls_ctx(cas)
    live = os.path.join(wt.make_certs(), "live")  # the files the server is told to read
    os.mkdir(live)

    def install(src, cert, key):
        for name, what in ((cert, "cert.pem"), (key, "key.pem")):
            with open(os.path.join(src, name), "rb") as f, \
                    open(os.path.join(live, what), "wb") as g:
                g.write(f.read())

    install(one, "ec.pem", "ec.key")
    with wt.Server(binary, "--tls-cert", os.path.join(live, "cert.pem"), "--tls-key",
                   os.path.join(live, "key.pem")) as srv:
        old = [wt.TlsConn(srv.port, ctx) for _ in range(3)]
        serial1 = old[0].serial
        install(two, "rsa.pem", "rsa.key")
        srv.signal(signal.SIGHUP)
        ck.check("reloaded, logged with the new serial",
                 srv.wait_log("event=tls_reloaded", f"serial={serial_hex(two, 'rsa.pem')}"))
        new = wt.TlsConn(srv.port, ctx)
        ck.check("a new connection gets the new certificate",
                 new.serial != serial1 and new.serial == serial_hex(two, "rsa.pem"),
                 f"{serial1} -> {new.serial}")
        resumed = wt.TlsConn(srv.port, ctx, session=old[0].session)
        ck.check("a ticket from before the reload still resumes", resumed.reused)
        publish(ck, srv, b"after reload", "after the reload")
        ck.check("old connections stay open and receive",
                 all(c.read_frame() == (True, wt.OP_TEXT, b"after reload")
                     for c in old + [new, resumed]))
        install(one, "ec.pem", "other.key")  # a key of another certificate
        srv.signal(signal.SIGHUP)
        ck.check("a bad pair is refused and logged",
                 srv.wait_log("event=tls_reload_failed", "does not match"))
        after = wt.TlsConn(srv.port, ctx)
        ck.check("the current certificate stays", after.serial == new.serial)
        publish(ck, srv, b"after bad reload", "after the bad reload")
        ck.check("everyone still receives",
                 all(c.read_frame() == (True, wt.OP_TEXT, b"after bad reload")
                     for c in old + [new, resumed, after]))
        for c in old + [new, resumed, after]:
            c.close()


def serial_hex(d, cert):
    """The serial of a certificate file, as Python's ssl and the log print it."""
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", os.path.join(d, cert)],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return out.strip().split("=", 1)[1].upper()


# ---- procs ----

def scenario_procs(ck, binary):
    certs = wt.make_certs()
    ctx = wt.tls_ctx(os.path.join(certs, "ca.pem"))
    with tls_server(binary, certs, threads=1, procs=2) as srv:
        first = wt.TlsConn(srv.port, ctx)
        conns = [wt.TlsConn(srv.port, ctx, session=first.session) for _ in range(24)]
        ck.check("every connection resumed with one ticket", all(c.reused for c in conns),
                 f"{sum(c.reused for c in conns)} of {len(conns)}")
        per = srv.worker_conns(25)
        ck.check("the connections landed on both workers", per and min(per) > 0, str(per))
        ck.check("both workers resumed tickets (one of them issued by the other)",
                 wt.poll(lambda: all(handshakes(srv, "resumed", w) > 0 for w in (0, 1)), 5),
                 f"{[handshakes(srv, 'resumed', w) for w in (0, 1)]}")
        publish(ck, srv, b"both", "to both workers")
        ck.check("every client of both workers receives",
                 all(c.read_frame() == (True, wt.OP_TEXT, b"both") for c in [first] + conns))
        srv.signal(signal.SIGHUP)
        ck.check("SIGHUP to the supervisor reloads both workers",
                 all(srv.wait_log(f"worker={w} ", "event=tls_reloaded") for w in (0, 1)))
        for c in [first] + conns:
            c.close()


# ---- keyupdate ----

def scenario_keyupdate(ck, binary):
    certs = wt.make_certs()
    ca = os.path.join(certs, "ca.pem")
    with tls_server(binary, certs, threads=1) as srv:
        sc = SClient(srv.port, ca, "-tls1_3")
        try:
            ck.check("s_client TLS 1.3: upgraded", sc.upgrade(), sc.out[-300:])
            publish(ck, srv, b"before-keyupdate", "before")
            ck.check("received before", sc.wait_for(b"before-keyupdate"))
            sc.type("K\n")  # KeyUpdate, update_requested: the server must answer with its own
            ck.check("KeyUpdate sent", sc.wait_for(b"KEYUPDATE"))
            for i in range(3):
                publish(ck, srv, f"after-keyupdate-{i}".encode(), f"after {i}")
                ck.check(f"received after the KeyUpdate ({i})",
                         sc.wait_for(f"after-keyupdate-{i}".encode()), sc.out[-200:])
        finally:
            sc.close()
        ck.check("no TLS error closed it",
                 srv.metric('wspush_connections_closed_total{reason="tls"}') == 0)


# ---- slow ----

def read_messages(c, n, timeout):
    """Reads n text messages from c, slowly (its receive buffer is tiny), or until timeout."""
    got = []
    deadline = wt.now() + timeout
    while len(got) < n and wt.now() < deadline:
        f = c.read_frame(deadline - wt.now())
        if f is None:
            break
        if f[1] == wt.OP_TEXT:
            got.append(f[2])
    return got


def scenario_slow(ck, binary):
    certs = wt.make_certs()
    ctx = wt.tls_ctx(os.path.join(certs, "ca.pem"))
    n, size = 80, 60000  # 4.8 MB: more than tcp_wmem's 4 MiB lets the kernel hold
    with tls_server(binary, certs, "--max-pending", str(8 << 20), threads=1) as srv:
        tiny = wt.TlsConn(srv.port, ctx, rcvbuf=4096)
        never = wt.TlsConn(srv.port, ctx, rcvbuf=4096)
        bodies = [(f"{i:04d}".encode() * (size // 4)) for i in range(n)]
        for i, b in enumerate(bodies):
            publish(ck, srv, b, f"message {i}") if i in (0, n - 1) else srv.publish(b)
        got = read_messages(tiny, n, 60)
        ck.check(f"{n} messages of {size} B: intact, in order, exactly once", got == bodies,
                 f"{len(got)} received; first bad: "
                 f"{next((i for i, (a, b) in enumerate(zip(got, bodies)) if a != b), None)}")
        if os.environ.get("WSP_IT_IO_URING") == "on":
            ck.check("io_uring sends came up short: their ciphertext was queued",
                     srv.metric("wspush_uring_short_sends_total") > 0)
        ck.check("nobody was closed", srv.metric("wspush_slow_consumer_closes_total") == 0 and
                 srv.metric('wspush_connections_closed_total{reason="error"}') == 0)
        tiny.close()
        never.close()
    with tls_server(binary, certs, "--max-pending", "65536", threads=1) as srv:
        reader = wt.TlsConn(srv.port, ctx)
        never = wt.TlsConn(srv.port, ctx, rcvbuf=4096)
        sent = 0
        while sent < 200 and srv.metric("wspush_slow_consumer_closes_total") == 0:
            srv.publish(f"{sent:04d}".encode() * 15000)
            got = reader.read_frame()
            if got is None or got[2] != f"{sent:04d}".encode() * 15000:
                break
            sent += 1
        ck.check("the client that never reads is closed as a slow consumer",
                 wt.poll(lambda: srv.metric("wspush_slow_consumer_closes_total") == 1, 10),
                 f"after {sent} messages")
        ck.check("the reading client got every message meanwhile, intact", 0 < sent < 200)
        reader.close()
        never.close()


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items()
             if name.startswith("scenario_")}

if __name__ == "__main__":
    sys.exit(wt.main(SCENARIOS))
