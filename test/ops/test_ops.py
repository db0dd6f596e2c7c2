#!/usr/bin/python3
"""The production surface against the real binary: admin API, channels, limits, liveness,
graceful drain. Usage: test_ops.py WSPUSH_BINARY. Needs python3-websockets (run with
/usr/bin/python3) and promtool (Debian package prometheus) for the metrics check.
Every wait is bounded; only loopback; only processes this script started are signalled.
"""
import asyncio
import http.client
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

import websockets

results = {"passed": 0, "failed": 0}


def check(cond, what):
    results["passed" if cond else "failed"] += 1
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    return cond


class Server:
    def __init__(self, binary, *extra):
        self.log = tempfile.NamedTemporaryFile(prefix="wspush-ops-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--bind", "127.0.0.1", "--interval", "0",
             "--admin", "127.0.0.1:0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = self.admin = None
        deadline = time.time() + 10
        while time.time() < deadline and self.port is None:
            m = re.search(r"event=(?:supervisor_)?listening .*? port=(\d+) .*admin_port=(\d+)",
                          self.text())
            if m:
                self.port, self.admin = int(m.group(1)), int(m.group(2))
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("wspush did not start:\n" + self.text())

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def url(self, query=""):
        return f"ws://127.0.0.1:{self.port}/{query}"

    def http(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                return None
        return self.proc.returncode

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if results["failed"]:
            print(self.text()[-4000:])
        os.unlink(self.log.name)


async def recv(ws, timeout):
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except (asyncio.TimeoutError, websockets.ConnectionClosed):
        return None


async def silent(clients, timeout):
    """True when none of clients receives anything within timeout."""
    got = await asyncio.gather(*(recv(w, timeout) for w in clients))
    return all(g is None for g in got)


def metric(text, name_and_labels):
    """Sum of the samples whose line starts with name_and_labels."""
    total = 0
    for line in text.splitlines():
        if line.startswith(name_and_labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def admin_and_channels(binary, tmp):
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write("s3cret-token\n")
    srv = Server(binary, "--threads", "2", "--admin-token-file", token_file)
    try:
        auth = {"Authorization": "Bearer s3cret-token"}
        st, _, _ = srv.http("POST", "/publish", b"hi")
        check(st == 401, f"publish without the token is 401 ({st})")
        st, _, _ = srv.http("POST", "/publish", b"hi", {"Authorization": "Bearer s3cret-tokeX"})
        check(st == 401, f"publish with a wrong token of the same length is 401 ({st})")
        st, _, _ = srv.http("POST", "/publish", b"hi", {"Authorization": "Bearer short"})
        check(st == 401, f"publish with a short wrong token is 401 ({st})")

        plain = [await websockets.connect(srv.url(), ping_interval=None) for _ in range(4)]
        on_a = [await websockets.connect(srv.url("?channels=a"), ping_interval=None)
                for _ in range(3)]
        on_b = [await websockets.connect(srv.url("?channels=b"), ping_interval=None)
                for _ in range(3)]
        on_a_time = await websockets.connect(srv.url("?channels=a,time"), ping_interval=None)

        st, _, body = srv.http("POST", "/publish", "héllo everyone".encode(), auth)
        reply = json.loads(body) if st == 202 else {}
        check(st == 202 and reply.get("seq") == 1 and "connections" in reply,
              f"publish with the token is 202 with seq and connections ({st} {body!r})")
        got = [await recv(w, 5) for w in plain + [on_a_time]]
        check(all(g == "héllo everyone" for g in got), "the default channel got it")
        check(await silent(on_a + on_b, 0.3),
              "clients that chose other channels did not")

        st, _, body = srv.http("POST", "/publish?channel=a", b"for-a", auth)
        check(st == 202, f"publish on channel a is 202 ({st})")
        got = [await recv(w, 5) for w in on_a + [on_a_time]]
        check(all(g == "for-a" for g in got), "every subscriber of a got it")
        check(await silent(on_b + plain, 0.3),
              "a client on b (and default clients) never see a's message")
        st, _, _ = srv.http("POST", "/publish?channel=b", b"for-b", auth)
        got = [await recv(w, 5) for w in on_b]
        check(st == 202 and all(g == "for-b" for g in got), "channel b reaches b")
        check(await silent(on_a + [on_a_time] + plain, 0.3),
              "nobody else sees b's message")

        srv.proc.send_signal(signal.SIGUSR1)  # the time tick goes to the default channel
        got = [await recv(w, 5) for w in plain + [on_a_time]]
        check(all(g and '"time":' in g for g in got), "ticks reach default and a,time clients")
        check(await silent(on_a + on_b, 0.3),
              "ticks do not reach clients that left the default channel")

        st, _, body = srv.http("POST", "/publish", b"x" * (64 * 1024 + 1), auth)
        check(st == 413, f"a 64 KiB + 1 body is 413 ({st} {body[:60]!r})")
        st, _, body = srv.http("POST", "/publish", b"ok \xff\xfe", auth)
        check(st == 400 and b"UTF-8" in body, f"invalid UTF-8 is 400 ({st} {body!r})")
        st, _, _ = srv.http("POST", "/publish?channel=bad%20name", b"x", auth)
        check(st == 400, f"an invalid channel name is 400 ({st})")
        st, _, body = srv.http("POST", "/publish", b"y" * (64 * 1024), auth)
        check(st == 202, f"exactly 64 KiB is accepted ({st})")
        got = [await recv(w, 5) for w in plain]
        check(all(g == "y" * 65536 for g in got), "and delivered whole")

        for q in ("?channels=", "?channels=a,,b", "?channels=" + ",".join("c%d" % i for i in range(9)),
                  "?channels=has%20space"):
            try:
                ws = await websockets.connect(srv.url(q), ping_interval=None)
                await ws.close()
                check(False, f"{q} was upgraded")
            except websockets.InvalidStatusCode as e:
                check(e.status_code == 400, f"{q} is refused with 400 before the upgrade")

        st, hdrs, body = srv.http("GET", "/healthz")
        check(st == 200, f"/healthz is 200 while serving ({st})")
        st, hdrs, body = srv.http("GET", "/stats")
        stats = json.loads(body)
        check(st == 200 and stats.get("connections") == 11, f"/stats counts 11 connections ({body[:80]!r})")
        st, hdrs, body = srv.http("GET", "/metrics")
        text = body.decode()
        check(st == 200 and "text/plain" in hdrs.get("Content-Type", ""), "/metrics is text/plain")
        check(metric(text, "wspush_connections{") == 11, "wspush_connections sums to 11")
        check(metric(text, 'wspush_handshake_failures_total{status="400"}') >= 4,
              "the refused channel lists count as handshake failures (400)")
        promtool = shutil.which("promtool")
        if check(promtool is not None, "promtool is installed"):
            r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                               timeout=30)
            check(r.returncode == 0, "promtool check metrics accepts /metrics: "
                  + (r.stdout + r.stderr).decode()[:500])
        for w in plain + on_a + on_b + [on_a_time]:
            await w.close()
        rc = srv.stop()
        check(rc == 0, f"exit 0 ({rc})")
    finally:
        srv.cleanup()


def raw_upgrade(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(1)
        if not chunk:
            raise RuntimeError("closed during the upgrade")
        data += chunk
    assert data.startswith(b"HTTP/1.1 101"), data
    return s


async def eof_within(s, seconds):
    """True when the server closes s within seconds (reading and discarding everything).
    Polls without blocking so that the websockets clients keep answering pings."""
    s.setblocking(False)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if s.recv(65536) == b"":
                return True
        except BlockingIOError:
            await asyncio.sleep(0.05)
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


async def limits_and_liveness(binary):
    # Slow consumer: one shard, a tiny queue cap; a client that never reads is closed with
    # 1008 while a reading client in the same shard keeps receiving.
    srv = Server(binary, "--threads", "1", "--max-pending", "20000", "--max-conns", "3")
    try:
        slow = raw_upgrade(srv.port, rcvbuf=4096)
        good = await websockets.connect(srv.url(), ping_interval=None, max_size=None)
        third = await websockets.connect(srv.url(), ping_interval=None)
        try:
            extra = await websockets.connect(srv.url(), ping_interval=None)
            await extra.close()
            check(False, "a 4th connection over --max-conns 3 was accepted")
        except websockets.InvalidStatusCode as e:
            check(e.status_code == 503, f"over --max-conns: 503 ({e.status_code})")
        await third.close()  # it would stop reading too (its queue fills) and be a 2nd slow one
        # Enough that the kernel's socket buffers (send buffers autotune up to 4 MiB) fill and
        # the rest queues in the server.
        received = 0
        for i in range(160):
            st, _, _ = srv.http("POST", "/publish", b"z" * 60000)
            if await recv(good, 5) == "z" * 60000:
                received += 1
        check(received == 160, f"the reading client got all 160 large messages ({received})")
        st, _, body = srv.http("GET", "/metrics")
        text = body.decode()
        check(metric(text, "wspush_slow_consumer_closes_total") == 1,
              "exactly one slow consumer was closed (1008)")
        check(await eof_within(slow, 10), "the slow consumer's socket was closed")
        check(metric(text, 'wspush_connections_closed_total{reason="refused"}') == 1,
              "the refused connection is counted")
        await good.close()
        slow.close()
        srv.stop()
    finally:
        srv.cleanup()

    # Ping timeout: --ping-interval 1; a raw client that never answers is closed; a client
    # that answers pings (the websockets library does) stays.
    srv = Server(binary, "--threads", "2", "--ping-interval", "1")
    try:
        mute = raw_upgrade(srv.port)
        alive = await websockets.connect(srv.url(), ping_interval=None)
        check(await eof_within(mute, 8), "a client that never answers pings is closed")
        await asyncio.sleep(0.5)
        check(alive.open, "a client that answers pings stays open")
        st, _, body = srv.http("GET", "/metrics")
        text = body.decode()
        check(metric(text, 'wspush_connections_closed_total{reason="ping_timeout"}') == 1,
              "the ping timeout is counted")
        check(metric(text, "wspush_pings_total{") >= 2, "pings were sent")
        await alive.close()
        mute.close()
        srv.stop()
    finally:
        srv.cleanup()


async def drain(binary):
    # SIGTERM: /healthz turns 503 and the 1001 closes are spread over --drain-seconds.
    srv = Server(binary, "--threads", "2", "--drain-seconds", "2")
    try:
        clients = [await websockets.connect(srv.url(), ping_interval=None) for _ in range(40)]
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        st, body = None, b""
        for _ in range(50):  # the signal is handled asynchronously: poll, bounded at 5 s
            st, _, body = srv.http("GET", "/healthz")
            if st == 503:
                break
            await asyncio.sleep(0.1)
        check(st == 503, f"/healthz is 503 while draining ({st} {body!r})")

        async def closed_at(ws):
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except websockets.ConnectionClosed as e:
                return (time.time() - t0, e.code)
            except asyncio.TimeoutError:
                return (None, None)
            return (None, None)
        res = await asyncio.gather(*(closed_at(w) for w in clients))
        codes = [c for _, c in res]
        times = sorted(t for t, _ in res if t is not None)
        check(all(c == 1001 for c in codes), f"every client got 1001 ({codes.count(1001)}/40)")
        span = times[-1] - times[0] if times else 0
        check(span >= 1.0, f"the closes were spread over the window (first to last {span:.2f} s)")
        rc = srv.proc.wait(timeout=20)
        check(rc == 0, f"exit 0 after the drain ({rc})")
    finally:
        srv.cleanup()


async def main_async(binary):
    tmp = tempfile.mkdtemp(prefix="wspush-ops-")
    try:
        await admin_and_channels(binary, tmp)
        await limits_and_liveness(binary)
        await drain(binary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print("usage: test_ops.py WSPUSH", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(asyncio.wait_for(main_async(sys.argv[1]), 240))
    except Exception as e:  # a crash or timeout of the test itself is a failure
        check(False, f"test aborted: {e!r}")
    print(f"ops: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
