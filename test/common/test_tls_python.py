#!/usr/bin/python3
"""The TLS core against foreign TLS stacks: Debian's Python ssl module and openssl s_client.

usage: /usr/bin/python3 test_tls_python.py PATH_TO_TLSPEER PATH_TO_MKCERTS_SH

tlspeer (test/common/tlspeer.c) is a blocking echo server made only of common/tlshs.c and
common/tlsrec.c; it prints one line per connection when the connection ends, which this
script checks beside what the client saw. TLS 1.2 and 1.3: messages both ways, resumption
with a ticket, ALPN, a client that does not trust the CA, plain HTTP; s_client for KeyUpdate
(its interactive "k"/"K" commands) and TLS 1.2 renegotiation ("R"). Every wait is bounded.
Prints one line per failed check and "tls python: N passed, M failed"; exits 1 on failure.
"""

import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

STEP_TIMEOUT = 10  # seconds for any one wait: a hang bound, not a speed check


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {name} {detail}".rstrip(), flush=True)
        return ok


class Peer:
    """The tlspeer process we started; its stdin closing ends it."""

    def __init__(self, binary, cert, key):
        self.proc = subprocess.Popen([binary, cert, key], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.line()
        m = re.match(r"port (\d+)$", line)
        if not m:
            raise RuntimeError(f"tlspeer said {line!r}")
        self.port = int(m.group(1))

    def line(self):
        r, _, _ = select.select([self.proc.stdout], [], [], STEP_TIMEOUT)
        if not r:
            raise TimeoutError("tlspeer said nothing")
        return self.proc.stdout.readline().strip()

    def conn(self):
        """The server's summary of the connection that just ended, as a dict."""
        line = self.line()
        return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv) | (
            {"failed": True} if " failed " in f" {line} " else {})

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def client_ctx(ca, version, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"{len(buf)} of {n} bytes")
        buf += chunk
    return buf


def session(c, peer, ctx, name, sess=None):
    """One connection: echo several sizes, close cleanly; returns (ssl session, reused,
    server line)."""
    raw = socket.create_connection(("127.0.0.1", peer.port), timeout=STEP_TIMEOUT)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=sess)
    total = 0
    for n in (1, 30, 16384, 16385, 65536):
        msg = os.urandom(n)
        s.sendall(msg)
        c.check(f"{name}: echo {n}", recv_exact(s, n) == msg)
        total += n
    c.check(f"{name}: alpn", s.selected_alpn_protocol() == "http/1.1")
    got = s.session
    reused = s.session_reused
    s.unwrap()  # close_notify both ways: raises if the server did not answer with one
    raw.close()
    line = peer.conn()
    c.check(f"{name}: server summary", line.get("bytes") == str(total) and
            line.get("end") == "close_notify" and line.get("alpn") == "1", str(line))
    c.check(f"{name}: resumed agrees", line.get("resumed") == ("1" if reused else "0"), str(line))
    return got, reused, line


def python_cases(c, peer, ca):
    for version, vname, want in ((ssl.TLSVersion.TLSv1_3, "1.3", "0x0304"),
                                 (ssl.TLSVersion.TLSv1_2, "1.2", "0x0303")):
        ctx = client_ctx(ca, version, ["http/1.1"])  # Python resumes within one context only
        sess, reused, line = session(c, peer, ctx, f"python TLS {vname}")
        c.check(f"python TLS {vname}: version", line.get("version") == want, str(line))
        c.check(f"python TLS {vname}: full handshake first", not reused)
        _, reused, _ = session(c, peer, ctx, f"python TLS {vname} resumed", sess)
        c.check(f"python TLS {vname}: resumed with the ticket", reused)

    # ALPN without http/1.1: no_application_protocol, counted as "alpn".
    raw = socket.create_connection(("127.0.0.1", peer.port), timeout=STEP_TIMEOUT)
    try:
        client_ctx(ca, ssl.TLSVersion.TLSv1_3, ["h2"]).wrap_socket(
            raw, server_hostname="localhost")
        c.check("alpn h2 only refused", False, "handshake succeeded")
    except ssl.SSLError as e:
        c.check("alpn h2 only refused", "no application protocol" in str(e).lower(), str(e))
    raw.close()
    c.check("alpn h2 only: server reason", peer.conn().get("reason") == "alpn")

    # A client that does not trust our CA aborts with an alert.
    raw = socket.create_connection(("127.0.0.1", peer.port), timeout=STEP_TIMEOUT)
    other = os.path.join(os.path.dirname(ca), "other-ca.pem")
    try:
        client_ctx(other, ssl.TLSVersion.TLSv1_3).wrap_socket(raw, server_hostname="localhost")
        c.check("untrusted CA refused", False, "handshake succeeded")
    except ssl.SSLCertVerificationError:
        c.check("untrusted CA refused", True)
    raw.close()
    c.check("untrusted CA: server reason", peer.conn().get("reason") == "client_alert")

    # Plain HTTP to the TLS port.
    raw = socket.create_connection(("127.0.0.1", peer.port), timeout=STEP_TIMEOUT)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    c.check("plain HTTP: closed", raw.recv(100) == b"")
    raw.close()
    c.check("plain HTTP: server reason", peer.conn().get("reason") == "not_tls")


class SClient:
    """openssl s_client in interactive mode; lines we type are echoed back by tlspeer (and
    only then appear on its stdout: a pipe does not echo)."""

    def __init__(self, port, ca, version_flag):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", version_flag,
             "-CAfile", ca, "-servername", "localhost", "-verify_return_error"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            bufsize=0)
        self.out = b""

    def wait_for(self, needle, count=1):
        deadline = time.monotonic() + STEP_TIMEOUT
        while self.out.count(needle) < count:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not r:
                return False
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return self.out.count(needle) >= count
            self.out += chunk
        return True

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(STEP_TIMEOUT)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            self.proc.wait()


def s_client_cases(c, peer, ca):
    sc = SClient(peer.port, ca, "-tls1_3")
    c.check("s_client: handshake", sc.wait_for(b"Verify return code: 0 (ok)"), sc.out[-300:])
    sc.type("hello-one")
    c.check("s_client: echo before KeyUpdate", sc.wait_for(b"hello-one\n"))
    sc.type("K")  # KeyUpdate, update_requested: we must answer with ours
    c.check("s_client: KeyUpdate sent", sc.wait_for(b"KEYUPDATE"))
    sc.type("hello-two")
    c.check("s_client: echo after requested KeyUpdate", sc.wait_for(b"hello-two\n"))
    sc.type("k")  # KeyUpdate, update_not_requested
    # s_client drops whatever else the same read() brought in after a command letter
    c.check("s_client: second KeyUpdate sent", sc.wait_for(b"KEYUPDATE", 2))
    sc.type("hello-three")
    c.check("s_client: echo after KeyUpdate", sc.wait_for(b"hello-three\n"))
    sc.close()
    line = peer.conn()
    c.check("s_client: server saw two KeyUpdates, answered one",
            line.get("keyupdates") == "2" and line.get("requested") == "1", str(line))
    c.check("s_client: TLS 1.3 closed cleanly", line.get("end") == "close_notify", str(line))

    sc = SClient(peer.port, ca, "-tls1_2")
    c.check("s_client 1.2: handshake", sc.wait_for(b"Verify return code: 0 (ok)"))
    sc.type("hello-four")
    c.check("s_client 1.2: echo", sc.wait_for(b"hello-four\n"))
    sc.type("R")  # renegotiation: refused
    c.check("s_client 1.2: renegotiation attempted", sc.wait_for(b"RENEGOTIATING"))
    line = peer.conn()
    c.check("s_client 1.2: renegotiation refused", line.get("end") == "renegotiation", str(line))
    sc.close()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, mkcerts = sys.argv[1], sys.argv[2]
    c = Checks()
    d = tempfile.mkdtemp(prefix="wsp-tls-py-")
    try:
        subprocess.run([mkcerts, d], check=True, timeout=60)
        ca = os.path.join(d, "ca.pem")
        for cert in ("ec", "rsa"):
            peer = Peer(binary, os.path.join(d, f"{cert}.pem"), os.path.join(d, f"{cert}.key"))
            try:
                python_cases(c, peer, ca)
                if cert == "ec" and shutil.which("openssl"):
                    s_client_cases(c, peer, ca)
            finally:
                peer.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"tls python: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
