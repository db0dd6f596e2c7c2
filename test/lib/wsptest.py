"""What every Python test of wspush shares: the real server (one process, --procs, --redis),
a throwaway redis-server, clients (python3-websockets, or raw sockets for byte-exact frames:
wsraw.py, re-exported here), bounded polls, checks and the scenario runner. Debian 12's
/usr/bin/python3; the standard library only at import (python3-websockets is imported on
first use), so that the bench's stdlib-only harnesses can use it too:

    sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
    import wsptest as wt

The rules it keeps for the tests: every wait is bounded (poll()/apoll(), deadlines on every
read); every process started here dies with the test (PR_SET_PDEATHSIG) and is signalled by its
own pid only; ports are ephemeral (--port 0, read back from the log) or chosen free at run
time. `make test` installs every tool (Makefile DEBS), so a missing one is a failure that names
it (need()); only Skip exits 77, for what `make test` cannot provide (root, a kernel feature),
and test/SKIPS must list the test for the run to pass.
"""

import asyncio
import ctypes
import http.client
import inspect
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsraw import (  # noqa: F401 (re-exported: a test imports wsptest alone)
    now, HOST, GUID, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, ready, connect_nb,
    recv_nb, new_key, accept_for, upgrade_request, parse_head, check_101, frame, parse_frame,
    parse_time_msg, Conn, ws_connect, Readers)

SKIP = 77  # ctest's SKIP_RETURN_CODE for every test that can skip
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Skip(Exception):
    """The test needs what `make test` cannot provide here (exit 77; test/SKIPS lists it)."""


class Missing(Exception):
    """A tool `make test` installs is not there: a failure that names it."""

    def __init__(self, tool, package):
        super().__init__(f"{tool} is missing (Debian package {package}; `make deps` installs it)")
        self.tool = tool


def need(tool, package=None):
    """The path of tool on PATH; raises Missing naming it (and its package) otherwise."""
    path = shutil.which(tool)
    if path is None:
        raise Missing(tool, package or tool)
    return path


def websockets():
    """The python3-websockets module (Debian's 10.4); raises Missing when not installed."""
    try:
        import websockets as ws  # noqa: PLC0415 (on first use: most tests never need it)
    except ImportError:
        raise Missing(f"the websockets module of {sys.executable}", "python3-websockets")
    return ws


# ---- checks and the runner ----

class Checks:
    """Counts checks; prints each failure at once, so that a timeout still shows what went
    wrong. slow names the sanitizer the server binary carries ("" for none)."""

    def __init__(self, name, slow=""):
        self.name = name
        self.slow = slow
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok: {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {what} {detail}".rstrip(), flush=True)
        return ok

    def note(self, text):
        """A measured behaviour worth reading in the ctest log, not a check."""
        print(f"{self.name}: {text}", flush=True)


def main(scenarios, timeout=240, binary=True):
    """Runs one scenario and returns the exit code: 0, 1 on any failed check (or none made),
    77 on Skip (unless a check failed before). scenarios is a function (usage: PROG WSPUSH
    [ARG...]) or a dict of them (usage: PROG SCENARIO WSPUSH [ARG...]). Each is called as
    fn(ck, binary, *args), or fn(ck, *args) when binary is False; a coroutine function runs
    under asyncio, bounded by timeout seconds."""
    argv = sys.argv[1:]
    prog = os.path.basename(sys.argv[0])
    if callable(scenarios):
        name, fn = prog.removesuffix(".py"), scenarios
    elif argv and argv[0] in scenarios:
        name, fn = argv[0], scenarios[argv.pop(0)]
    else:
        fn = None
    if fn is None or not argv:
        which = "" if callable(scenarios) else "{" + ",".join(scenarios) + "} "
        print(f"usage: {prog} {which}{'PATH_TO_WSPUSH ' if binary else ''}ARG...",
              file=sys.stderr)
        return 2
    if binary:
        argv[0] = os.path.abspath(argv[0])
    ck = Checks(name, sanitized(argv[0]) if binary else "")
    raise_nofile()
    t0 = now()
    try:
        if inspect.iscoroutinefunction(fn):
            asyncio.run(asyncio.wait_for(fn(ck, *argv), timeout))
        else:
            fn(ck, *argv)
    except Skip as e:
        print(f"SKIP: {name}: {e}", flush=True)
        if not ck.failed:
            return SKIP
    except Missing as e:
        ck.check(f"{name}: {e.tool} is installed", False, str(e))
    except Exception as e:  # noqa: BLE001 (any escape is a failed check, with its trace)
        traceback.print_exc()
        ck.check(f"{name}: ran to the end", False, repr(e))
    for srv in Server.started:  # every server's log, when something failed
        if ck.failed:
            srv.tail()
        srv.log_file.close()
    print(f"{name}: {ck.passed} passed, {ck.failed} failed in {now() - t0:.1f} s"
          f"{' (' + ck.slow + ' build)' if ck.slow else ''}", flush=True)
    return 1 if ck.failed or not ck.passed else 0


# ---- time, polls, processes ----

def poll(cond, timeout, step=0.02):
    """Calls cond until it returns something true or timeout seconds pass; returns the last
    result (falsy on timeout). The one way these tests wait for anything."""
    deadline = now() + timeout
    while True:
        got = cond()
        if got or now() >= deadline:
            return got
        time.sleep(step)


async def apoll(cond, timeout, step=0.02):
    """poll() inside asyncio: the clients' tasks keep running while it waits."""
    deadline = now() + timeout
    while True:
        got = cond()
        if got or now() >= deadline:
            return got
        await asyncio.sleep(step)


def die_with_parent():
    """preexec_fn: PR_SET_PDEATHSIG = SIGKILL, so a crashed or killed test leaves nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def raise_nofile(want=None):
    """Raises the soft open-file limit to the hard one (or want); returns the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(hard, max(soft, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def sanitized(binary):
    """Which sanitizer runtime the binary carries ("" if none): such builds get looser
    bounds on time and memory, never on correctness."""
    try:
        with open(binary, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    for name in (b"__tsan_init", b"__asan_init", b"__ubsan_handle"):
        if name in data:
            return name.decode().split("_")[2]
    return ""


def rss_bound_kb(slow):
    """How far a server's RSS may grow under an attack test before it counts as unbounded:
    sanitizer runtimes keep quarantines and shadow memory of their own."""
    return {"": 16 << 10, "asan": 96 << 10, "ubsan": 16 << 10, "tsan": 256 << 10}[slow]


def free_port():
    """A loopback TCP port free right now (for servers that cannot take --port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def metric(text, prefix):
    """Sum of the Prometheus samples whose line starts with prefix (a name, maybe '{...')."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


# ---- the server ----

class Server:
    """One wspush (a supervisor with --procs) on an ephemeral port, started with
    --port 0 --bind BIND --interval INTERVAL --admin 127.0.0.1:0, --threads, --procs, --redis
    and --io-uring from $WSP_IT_IO_URING (ctest's send path), then flags (later flags win).
    Waits for the listening line (and every worker's), reads port and admin port. Only its
    own pid is ever signalled. A context manager: close() on the way out. main() prints the
    log of every server a failed test started."""

    started = []

    def __init__(self, binary, *flags, threads=2, procs=None, redis=None, interval=0,
                 admin=True, bind=HOST, prefix=(), env=None, start_timeout=30):
        self.binary = binary
        self.log_file = tempfile.NamedTemporaryFile(prefix="wspush-test-", suffix=".log")
        args = list(prefix) + [binary, "--port", "0", "--bind", bind, "--interval",
                               str(interval), "--admin", "127.0.0.1:0" if admin else "off"]
        if threads is not None:
            args += ["--threads", str(threads)]
        if procs is not None:
            args += ["--procs", str(procs)]
        if redis is not None:
            args += ["--redis", redis.url if isinstance(redis, Redis) else redis]
        if os.environ.get("WSP_IT_IO_URING"):
            args += ["--io-uring", os.environ["WSP_IT_IO_URING"]]
        self.args = args + list(flags)
        self.procs = procs
        self.bind = bind
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, env=env, preexec_fn=die_with_parent)
        self.pid = self.proc.pid  # prlimit and the like exec the server: the same pid
        Server.started.append(self)
        self.port = self.admin = None
        m = poll(lambda: not self.alive() or re.search(
            r"event=(?:supervisor_)?listening .*?\bport=(\d+)(?: .*admin_port=(\d+))?",
            self.log()), start_timeout)
        workers = [f"worker={i} " for i in range(procs or 0)]
        if m and m is not True and poll(lambda: all(self.count(w, "event=listening")
                                                    for w in workers), start_timeout):
            self.port = int(m.group(1))
            self.admin = int(m.group(2)) if m.group(2) and admin else None
            return
        self.close()
        raise RuntimeError(f"wspush did not start: {' '.join(self.args)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def log(self):
        with open(self.log_file.name, errors="replace") as f:
            return f.read()

    def count(self, *needles):
        """Log lines that hold every needle."""
        return sum(1 for line in self.log().splitlines() if all(n in line for n in needles))

    def wait_log(self, *needles, timeout=10):
        """True once a log line holds every needle, within timeout seconds."""
        return bool(poll(lambda: self.count(*needles), timeout))

    def wait_re(self, pattern, timeout=10):
        """The first match of pattern in the log, waited for up to timeout seconds."""
        return poll(lambda: re.search(pattern, self.log()), timeout) or None

    def tail(self, chars=int(os.environ.get("WSP_TAIL", "6000"))):
        """Prints the end of the log (for a failed test's output)."""
        print(f"--- wspush log ({' '.join(self.args)}):\n{self.log()[-chars:]}", flush=True)

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def worker_pids(self):
        """The current pid of each worker slot, from the supervisor's log."""
        return {int(m.group(1)): int(m.group(2)) for m in
                re.finditer(r"event=worker_started worker=(\d+) pid=(\d+)", self.log())}

    def url(self, query=""):
        return f"ws://{self.bind}:{self.port}/{query}"

    def http(self, method, path, body=None, headers=None):
        """One admin API request: (status, headers, body bytes)."""
        c = http.client.HTTPConnection(HOST, self.admin, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def publish(self, body, channel=None, token=None):
        """POST /publish; (status, the JSON reply or {})."""
        path = "/publish" + (f"?channel={channel}" if channel else "")
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        st, _, data = self.http("POST", path, body if isinstance(body, bytes) else body.encode(),
                                hdrs)
        return st, (json.loads(data) if st == 202 else {})

    def publish_user(self, user, body, token=None):
        """POST /publish?user=USER (str or bytes, percent-encoded here): a message for the
        connections of one token's sub (issue #16); (status, the JSON reply or {})."""
        path = "/publish?user=" + urllib.parse.quote(user, safe="")
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        st, _, data = self.http("POST", path, body if isinstance(body, bytes) else body.encode(),
                                hdrs)
        return st, (json.loads(data) if st == 202 else {})

    def metrics(self):
        return self.http("GET", "/metrics")[2].decode()

    def metric(self, prefix):
        return metric(self.metrics(), prefix)

    def stats(self):
        return json.loads(self.http("GET", "/stats")[2])

    def worker_conns(self, total=None, timeout=10):
        """Open connections per worker of a --procs server, from /stats; with total, polled
        until they add up to it (a shard counts a connection as it sends the 101)."""
        def get():
            per = [sum(sh["connections"] for sh in w["shards"]) for w in self.stats()["workers"]]
            return per if total is None or sum(per) == total else None
        return get() if total is None else poll(get, timeout)

    def held(self):
        """Connections the server holds in any state (accepted, not yet closed), per /metrics."""
        text = self.metrics()
        return (metric(text, "wspush_connections_accepted_total") -
                metric(text, "wspush_connections_closed_total"))

    def backlog(self):
        """Connections waiting in the kernel's accept queues of the server's port (all its
        listeners): /proc/net/tcp gives a listening socket's queue as its rx_queue."""
        total = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(path) as f:
                for line in f.readlines()[1:]:
                    f = line.split()
                    local, state, queues = f[1], f[3], f[4]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == self.port:
                        total += int(queues.split(":")[1], 16)
        return total

    def cpu_seconds(self):
        """utime + stime of the whole process (all threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)

    def cpu_share(self, seconds):
        """CPU used over the next `seconds` (a measuring window) as a share of one core."""
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

    def wait(self, timeout=30):
        """Waits for it to exit by itself (after a signal the test sent); SIGKILL after
        timeout. The exit code, or None when it had to be killed."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def stop(self, timeout=30):
        """SIGTERM, a bounded wait, SIGKILL. The exit code (negative: a signal)."""
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
        """Kills it if still running; the log stays for main() to print."""
        self.kill()


# ---- Redis ----

class Redis:
    """A throwaway redis-server on a free loopback port: nothing on disk, dies with the test,
    killed by pid. Speaks RESP itself (no redis-cli). Restartable on the same port (an outage).
    A context manager."""

    def __init__(self, start=True):
        self.exe = need("redis-server")
        self.port = free_port()
        self.proc = self.sock = None
        if start:
            self.start()

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self, timeout=10):
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
        if not poll(self._connect, timeout, 0.05):
            self.close()
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _connect(self):
        try:
            self.sock = socket.create_connection((HOST, self.port), timeout=10)
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def command(self, *args):
        """Sends one command; returns its reply (int, str, bytes, list or None)."""
        args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(args) +
                          b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        return self._reply(self.sock.makefile("rb"))

    def _reply(self, f):
        line = f.readline()
        if not line.endswith(b"\r\n"):
            raise RuntimeError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply(f) for _ in range(n)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def publish(self, channel, msg):
        """PUBLISH; returns how many subscribers it reached."""
        return self.command("PUBLISH", channel, msg)

    def subscribers(self, channel):
        return self.command("PUBSUB", "NUMSUB", channel)[1]

    def wait_subscribers(self, channel, n, timeout=15):
        """True once exactly n clients subscribe to channel, within timeout seconds."""
        return bool(poll(lambda: self.subscribers(channel) == n, timeout, 0.05))

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait(10)

    close = stop


# ---- clients: python3-websockets ----

async def connect(url, **kw):
    """A python3-websockets client; no pings of its own, bounded open and close."""
    opts = {"ping_interval": None, "open_timeout": 10, "close_timeout": 2, "max_size": None}
    opts.update(kw)
    return await websockets().connect(url, **opts)


async def connect_many(url, n, batch=100, **kw):
    """n clients, batch at a time."""
    clients = []
    while len(clients) < n:
        clients += await asyncio.gather(*(connect(url, **kw)
                                          for _ in range(min(batch, n - len(clients)))))
    return clients


async def recv(ws, timeout=10):
    """The next message on ws, or None on a timeout or a close."""
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except (asyncio.TimeoutError, websockets().ConnectionClosed):
        return None


async def recv_all(clients, timeout=10):
    """The next message of every client (None where none came), concurrently."""
    return await asyncio.gather(*(recv(ws, timeout) for ws in clients))


async def close_code(ws, timeout=15):
    """The close code the server ends ws with (None: no close within timeout, or a message
    came first)."""
    try:
        await asyncio.wait_for(ws.recv(), timeout)
    except websockets().ConnectionClosed as e:
        return e.code
    except asyncio.TimeoutError:
        pass
    return None


async def close_all(clients):
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


# ---- TLS (issue #18) ----

MKCERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../common/mkcerts.sh")


def make_certs():
    """A throwaway CA and server certificates made now by test/common/mkcerts.sh with the
    openssl CLI (no key is ever committed): the directory, removed when the test exits.
    ca.pem, ec.pem/ec.key, rsa.pem/rsa.key, other.key, other-ca.pem, garbage.pem, ..."""
    need("openssl")
    d = tempfile.mkdtemp(prefix="wspush-certs-")
    import atexit  # noqa: PLC0415 (only tests with TLS need it)
    atexit.register(shutil.rmtree, d, True)
    subprocess.run(["/bin/sh", MKCERTS, d], check=True, timeout=60, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return d


def tls_ctx(ca, version=None):
    """A client ssl.SSLContext trusting the CA file(s) ca (a path or a list), for
    127.0.0.1 (the test certificates name it), pinned to version when given."""
    import ssl  # noqa: PLC0415
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for f in ([ca] if isinstance(ca, str) else ca):
        ctx.load_verify_locations(f)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl over memory BIOs, no socket)."""
    import ssl  # noqa: PLC0415
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    rd, wr = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = ctx.wrap_bio(rd, wr, server_hostname="localhost")
    try:
        s.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return wr.read()


class TlsConn:
    """A blocking TLS client (Python's ssl) with a deadline on every read: the WebSocket
    upgrade by hand, then raw frames. session resumes a ticket of an earlier connection
    (.session); .serial is the server certificate's serial number."""

    def __init__(self, port, ctx, session=None, rcvbuf=None, timeout=10, upgrade=True):
        raw = socket.socket()
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.connect((HOST, port))
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
        except Exception:
            raw.close()
            raise
        self.buf = bytearray()
        self.serial = self.sock.getpeercert().get("serialNumber")
        if upgrade:
            req, key = upgrade_request()
            self.sock.sendall(req)
            got = self.read_until(lambda: parse_head(self.buf), timeout)
            if not got or got[0] != 101 or not check_101(got[1], key):
                self.close()
                raise RuntimeError(f"upgrade failed: {got!r}")
            self.buf = bytearray(got[2])

    @property
    def session(self):
        return self.sock.session

    @property
    def reused(self):
        return self.sock.session_reused

    def read_until(self, cond, timeout=10):
        """Reads until cond() is true (returns it) or EOF / timeout (None)."""
        deadline = now() + timeout
        while True:
            got = cond()
            if got or now() >= deadline:
                return got or None
            self.sock.settimeout(max(0.01, deadline - now()))
            try:
                data = self.sock.recv(1 << 16)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def read_frame(self, timeout=10):
        """(fin, opcode, payload) of the next server frame, or None."""
        got = self.read_until(lambda: parse_frame(self.buf), timeout)
        if not got:
            return None
        del self.buf[:got[3]]
        return got[:3]

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
