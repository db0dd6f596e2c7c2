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
  redis     --redis with a real redis-server, a PUBLISH every ~1 ms across SIGUSR2: every client
            gets every message a subscriber took exactly once, in order (the new process
            subscribed before READY and cut what it held at the old one's marker)
  procs     --procs 2 with a real redis-server: the supervisor replaces its workers one at a
            time while Redis publishes go on (every ~2 ms); every client of both stays open and
            gets every Redis message a subscriber took exactly once, in order, and the next
            broadcast once; each new worker cut at its old one's marker; the supervisor's pid
            stays
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


@contextlib.contextmanager
def publishing(send, limit, pace=0.0):
    """A publisher thread, bounded (limit messages or 60 s): send(k) says whether message k was
    taken (an admin 202, a Redis PUBLISH that reached a subscriber); an OSError is a lost
    answer (delivered at most once). Yields (taken, not_taken); stops and joins on exit."""
    taken, lost, stop = [], [], threading.Event()

    def run():
        k, end = 0, wt.now() + 60
        while not stop.is_set() and k < limit and wt.now() < end:
            k += 1
            try:
                (taken if send(k) else lost).append(k)
            except OSError:
                lost.append(k)
            if pace:
                stop.wait(pace)
    t = threading.Thread(target=run)
    t.start()
    try:
        yield taken, lost
    finally:
        stop.set()
        t.join(30)


def publish_across(send, limit, pace, upgrade, more):
    """Publishes with send(k) (as publishing()) from 20 taken before upgrade() until `more`
    more were taken after it returned. Returns (taken, not_taken, taken when it returned)."""
    with publishing(send, limit, pace) as (taken, lost):
        wt.poll(lambda: len(taken) >= 20, 10)
        upgrade()
        n = len(taken)
        wt.poll(lambda: len(taken) >= n + more, 10)
    return taken, lost, n


def sigusr2(ck, srv):
    """The upgrade of a single process: SIGUSR2, then upgraded()."""
    def run():
        srv.signal(signal.SIGUSR2)
        upgraded(ck, srv)
    return run


def every_once(ck, cl, conns, prefix, taken, what, only=False):
    """Every client of conns got every message prefix<k> of taken exactly once, in order (and
    nothing else when only); a message not taken may have arrived, once."""
    ok = cl.wait(lambda m: f"{prefix}{taken[-1]}" in m, conns, 20)
    cl.pump(0.2)

    def ks(m):
        return [int(x[len(prefix):]) for x in m if x.startswith(prefix)]

    def fine(m):
        k = ks(m)
        return k == sorted(set(k)) and set(taken) <= set(k) and (not only or len(k) == len(m))
    bad = [cl.msgs[c] for c in conns if not fine(cl.msgs[c])]

    def why(m):
        k = ks(m)
        dup = sorted({x for x in k if k.count(x) > 1})
        order = [(a, b) for a, b in zip(k, k[1:]) if b <= a][:3]
        return (f"missing {sorted(set(taken) - set(k))[:10]}, twice {dup[:10]}, "
                f"out of order {order}, other {[x for x in m if not x.startswith(prefix)][:3]}")
    ck.check(f"every client got every {what} once, in order",
             ok and not bad, f"{len(bad)} of {len(conns)} clients differ, e.g. "
             f"{why(bad[0]) if bad else 'none (timed out)'}; {len(taken)} taken "
             f"(last {taken[-1]})")


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
        acked, lost, n = publish_across(lambda k: srv.publish(f"m-{k}")[0] == 202, 5000, 0,
                                        sigusr2(ck, srv), 20)
        ck.check("publishes were acknowledged before, during and after the handover",
                 len(acked) >= n + 20 > 40, f"{len(acked)} acked, {len(lost)} not")
        every_once(ck, cl, conns, "m-", acked, "acknowledged message", only=True)
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


def redis_cuts(ck, srv, n):
    """The new processes' cuts of what they held (server/pubhold.h): each found the old one's
    marker, in what it held or just after."""
    cuts = re.findall(r"event=upgrade_redis_cut marker=(\w+) held=(\d+) skipped=(\d+) "
                      r"delivered=(\d+)", srv.log())
    ck.check(f"{n} new process(es) cut Redis's stream at the old one's marker", len(cuts) == n and
             all(c[0] in ("found", "awaited") for c in cuts), str(cuts))
    ck.note(f"cuts (marker, held, skipped, delivered): {cuts}")


def redis(ck, binary):
    with wt.Redis() as rd, session(ck, binary, "--redis", rd.url) as (srv, cl):
        ck.check("subscribed to Redis", srv.wait_log("event=redis_subscribed", timeout=15))
        conns = cl.connect(srv.port, 200)
        taken, _, n = publish_across(lambda k: rd.publish("wspush", f"r-{k}") >= 1, 20000,
                                     0.001, sigusr2(ck, srv), 50)
        ck.check("Redis publishes were taken before, during and after the handover",
                 len(taken) >= n + 50 > 70, f"{len(taken)} taken")
        every_once(ck, cl, conns, "r-", taken, "Redis message", only=True)
        redis_cuts(ck, srv, 1)
        ck.check("no client was closed", not cl.closed())


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
            done = []

            def upgrade():
                srv.signal(signal.SIGUSR2)
                done.append(srv.wait_re(r"event=upgrade_workers_done workers=2", 40))
            taken, _, n = publish_across(lambda k: redis.publish("wspush", f"r-{k}") >= 1,
                                         20000, 0.002, upgrade, 20)
            ck.check("the supervisor replaced both workers", done[0] is not None)
            after = srv.worker_pids()
            ck.check("each worker has a new pid", all(after.get(w) not in (None, before[w])
                                                     for w in before), f"{before} -> {after}")
            starts = [int(m.group(1)) for m in re.finditer(
                r"event=upgrade_worker_started worker=(\d+)", srv.log())]
            ck.check("one at a time: worker 0, then worker 1", starts == [0, 1], str(starts))
            ck.check("the supervisor itself still runs (same pid)", srv.alive())
            ck.check("Redis publishes were taken before, during and after the handover",
                     len(taken) >= n + 20 > 40, f"{len(taken)} taken")
            every_once(ck, cl, conns, "r-", taken, "Redis message", only=True)
            redis_cuts(ck, srv, 2)
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
        await history_run(ck, srv, sigusr2(ck, srv), 1)


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
                      "redis": redis, "procs": procs, "v1": v1, "history": history,
                      "history_procs": history_procs}, timeout=120))
