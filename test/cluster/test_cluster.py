#!/usr/bin/python3
"""Prefork + Redis against a real redis-server: wspush --procs 2 --redis, 1,000 clients.

Usage: test_cluster.py WSPUSH_BINARY
Needs Debian's redis-server, redis-tools and python3-websockets (run with /usr/bin/python3).
Every wait is bounded; only loopback; only processes this script started are signalled.
"""
import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

import websockets

CLIENTS = 1000
results = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        results["passed"] += 1
        print(f"ok: {what}", flush=True)
    else:
        results["failed"] += 1
        print(f"FAIL: {what}", flush=True)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        # --save '' --appendonly no: nothing touches the disk; timeout bounds its life.
        self.proc = subprocess.Popen(
            ["timeout", "300", "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip()

    def publish(self, channel, msg):
        out = self.cli("PUBLISH", channel, msg)
        return int(out) if out.isdigit() else -1


class Server:
    def __init__(self, binary, redis_port, channel):
        self.log = tempfile.NamedTemporaryFile(prefix="wspush-cluster-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(
            [binary, "--procs", "2", "--threads", "1", "--port", "0", "--bind", "127.0.0.1",
             "--interval", "0", "--admin", "127.0.0.1:0",
             "--redis", f"redis://127.0.0.1:{redis_port}",
             "--channel", channel],
            stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline and self.port is None:
            m = re.search(r"event=supervisor_listening .*? port=(\d+)", self.text())
            if m:
                self.port = int(m.group(1))
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("wspush did not start:\n" + self.text())
        # The supervisor logs before it starts the workers: until one listens, a client finds
        # no listener on the port (ECONNREFUSED), so wait for both (slow under TSan).
        while time.time() < deadline + 20 and len(self.listening()) < 2:
            time.sleep(0.05)
        if len(self.listening()) < 2:
            raise RuntimeError("the workers did not start:\n" + self.text())

    def listening(self):
        return re.findall(r"worker=\d+ pid=\d+ event=listening ", self.text())

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def worker_pids(self):
        """Current pid of each worker slot, from the supervisor's log."""
        pids = {}
        for m in re.finditer(r"event=worker_started worker=(\d+) pid=(\d+)", self.text()):
            pids[int(m.group(1))] = int(m.group(2))
        return pids

    def written(self, seq):
        """Connections written per worker for the broadcast numbered seq in that worker."""
        out = {}
        for m in re.finditer(r"worker=(\d+) pid=\d+ event=broadcast seq=(\d+) .*written=(\d+)",
                             self.text()):
            if int(m.group(2)) == seq:
                out[int(m.group(1))] = int(m.group(3))
        return out

    def wait_log(self, pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.text()):
                return True
            time.sleep(0.05)
        return False


async def recv_all(clients, timeout):
    async def one(ws):
        try:
            return await asyncio.wait_for(ws.recv(), timeout)
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            return None
    return await asyncio.gather(*(one(ws) for ws in clients))


async def nothing_more(clients, wait):
    """True when no client has a further message within wait seconds (no duplicates)."""
    got = await recv_all(clients, wait)
    return all(g is None for g in got)


async def connect_many(port, n):
    clients = []
    for i in range(0, n, 100):
        batch = await asyncio.gather(*(
            websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=2,
                               open_timeout=10)
            for _ in range(min(100, n - i))))
        clients.extend(batch)
    return clients


async def wait_subscribers(redis, channel, n, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if redis.cli("PUBSUB", "NUMSUB", channel).split() == [channel, str(n)]:
            return True
        await asyncio.sleep(0.1)
    return False


async def run(binary):
    channel = "cluster-test"
    redis = Redis(free_port())
    # Redis unreachable at start: the server starts anyway and keeps retrying.
    server = Server(binary, redis.port, channel)
    try:
        early = await connect_many(server.port, 10)
        check(len(early) == 10, "clients connect while Redis is unreachable")
        await asyncio.sleep(1)
        redis.start()
        check(await wait_subscribers(redis, channel, 2, 15), "both workers subscribed once Redis came up")
        for ws in early:
            await ws.close()
        clients = await connect_many(server.port, CLIENTS)
        check(len(clients) == CLIENTS, f"{CLIENTS} clients connected")

        # 1. PUBLISH reaches every client exactly once.
        check(redis.publish(channel, "hello-1") == 2, "PUBLISH counted 2 subscribers")
        got = await recv_all(clients, 10)
        check(all(g == "hello-1" for g in got),
              f"every client got the published message ({sum(g == 'hello-1' for g in got)})")
        check(await nothing_more(clients, 0.5), "no client got it twice")
        written = server.written(1)
        check(sorted(written) == [0, 1] and sum(written.values()) == CLIENTS,
              f"both workers wrote, {written}")

        # 2. kill -9 one worker: the supervisor restarts it; the other's clients are untouched.
        pids = server.worker_pids()
        victim = 0
        os.kill(pids[victim], signal.SIGKILL)
        check(server.wait_log(rf"event=worker_exit worker={victim} pid={pids[victim]} "
                              r"signal=Killed", 10), "the supervisor saw the worker killed")
        check(server.wait_log(rf"event=worker_started worker={victim} pid=(?!{pids[victim]})\d+",
                              10), "the supervisor restarted it")
        check(await wait_subscribers(redis, channel, 2, 15), "the new worker subscribed")
        await asyncio.sleep(0.2)
        alive = [ws for ws in clients if ws.open]
        check(len(alive) == written[1 - victim],
              f"the other worker's {written[1 - victim]} clients are all still open "
              f"({len(alive)})")
        newcomers = await connect_many(server.port, 50)
        check(len(newcomers) == 50, "new clients connect after the restart")
        everyone = alive + newcomers
        check(redis.publish(channel, "hello-2") == 2, "PUBLISH after the restart")
        got = await recv_all(everyone, 10)
        check(all(g == "hello-2" for g in got), "survivors and newcomers got it")

        # 3. Redis down for 3 s: no client is disconnected; publishing works again after.
        redis.stop()
        await asyncio.sleep(3)
        check(all(ws.open for ws in everyone), "no client disconnected while Redis was down")
        redis.start()
        check(await wait_subscribers(redis, channel, 2, 20),
              "both workers resubscribed after Redis came back")
        check(redis.publish(channel, "hello-3") == 2, "PUBLISH after the outage")
        got = await recv_all(everyone, 10)
        check(all(g == "hello-3" for g in got), "every client got the message after the outage")
        check(all(ws.open for ws in everyone), "no client disconnected across the outage")
        check(server.wait_log(r"event=redis_link_lost", 1), "the lost link was logged")

        # 4. SIGTERM to the supervisor: close 1001 for everyone, exit 0.
        server.proc.send_signal(signal.SIGTERM)
        codes = []

        async def closed_code(ws):
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except websockets.ConnectionClosed as e:
                return e.code
            except asyncio.TimeoutError:
                return None
            return None
        codes = await asyncio.gather(*(closed_code(ws) for ws in everyone))
        check(all(c == 1001 for c in codes),
              f"every client got close 1001 ({sum(c == 1001 for c in codes)}/{len(codes)})")
        try:
            rc = server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            rc = None
        check(rc == 0, f"the supervisor exited 0 (rc={rc})")
        check(server.wait_log(r"supervisor pid=\d+ event=stopped", 1), "supervisor logged stop")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
        redis.stop()
        if results["failed"]:
            print(server.text()[-6000:])
        os.unlink(server.log.name)


def main():
    if len(sys.argv) != 2:
        print("usage: test_cluster.py WSPUSH", file=sys.stderr)
        return 2
    # 1,000 client sockets in this process: raise the soft fd limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(asyncio.wait_for(run(sys.argv[1]), 240))
    except Exception as e:  # a crash or timeout of the test itself is a failure
        check(False, f"test aborted: {e!r}")
    print(f"cluster: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
