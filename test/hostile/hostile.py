"""Shared pieces of the hostile-client tests (test_hostile.py): the wspush process we start,
raw client sockets, WebSocket frames, /proc sampling. Standard library only, Python 3.11.

Everything is bounded: every wait has a deadline, every process we start dies with us
(PR_SET_PDEATHSIG) and is stopped by its own pid, never by name.
"""

import base64
import ctypes
import errno
import hashlib
import os
import re
import resource
import select
import selectors
import signal
import socket
import struct
import subprocess
import tempfile
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
CLK_TCK = os.sysconf("SC_CLK_TCK")

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Skip(Exception):
    """The scenario cannot run here (exit 77: ctest reports a skip)."""


class Checks:
    """Counts checks; prints each failure at once so a timeout still shows what went wrong."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what} {detail}".rstrip(), flush=True)
        return ok

    def note(self, text):
        """A measured behaviour worth reading in the ctest log, not a check."""
        print(f"{self.name}: {text}", flush=True)


def now():
    return time.monotonic()


def ready(objs, timeout, write=False):
    """The objects (sockets or anything with fileno()) readable, or writable, within timeout
    seconds. poll(), not select(): the tests hold descriptors past FD_SETSIZE."""
    p = select.poll()
    ev = select.POLLOUT if write else select.POLLIN | select.POLLPRI
    by_fd = {}
    for o in objs:
        by_fd[o.fileno()] = o
        p.register(o, ev)
    return [by_fd[fd] for fd, _ in p.poll(max(0, timeout) * 1000)]


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: a crashed or killed test leaves no server behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def raise_nofile(want=None):
    """Raises the soft open-file limit to the hard one (or want); returns the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(hard, max(soft, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def sanitized(binary):
    """Which runtime the binary carries, if any: sanitizer builds get looser bounds."""
    with open(binary, "rb") as f:
        data = f.read()
    for name in (b"__tsan_init", b"__asan_init", b"__ubsan_handle"):
        if name in data:
            return name.decode().split("_")[2]
    return ""


def _help_has(binary, flag):
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, timeout=10,
                             preexec_fn=_die_with_parent)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag.encode() in out.stdout + out.stderr


class Server:
    """One wspush process on an ephemeral port; only its own pid is ever signalled."""

    def __init__(self, binary, extra=(), prefix=(), bind="127.0.0.1", threads=2,
                 start_timeout=30):
        self.binary = binary
        self.log_file = tempfile.NamedTemporaryFile(prefix="wspush-hostile-", suffix=".log")
        args = list(prefix) + [binary, "--threads", str(threads), "--port", "0", "--bind", bind,
                               "--interval", "0"]
        if _help_has(binary, "--admin"):
            args += ["--admin", "127.0.0.1:0"]  # parallel tests must not share a fixed port
        if os.environ.get("WSP_IT_IO_URING"):  # ctest picks the broadcast send path
            args += ["--io-uring", os.environ["WSP_IT_IO_URING"]]
        args += list(extra)
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid  # prlimit execs the server: same pid
        self.port = None
        self.bind = bind
        deadline = now() + start_timeout
        while now() < deadline and self.proc.poll() is None:
            m = re.search(r"event=listening .*\bport=(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.02)
        log = self.log()
        self.kill()
        raise RuntimeError(f"wspush did not start: {args}\n{log}")

    def log(self):
        with open(self.log_file.name, "r", errors="replace") as f:
            return f.read()

    def count(self, *needles):
        return sum(1 for line in self.log().splitlines() if all(n in line for n in needles))

    def wait_log(self, *needles, timeout=10):
        deadline = now() + timeout
        while now() < deadline:
            if self.count(*needles):
                return True
            time.sleep(0.02)
        return False

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def cpu_seconds(self):
        """utime + stime of the whole process (all threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)

    def cpu_share(self, seconds):
        """CPU used over the next `seconds` as a share of one core."""
        c0, t0 = self.cpu_seconds(), now()
        time.sleep(seconds)
        return (self.cpu_seconds() - c0) / (now() - t0)

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def nfds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def broadcast_failed_total(self):
        """Sum of failed= over the coordinator's event=broadcast lines."""
        return sum(int(m.group(1)) for m in
                   re.finditer(r"event=broadcast seq=\d+ .*\bfailed=(\d+)", self.log()))

    def stop(self, timeout=20):
        """SIGTERM, bounded wait, SIGKILL. Returns the exit code (negative: a signal)."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self):
        self.kill()
        self.log_file.close()


# ---- HTTP and frames ----

def new_key():
    return base64.b64encode(os.urandom(16))


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def upgrade_request(path="/", key=None, host=b"127.0.0.1", version=b"HTTP/1.1", extra=b""):
    key = key or new_key()
    req = (b"GET " + path.encode() + b" " + version + b"\r\n"
           b"Host: " + host + b"\r\n"
           b"Upgrade: websocket\r\n"
           b"Connection: Upgrade\r\n"
           b"Sec-WebSocket-Key: " + key + b"\r\n"
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
    return (re.search(rb"(?im)^upgrade:\s*websocket\s*$", head) is not None and
            re.search(rb"(?im)^sec-websocket-accept:\s*(\S+)\s*$", head).group(1) ==
            accept_for(key))


def frame(op, payload=b"", fin=True, mask=True, rsv=0):
    """A client frame (masked unless told otherwise)."""
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return hdr + key + body


def parse_frame(buf):
    """(fin, opcode, payload, used) for a whole unmasked server frame at buf's start, else
    None. Raises ValueError on a masked server frame."""
    if len(buf) < 2:
        return None
    n = buf[1] & 0x7F
    h = 2
    if buf[1] & 0x80:
        raise ValueError("masked server frame")
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
    m = re.fullmatch(rb'\{"time":(\d+),"seq":(\d+)\}', payload)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ---- blocking-with-deadline clients ----

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
                n = self.sock.send(view)
                view = view[n:]
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

    def read_frame(self, timeout=10):
        """(fin, opcode, payload) or None on EOF/timeout."""
        deadline = now() + timeout
        while True:
            got = parse_frame(self.buf)
            if got:
                fin, op, payload, used = got
                del self.buf[:used]
                return fin, op, payload
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
    """Legitimate clients that read every broadcast, multiplexed with select. parse maps a
    text payload to (time, seq), or None for a bad one."""

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
                while True:
                    try:
                        frame = parse_frame(c.buf)
                    except ValueError as e:
                        self.bad.append(str(e))
                        c.buf.clear()
                        break
                    if not frame:
                        break
                    fin, op, payload, used = frame
                    del c.buf[:used]
                    msg = self.parse(payload) if op == OP_TEXT and fin else None
                    if msg is None:
                        self.bad.append(f"op={op} fin={fin} payload={payload[:60]!r}")
                    else:
                        self.seqs[c].append(msg[1])

    def wait_seq(self, seq, timeout=10):
        """Pumps until every live reader has seen seq. True when they have."""
        deadline = now() + timeout
        while now() < deadline:
            if all(s and s[-1] >= seq for c, s in self.seqs.items() if not c.eof):
                return True
            self.pump(0.05)
        return all(s and s[-1] >= seq for c, s in self.seqs.items() if not c.eof)

    def close(self):
        for c in self.conns:
            c.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def selector():
    return selectors.DefaultSelector()
