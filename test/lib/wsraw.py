"""The raw-socket side of wsptest (which re-exports all of it): WebSocket frames built and
parsed byte by byte, a non-blocking client with deadlines, and readers that multiplex many
clients. For byte-exact frames and for peers that misbehave, where python3-websockets would
hide or refuse what is tested. Standard library only."""

import base64
import errno
import hashlib
import os
import re
import select
import socket
import struct
import time

HOST = "127.0.0.1"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def now():
    return time.monotonic()


def ready(objs, timeout, write=False):
    """The objects (descriptors, sockets, anything with fileno()) readable, or writable,
    within timeout seconds. poll(), not select(): tests hold descriptors past FD_SETSIZE."""
    p = select.poll()
    by_fd = {}
    for o in objs:
        by_fd[o if isinstance(o, int) else o.fileno()] = o
        p.register(o, select.POLLOUT if write else select.POLLIN | select.POLLPRI)
    return [by_fd[fd] for fd, _ in p.poll(max(0, timeout) * 1000)]


def connect_nb(host, port):
    """A non-blocking socket with its connect to (host, port) under way; None when the
    connect failed at once (the socket closed)."""
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return None
    return s


def recv_nb(sock, n=4096):
    """What a non-blocking sock holds: bytes, b"" once the peer closed (or reset), None when
    nothing is there yet."""
    try:
        return sock.recv(n)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def new_key():
    return base64.b64encode(os.urandom(16))


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def upgrade_request(path="/", key=None, host=b"127.0.0.1", version=b"HTTP/1.1", extra=b""):
    """(request bytes, key)."""
    key = key or new_key()
    req = (b"GET " + path.encode() + b" " + version + b"\r\nHost: " + host + b"\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
           b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    return req, key


def parse_head(buf):
    """(status, head, rest) once buf holds a whole response head, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, rest = buf[:end + 4], buf[end + 4:]
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    return (int(m.group(1)) if m else -1), head, rest


def check_101(head, key):
    accept = re.search(rb"(?im)^sec-websocket-accept:\s*(\S+)\s*$", head)
    return (re.search(rb"(?im)^upgrade:\s*websocket\s*$", head) is not None and
            accept is not None and accept.group(1) == accept_for(key))


def frame(op, payload=b"", fin=True, mask=True, rsv=0):
    """A client frame (masked unless told otherwise)."""
    n = len(payload)
    b0, m = (0x80 if fin else 0) | rsv | op, 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def parse_frame(buf):
    """(fin, opcode, payload, used) for a whole unmasked server frame at buf's start, else
    None. Raises ValueError on a masked server frame."""
    if len(buf) < 2:
        return None
    if buf[1] & 0x80:
        raise ValueError("masked server frame")
    n, h = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, h = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, h = struct.unpack(">Q", buf[2:10])[0], 10
    if len(buf) < h + n:
        return None
    return bool(buf[0] & 0x80), buf[0] & 0x0F, bytes(buf[h:h + n]), h + n


def parse_time_msg(payload):
    """(time_ms, seq) of a {"time":..,"seq":..} broadcast, else None."""
    m = re.fullmatch(rb'\{"time":(\d+),"seq":(\d+)\}', payload)
    return (int(m.group(1)), int(m.group(2))) if m else None


class Conn:
    """A non-blocking client socket used with deadlines. Reads buffer into self.buf."""

    def __init__(self, host, port, rcvbuf=None, timeout=10, source=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setblocking(False)
        self.buf = bytearray()
        self.eof = False
        self.error = None

    def fileno(self):
        return self.sock.fileno()

    def send_all(self, data, timeout=10):
        """Sends everything; returns None or the errno name that stopped it."""
        view = memoryview(data)
        deadline = now() + timeout
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                if not ready([self.sock], deadline - now(), write=True):
                    return "ETIMEDOUT"
            except OSError as e:
                return errno.errorcode.get(e.errno, str(e.errno))
        return None

    def fill(self, deadline):
        """Reads what arrives before deadline; False once the peer closed (or reset)."""
        if self.eof:
            return False
        if not ready([self.sock], deadline - now()):
            return True
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return True
        except OSError as e:
            self.eof, self.error = True, errno.errorcode.get(e.errno, str(e.errno))
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self, timeout=10):
        """(status, head) or (None, None) on EOF/timeout; frames after it stay buffered."""
        deadline = now() + timeout
        while True:
            got = parse_head(self.buf)
            if got:
                status, head, rest = got
                self.buf = bytearray(rest)
                return status, head
            if now() >= deadline or not self.fill(deadline):
                return None, None

    def read_frame(self, timeout=10, raw=False):
        """(fin, opcode, payload), or with raw the frame's bytes as sent; None on EOF or
        timeout."""
        deadline = now() + timeout
        while True:
            got = parse_frame(self.buf)
            if got:
                fin, op, payload, used = got
                wire = bytes(self.buf[:used])
                del self.buf[:used]
                return wire if raw else (fin, op, payload)
            if now() >= deadline or not self.fill(deadline):
                return None

    def wait_eof(self, timeout=10, keep=False):
        """Reads (discarding unless keep) until the peer closes. True when it did."""
        deadline = now() + timeout
        while now() < deadline:
            if not self.fill(deadline):
                return True
            if not keep:
                self.buf.clear()
        return False

    def close(self):
        self.sock.close()


def ws_connect(host, port, path="/", timeout=10, rcvbuf=None):
    """An upgraded Conn; raises on anything but a correct 101."""
    c = Conn(host, port, rcvbuf=rcvbuf, timeout=timeout)
    req, key = upgrade_request(path)
    err = c.send_all(req, timeout)
    status, head = c.read_head(timeout) if err is None else (None, None)
    if status != 101 or not check_101(head, key):
        c.close()
        raise RuntimeError(f"upgrade failed: {err} {status} {head!r}")
    return c


class Readers:
    """Raw clients that read every broadcast, multiplexed. parse maps a text payload to
    (time, seq), or None for a bad one."""

    def __init__(self, parse=None):
        self.parse = parse or parse_time_msg
        self.conns = []
        self.seqs = {}  # conn -> [seq, ...]
        self.bad = []

    def add(self, c):
        self.conns.append(c)
        self.seqs[c] = []

    def pump(self, timeout):
        """Waits up to timeout for any reader to have bytes, then reads what is there."""
        wait = timeout
        while True:
            live = [c for c in self.conns if not c.eof]
            got = ready(live, wait) if live else []
            if not got:
                return
            wait = 0  # drain what else is ready, without waiting again
            for c in got:
                c.fill(now())
                self._parse(c)

    def _parse(self, c):
        while True:
            try:
                f = parse_frame(c.buf)
            except ValueError as e:
                self.bad.append(str(e))
                c.buf.clear()
                return
            if not f:
                return
            fin, op, payload, used = f
            del c.buf[:used]
            msg = self.parse(payload) if op == OP_TEXT and fin else None
            if msg is None:
                self.bad.append(f"op={op} fin={fin} payload={payload[:60]!r}")
            else:
                self.seqs[c].append(msg[1])

    def have(self, seq):
        return all(s and s[-1] >= seq for c, s in self.seqs.items() if not c.eof)

    def wait_seq(self, seq, timeout=10):
        """Pumps until every live reader has seen seq. True when they have."""
        deadline = now() + timeout
        while now() < deadline and not self.have(seq):
            self.pump(0.05)
        return self.have(seq)

    def close(self):
        for c in self.conns:
            c.close()
