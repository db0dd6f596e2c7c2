#!/usr/bin/python3
"""wspush against a third-party client: Debian's python3-websockets (10.4).

usage: /usr/bin/python3 test_python_client.py PATH_TO_WSPUSH

Starts the server on 127.0.0.1 with an ephemeral port; 20 clients connect and ping;
SIGUSR1 must give each the same {"time":..,"seq":1} text message; SIGTERM must close each
with 1001 and the server must exit 0. Every wait is bounded. Prints one line per failed
check and a final "python client: N passed, M failed"; exits 1 on any failure, 77 when the
websockets package is missing (ctest reports a skip).
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

try:
    import websockets
except ImportError:
    print(f"python client: no websockets module for {sys.executable}: skipped")
    sys.exit(77)

NCLIENTS = 20
STEP_TIMEOUT = 10  # seconds for any one wait; a hang bound, not a speed check
OVERALL_TIMEOUT = 90


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


class Server:
    """The wspush process we started; only its own pid is ever signalled."""

    def __init__(self, binary):
        self.log = tempfile.NamedTemporaryFile(prefix="wspush-it-py-", suffix=".log")
        args = [binary, "--threads", "2", "--port", "0", "--bind", "127.0.0.1",
                "--interval", "0", "--admin", "127.0.0.1:0"]
        if os.environ.get("WSP_IT_IO_URING"):  # ctest runs the suite once per send path
            args += ["--io-uring", os.environ["WSP_IT_IO_URING"]]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"event=listening .*? port=(\d+)", self.read_log())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.01)
        raise RuntimeError(f"no listening line in 10 s; log:\n{self.read_log()}")

    def read_log(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def run(server, ck):
    url = f"ws://127.0.0.1:{server.port}/"
    clients = []
    for i in range(NCLIENTS):
        ws = await asyncio.wait_for(
            websockets.connect(url, ping_interval=None, close_timeout=STEP_TIMEOUT,
                               max_size=4096),
            STEP_TIMEOUT)
        clients.append(ws)
    ck.check("all clients connected", len(clients) == NCLIENTS)

    # websockets matches each pong to its ping by payload.
    async def ping(i, ws):
        waiter = await ws.ping(f"py-{i}".encode())
        await asyncio.wait_for(waiter, STEP_TIMEOUT)
        return True

    pongs = await asyncio.gather(*(ping(i, ws) for i, ws in enumerate(clients)),
                                 return_exceptions=True)
    for i, r in enumerate(pongs):
        ck.check(f"client {i} ping/pong", r is True, repr(r))

    t0 = int(time.time() * 1000)
    server.signal(signal.SIGUSR1)
    msgs = await asyncio.gather(*(asyncio.wait_for(ws.recv(), STEP_TIMEOUT) for ws in clients),
                                return_exceptions=True)
    t1 = int(time.time() * 1000)
    first = msgs[0]
    for i, m in enumerate(msgs):
        if not ck.check(f"client {i} got a text message", isinstance(m, str), repr(m)):
            continue
        ck.check(f"client {i} got the same message as client 0", m == first, repr(m))
        try:
            obj = json.loads(m)
        except ValueError as e:
            ck.check(f"client {i} message is JSON", False, f"{m!r}: {e}")
            continue
        ck.check(f"client {i} message keys", isinstance(obj, dict)
                 and sorted(obj) == ["seq", "time"], repr(obj))
        ck.check(f"client {i} seq 1", obj.get("seq") == 1, repr(obj))
        # Causality with a second of slack for a wall-clock step: stamped after the signal,
        # before we read it.
        tm = obj.get("time")
        ck.check(f"client {i} time plausible", isinstance(tm, int)
                 and t0 - 1000 <= tm <= t1 + 1000, f"{tm} not in [{t0}, {t1}]")

    server.signal(signal.SIGTERM)

    async def closed(ws):
        await asyncio.wait_for(ws.wait_closed(), STEP_TIMEOUT)
        return ws.close_code

    codes = await asyncio.gather(*(closed(ws) for ws in clients), return_exceptions=True)
    for i, c in enumerate(codes):
        ck.check(f"client {i} closed with 1001", c == 1001, repr(c))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ck = Checks()
    server = Server(sys.argv[1])
    try:
        try:
            asyncio.run(asyncio.wait_for(run(server, ck), OVERALL_TIMEOUT))
        except Exception as e:  # a timeout or a connection failure: one failed check
            ck.check("client run", False, repr(e))
        rc = server.wait(15)
        ck.check("server exit 0", rc == 0, f"exit {rc}")
        if ck.failed:
            print(f"server log:\n{server.read_log()}", end="")
    finally:
        server.kill()
        server.log.close()
    print(f"python client: {ck.passed} passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
