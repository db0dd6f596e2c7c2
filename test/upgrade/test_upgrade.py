#!/usr/bin/python3
"""The live upgrade (SIGUSR2, issue #20) against the real binary, one scenario per run:

  handover  2,000 clients (plain, channel-only, channels with the default one) and clients
            half-way through their handshake; SIGUSR2: the old process exits 0, a new pid
            serves; no client was closed; a SIGUSR1 to the new process and a publish on a
            channel reach each client exactly once (a marker published next arrives next);
            the half-done handshakes complete with the new process
  race      admin publishes back to back across the handover: every client receives every
            acknowledged message exactly once, in order, and nothing else
  flood     new clients connect without pause across the handover: none is refused or
            lost, and every one (old and new) gets the next broadcast once
  failed    the binary at the server's path replaced by one that exits 1, then by one that
            never gets ready (--upgrade-timeout 2): each SIGUSR2 fails, is logged with why,
            and the old process keeps serving every client; then the real binary installed
            again: the next SIGUSR2 upgrades to it
  procs     --procs 2 with a real redis-server: the supervisor replaces its workers one at a
            time while Redis publishes go on; every client of both stays open, gets no Redis
            message twice or out of order, every one published before the upgrade began and
            after it ended, and the next broadcast once; the supervisor's pid stays (what is
            lost in each worker's switch of Redis subscription is printed: a known gap)
  v1        wspush.v1 clients (issue #17) and permessage-deflate ones (#19): numbered
            messages go on after the handover in the same epoch with the next seq, nothing
            twice, none closed; a client resuming with the old epoch is recovered
  history   --history-size 50: a wspush.v1 client leaves after message 3; 4..6 are published
            before SIGUSR2 and 7..8 after; coming back to the new process with since=news:3
            it is recovered and gets exactly 4..8 in order (another from since=news:0 gets
            1..8), and the next message, 9, once: the history moved with the upgrade
  history_procs  the same under --procs 2: each worker hands its own history to the worker
            that replaces it
Token-authenticated connections (auth, auth_procs, auth_misfit): test_upgrade_auth.py;
wss:// connections (tls): test_upgrade_tls.py.

usage: /usr/bin/python3 test_upgrade.py SCENARIO PATH_TO_WSPUSH
After an upgrade the serving process is not the test's child but its grandchild: the test
makes itself a child subreaper, so the new process is reaped (and killed) here.
"""
import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402


PR_SET_CHILD_SUBREAPER = 36


def subreaper():
    """Orphans of the server (the process an upgrade started) become the test's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class Clients:
    """Raw WebSocket clients that keep every text message, multiplexed with poll()."""

    def __init__(self):
        self.conns = []
        self.msgs = {}

    def connect(self, port, n, path="/"):
        new = [wt.ws_connect(wt.HOST, port, path) for _ in range(n)]
        for c in new:
            self.conns.append(c)
            self.msgs[c] = []
        return new

    def pump(self, timeout):
        live = [c for c in self.conns if not c.eof]
        wait = timeout
        while live:
            got = wt.ready(live, wait)
            if not got:
                return
            wait = 0
            for c in got:
                c.fill(wt.now())
                while True:
                    f = wt.parse_frame(c.buf)
                    if not f:
                        break
                    fin, op, payload, used = f
                    del c.buf[:used]
                    self.msgs[c].append(payload.decode(errors="replace") if op == wt.OP_TEXT
                                        else f"close={int.from_bytes(payload[:2], 'big')}"
                                        if op == wt.OP_CLOSE else f"op={op}")
            live = [c for c in live if not c.eof]  # a closed socket stays readable

    def wait(self, cond, conns, timeout):
        """Pumps until cond(messages of c) holds for every c of conns; True when it did."""
        deadline = wt.now() + timeout
        while True:
            if all(cond(self.msgs[c]) for c in conns):
                return True
            if wt.now() >= deadline:
                return False
            self.pump(0.05)

    def closed(self):
        self.pump(0)
        return [c for c in self.conns if c.eof]

    def close(self):
        for c in self.conns:
            c.close()

    def drop(self, conns):
        """Closes conns (as a client does after a close frame) and forgets them."""
        for c in conns:
            c.close()
            self.conns.remove(c)


def upgraded(ck, srv, timeout=30):
    """Waits for the upgrade that a SIGUSR2 started; returns the new pid (or None). The old
    process must exit 0; srv then points at the new one."""
    old = srv.pid
    m = srv.wait_re(r"event=upgrade_complete from_pid=(\d+) conns=(\d+)", timeout)
    ck.check("the new process logged upgrade_complete", m is not None)
    ck.check("the old process exited 0", srv.wait(timeout) == 0, f"rc={srv.proc.returncode}")
    started = re.findall(r"event=upgrade_started pid=(\d+)", srv.log())
    new = int(started[-1]) if started else None
    ck.check("a new pid serves", new and new != old and os.path.exists(f"/proc/{new}"),
             f"old {old} new {new}")
    if new:
        srv.pid = srv.new = new
        ck.note(f"upgrade {old} -> {new}: {m.group(0) if m else '?'}")
    return new


def stop_new(ck, srv, pid):
    """SIGTERM to the process an upgrade started (our child as a subreaper): exit 0."""
    if not pid:
        return
    os.kill(pid, signal.SIGTERM)
    rc = None
    deadline = wt.now() + 30
    while wt.now() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            rc = os.waitstatus_to_exitcode(status)
            break
        wt.poll(lambda: False, 0.05)
    if rc is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    ck.check("the new process exits 0 on SIGTERM", rc == 0, f"rc={rc}")


def kill_quietly(pid):
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@contextlib.contextmanager
def session(ck, binary, *flags):
    """A server and a Clients for one scenario. Afterwards the clients close (the drain then
    waits for nobody) and the process serving by then (after an upgrade the new one, the
    test's child as a subreaper) must exit 0 on SIGTERM; on the way out, whatever runs is
    killed."""
    subreaper()
    cl = Clients()
    with wt.Server(binary, *flags) as srv:
        srv.new = None
        try:
            yield srv, cl
            cl.close()
            stop_new(ck, srv, srv.new)
            srv.new = None
        finally:
            kill_quietly(srv.new)
            cl.close()


def half_handshakes(port, n):
    """n clients that sent the first half of their upgrade request: (conn, rest, key)."""
    out = []
    for _ in range(n):
        c = wt.Conn(wt.HOST, port)
        req, key = wt.upgrade_request("/")
        cut = req.index(b"Sec-WebSocket-Key")
        c.send_all(req[:cut])
        out.append((c, req[cut:], key))
    return out


def handover(ck, binary):
    with session(ck, binary) as (srv, cl):
        plain = cl.connect(srv.port, 1500)
        news = cl.connect(srv.port, 250, "/?channels=news")
        both = cl.connect(srv.port, 250, "/?channels=news,time")
        half = half_handshakes(srv.port, 20)
        default = plain + both
        srv.signal(signal.SIGUSR1)  # every client is OPEN once this arrived
        ck.check("2,000 clients connected and got the first tick",
                 cl.wait(lambda m: len(m) == 1, default, 20))
        srv.signal(signal.SIGUSR2)
        new = upgraded(ck, srv)
        ck.check("no client was closed", not cl.closed(), f"{len(cl.closed())} closed")
        for c, rest, key in half:
            c.send_all(rest)
        heads = [c.read_head(10) for c, _, _ in half]
        ck.check("half-done handshakes complete with the new process", all(
            st == 101 and wt.check_101(h, key) for (st, h), (_, _, key) in zip(heads, half)),
            str([st for st, _ in heads][:5]))
        ck.check("the new process holds the 2,020 sockets",
                 wt.poll(lambda: srv.nfds() >= 2020, 10), f"{srv.nfds()} fds")
        os.kill(new, signal.SIGUSR1)
        ok = cl.wait(lambda m: len(m) >= 2, default, 15)
        seqs = {(wt.parse_time_msg(cl.msgs[c][1].encode()) or (0, 0))[1] for c in default}
        ck.check("SIGUSR1 to the new process reached every default client, numbered after "
                 "the old process's", ok and seqs == {2}, f"seqs {sorted(seqs)[:5]}")
        st, reply = srv.publish("for-news", channel="news")
        ck.check("publish on the admin port the new process adopted", st == 202, str(st))
        ck.check("every news client got it",
                 cl.wait(lambda m: m and m[-1] == "for-news", news + both, 15))
        st, _ = srv.publish("marker")
        ck.check("the marker reached every default client next: nothing came twice",
                 cl.wait(lambda m: m and m[-1] == "marker", default, 15) and all(
                     cl.msgs[c][2:] == ["for-news", "marker"] if c in both else
                     cl.msgs[c][2:] == ["marker"] for c in default),
                 str({tuple(cl.msgs[c][1:]) for c in default}))
        ck.check("news-only clients got only the news message",
                 all(cl.msgs[c] == ["for-news"] for c in news),
                 str({tuple(cl.msgs[c]) for c in news}))
        ck.check("still no client closed", not cl.closed())


def race(ck, binary):
    with session(ck, binary) as (srv, cl):
        conns = cl.connect(srv.port, 200)
        acked, lost, stop = [], [], threading.Event()

        def publisher():
            k = 0
            while not stop.is_set() and k < 5000:
                k += 1
                try:
                    st, _ = srv.publish(f"m-{k}")
                    (acked if st == 202 else lost).append(k)
                except OSError:
                    lost.append(k)  # the answer was lost: delivered at most once
        t = threading.Thread(target=publisher)
        t.start()
        wt.poll(lambda: len(acked) >= 20, 10)
        srv.signal(signal.SIGUSR2)
        new = upgraded(ck, srv)
        n = len(acked)
        wt.poll(lambda: len(acked) >= n + 20, 10)
        stop.set()
        t.join(30)
        want = [f"m-{k}" for k in acked]
        ck.check("publishes were acknowledged before, during and after the handover",
                 len(acked) >= n + 20 > 40, f"{len(acked)} acked, {len(lost)} not")
        last = want[-1]
        cl.wait(lambda m: last in m, conns, 15)

        def exact(m):
            ks = [int(x[2:]) for x in m if x.startswith("m-")]
            return len(m) == len(ks) and ks == sorted(set(ks)) and set(acked) <= set(ks)
        bad = [cl.msgs[c] for c in conns if not exact(cl.msgs[c])]

        def why(m):
            ks = [int(x[2:]) for x in m if x.startswith("m-")]
            dup = sorted({k for k in ks if ks.count(k) > 1})
            order = [(a, b) for a, b in zip(ks, ks[1:]) if b <= a][:3]
            return (f"missing acked {sorted(set(acked) - set(ks))[:10]}, twice {dup[:10]}, "
                    f"out of order {order}, other {[x for x in m if not x.startswith('m-')][:3]}")
        ck.check("every client got every acknowledged message once, in order",
                 not bad, f"{len(bad)} clients differ, e.g. {why(bad[0]) if bad else ''}; "
                 f"acked {len(acked)} (last {acked[-1] if acked else None}), not {lost[:5]}")
        ck.check("no client was closed", not cl.closed())


def flood(ck, binary):
    with session(ck, binary) as (srv, cl):
        cl.connect(srv.port, 300)
        made, failed, stop = [], [], threading.Event()

        def connector():
            while not stop.is_set() and len(made) < 3000:
                try:
                    made.append(wt.ws_connect(wt.HOST, srv.port, timeout=10))
                except (OSError, RuntimeError) as e:
                    failed.append(repr(e))
        t = threading.Thread(target=connector)
        t.start()
        wt.poll(lambda: len(made) >= 100, 10)
        srv.signal(signal.SIGUSR2)
        new = upgraded(ck, srv)
        n = len(made)
        wt.poll(lambda: len(made) >= n + 100, 10)
        stop.set()
        t.join(30)
        ck.check("clients connected before, during and after the handover, none refused",
                 not failed and len(made) >= n + 100, f"{len(made)} made, failed {failed[:3]}")
        for c in made:
            cl.conns.append(c)
            cl.msgs[c] = []
        os.kill(new, signal.SIGUSR1)
        ok = cl.wait(lambda m: len(m) >= 1, cl.conns, 15)
        cl.pump(0.2)
        ck.check(f"all {len(cl.conns)} clients got the broadcast exactly once",
                 ok and all(len(cl.msgs[c]) == 1 for c in cl.conns),
                 f"{sum(len(m) == 1 for m in cl.msgs.values())} of {len(cl.conns)}")
        ck.check("no client was closed", not cl.closed(), f"{len(cl.closed())} closed")


def install(path, data, mode=0o755):
    """Replaces path atomically (rename), as a package manager installs a new binary."""
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def failed(ck, binary):
    with tempfile.TemporaryDirectory(prefix="wspush-upgrade-") as tmp:
        exe = os.path.join(tmp, "wspush")
        shutil.copy(binary, exe)
        with open(binary, "rb") as f:
            real = f.read()
        with session(ck, exe, "--upgrade-timeout", "2") as (srv, cl):
            conns = cl.connect(srv.port, 100)
            old = srv.pid
            for k, (script, why) in enumerate(((b"#!/bin/sh\nexit 1\n", "new_binary_exit_1"),
                                               (b"#!/bin/sh\nexec sleep 60\n", "timeout"))):
                install(exe, script)
                srv.signal(signal.SIGUSR2)
                ck.check(f"an upgrade to a binary that {'exits 1' if k == 0 else 'hangs'} "
                         f"fails, logged with why", srv.wait_log(
                             "event=upgrade_failed", f"reason={why}", timeout=15))
                srv.signal(signal.SIGUSR1)
                ck.check("the old process still serves every client",
                         srv.alive() and srv.pid == old and
                         cl.wait(lambda m: len(m) == k + 1, conns, 10) and not cl.closed())
            install(exe, real)
            srv.signal(signal.SIGUSR2)
            new = upgraded(ck, srv)
            os.kill(new, signal.SIGUSR1)
            ck.check("the binary installed since serves every client, none closed",
                     cl.wait(lambda m: len(m) == 3, conns, 10) and not cl.closed())


def procs(ck, binary):
    cl = Clients()
    with wt.Redis() as redis, wt.Server(binary, threads=1, procs=2, redis=redis) as srv:
        try:
            ck.check("subscribed to Redis", srv.wait_log("event=redis_subscribed", timeout=15))
            conns = cl.connect(srv.port, 400)
            per = srv.worker_conns(total=400)
            ck.check("both workers hold clients", per and all(per), str(per))
            before = srv.worker_pids()
            # Redis publishes go on across the handover: each one a subscriber took (PUBLISH
            # answered >= 1) must reach every client exactly once, in order.
            acked, stop = [], threading.Event()

            def publisher():  # bounded: 60 s or 20,000 messages; paced, not a flood
                k, end = 0, wt.now() + 60
                while not stop.is_set() and k < 20000 and wt.now() < end:
                    k += 1
                    if redis.publish("wspush", f"r-{k}") >= 1:
                        acked.append(k)
                    stop.wait(0.002)
            t = threading.Thread(target=publisher)
            t.start()
            wt.poll(lambda: len(acked) >= 20, 10)
            subs = srv.log().count("event=redis_subscribed")
            srv.signal(signal.SIGUSR2)
            done = srv.wait_re(r"event=upgrade_workers_done workers=2", 40)
            # Both new workers subscribed (asynchronously, after their takeover): from here on
            # every message must reach every client.
            wt.poll(lambda: srv.log().count("event=redis_subscribed") >= subs + 2, 20)
            n = len(acked)
            wt.poll(lambda: len(acked) >= n + 20, 10)
            stop.set()
            t.join(30)
            ck.check("the supervisor replaced both workers", done is not None)
            after = srv.worker_pids()
            ck.check("each worker has a new pid", all(after.get(w) not in (None, before[w])
                                                     for w in before), f"{before} -> {after}")
            starts = [int(m.group(1)) for m in re.finditer(
                r"event=upgrade_worker_started worker=(\d+)", srv.log())]
            ck.check("one at a time: worker 0, then worker 1", starts == [0, 1], str(starts))
            ck.check("the supervisor itself still runs (same pid)", srv.alive())
            ck.check("Redis publishes were taken before, during and after the handover",
                     len(acked) >= n + 20 > 40, f"{len(acked)} taken")
            want = [f"r-{k}" for k in acked]
            ok = cl.wait(lambda m: want[-1] in m, conns, 20)
            cl.pump(0.2)
            got = {c: [int(x[2:]) for x in cl.msgs[c] if x.startswith("r-")] for c in conns}
            ck.check("no client got a Redis message twice or out of order",
                     ok and all(g == sorted(set(g)) for g in got.values()))
            ck.check("every client got every Redis message taken before the upgrade began and "
                     "after both new workers subscribed", all(set(acked[:20] + acked[n:]) <= set(g)
                                           for g in got.values()))
            # Known gap (docs/OPERATIONS.md): a worker's old process unsubscribes from Redis
            # before its new one subscribes, so what Redis delivers to the other worker only
            # in those few ms is lost for this worker's clients. Measured, not asserted.
            lost = sorted({k for g in got.values() for k in set(acked) - set(g)})
            ck.note(f"Redis messages taken but missed by some client during the handover: "
                    f"{len(lost)} of {len(acked)} {lost[:10]}")
            srv.signal(signal.SIGUSR1)
            ok = cl.wait(lambda m: any(not x.startswith("r-") for x in m), conns, 15)
            cl.pump(0.2)
            ticks = [sum(not x.startswith("r-") for x in cl.msgs[c]) for c in conns]
            ck.check("every client of both workers got the next broadcast once",
                     ok and all(k == 1 for k in ticks), f"{sum(k == 1 for k in ticks)} of {len(conns)}")
            ck.check("no client was closed", not cl.closed(), f"{len(cl.closed())} closed")
            cl.close()
            ck.check("exit 0", srv.stop() == 0)
        finally:
            cl.close()


async def v1(ck, binary):
    import json
    with session(ck, binary, "--history-size", "100") as (srv, cl):
        framed = [await wt.connect(srv.url("?channels=news"), subprotocols=["wspush.v1"])
                  for _ in range(20)]
        hellos = [json.loads(await wt.recv(ws)) for ws in framed]
        epoch = hellos[0].get("epoch")
        deflated = [await wt.connect(srv.url("?channels=news")) for _ in range(20)]
        ck.check("the deflate clients negotiated permessage-deflate", all(
            "permessage-deflate" in (ws.response_headers.get("Sec-WebSocket-Extensions") or "")
            for ws in deflated))
        for k in (1, 2):
            srv.publish(f"before-{k}" + "x" * 300, channel="news")
        got = [[json.loads(await wt.recv(ws)) for _ in range(2)] for ws in framed]
        ck.check("framed clients got seq 1 and 2 before the upgrade",
                 all([m["seq"] for m in g] == [1, 2] for g in got), str(got[0]))
        await wt.recv_all(deflated)
        await wt.recv_all(deflated)
        srv.signal(signal.SIGUSR2)
        await asyncio.to_thread(upgraded, ck, srv)
        srv.publish("after-3" + "x" * 300, channel="news")
        after = [json.loads(await wt.recv(ws)) if ws else None for ws in framed]
        ck.check("after the handover the next message is seq 3 on every framed client",
                 all(m and m["seq"] == 3 and m["data"].startswith("after-3") for m in after),
                 str(after[:2]))
        d = await wt.recv_all(deflated)
        ck.check("deflate clients got it, inflated", all(x and x.startswith("after-3") for x in d))
        back = await wt.connect(srv.url(f"?channels=news&since=news:1&epoch={epoch}"),
                                subprotocols=["wspush.v1"])
        hello = json.loads(await wt.recv(back))
        ck.check("the epoch survived the upgrade", hello.get("epoch") == epoch, str(hello))
        ck.check("every client is still open", all(ws.open for ws in framed + deflated))
        await wt.close_all(framed + deflated + [back])


async def history_run(ck, srv, upgrade, processes):
    """The history scenario on srv; upgrade() replaces the serving process(es)."""
    import json

    async def resume(since, n):
        """A wspush.v1 client back on news after since: its hello, then n messages."""
        ws = await wt.connect(srv.url(f"?channels=news&since=news:{since}&epoch={epoch}"),
                              subprotocols=["wspush.v1"])
        hello = json.loads(await wt.recv(ws) or "{}")
        return ws, hello, [json.loads(await wt.recv(ws) or "null") for _ in range(n)]

    def exactly(msgs, first, last):
        return [(m or {}).get("seq") for m in msgs] == list(range(first, last + 1)) and all(
            m["data"] == f"m{m['seq']}" for m in msgs)

    stay, leave = [await wt.connect(srv.url("?channels=news"), subprotocols=["wspush.v1"])
                   for _ in range(2)]
    epoch = json.loads(await wt.recv(stay)).get("epoch")
    await wt.recv(leave)
    for k in range(1, 4):
        srv.publish(f"m{k}", channel="news")
    got = [json.loads(await wt.recv(leave) or "null") for _ in range(3)]
    ck.check("the leaving client got 1..3, then left", exactly(got, 1, 3), str(got))
    await leave.close()
    for k in range(4, 7):  # missed, before the upgrade
        srv.publish(f"m{k}", channel="news")
    seen = [json.loads(await wt.recv(stay) or "null") for _ in range(6)]
    ck.check("the staying client got 1..6 before the upgrade", exactly(seen, 1, 6))
    await asyncio.to_thread(upgrade)
    for k in range(7, 9):  # missed, after the upgrade
        srv.publish(f"m{k}", channel="news")
    seen = [json.loads(await wt.recv(stay) or "null") for _ in range(2)]
    ck.check("the staying client got 7 and 8 after the upgrade", exactly(seen, 7, 8))
    back, hello, missed = await resume(3, 5)
    ck.check("the client back with since=news:3 is recovered, top 8",
             hello.get("recovered") == {"news": True} and hello.get("top") == {"news": 8}
             and hello.get("epoch") == epoch, str(hello))
    ck.check("it gets exactly 4..8 in order: three from before the upgrade, two after",
             exactly(missed, 4, 8), str(missed))
    first, hello0, all8 = await resume(0, 8)
    ck.check("a client back from the start gets 1..8", hello0.get("recovered") ==
             {"news": True} and exactly(all8, 1, 8), f"{hello0} {all8}")
    srv.publish("m9", channel="news")
    nxt = [json.loads(await wt.recv(ws) or "null") for ws in (back, first, stay)]
    ck.check("none twice: the next message each gets is 9",
             all(m and m["seq"] == 9 and m["data"] == "m9" for m in nxt), str(nxt))
    restored = re.findall(r"event=upgrade_history entries=\d+ channels=\d+ dropped=0 error=none",
                          srv.log())
    ck.check(f"each of the {processes} new process(es) restored the history before publishing",
             len(restored) == processes, str(restored))
    await wt.close_all([stay, back, first])


async def history(ck, binary):
    with session(ck, binary, "--history-size", "50") as (srv, cl):
        def upgrade():
            srv.signal(signal.SIGUSR2)
            upgraded(ck, srv)
        await history_run(ck, srv, upgrade, 1)


async def history_procs(ck, binary):
    with wt.Server(binary, "--history-size", "50", threads=1, procs=2) as srv:
        def upgrade():
            srv.signal(signal.SIGUSR2)
            ck.check("the supervisor replaced both workers",
                     srv.wait_re(r"event=upgrade_workers_done workers=2", 40) is not None)
        await history_run(ck, srv, upgrade, 2)
        ck.check("exit 0", srv.stop() == 0)

if __name__ == "__main__":
    sys.exit(wt.main({"handover": handover, "race": race, "flood": flood, "failed": failed,
                      "procs": procs, "v1": v1, "history": history,
                      "history_procs": history_procs}, timeout=120))
