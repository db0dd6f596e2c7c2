#!/usr/bin/python3
"""The production surface against the real binary, one scenario per run:

  admin_channels  admin API (token, publish, limits on bodies and names), channels, /healthz,
                  /stats, /metrics (promtool check metrics)
  limits          --max-conns, a slow consumer closed with 1008, --ping-interval timeouts
  drain           SIGTERM: /healthz 503, close 1001 spread over --drain-seconds, exit 0
  interval_ticks  --interval 2, one process and --procs 2: every tick stamped within 50 ms
                  after an even wall-clock second, consecutive seqs, none skipped
  log_rate        300 handshake failures at once: at most one log line per shard per tick
                  (second), the rest counted in event=logs_suppressed count=N
  shard_lag       (wspush-testhooks) shard 1 blocked while 200 publishes are accepted: its
                  ring holds 64, the coordinator's backlog the rest; once it runs again every
                  client of both shards gets all 200 once, in order, and nothing is skipped

usage: /usr/bin/python3 test_ops.py SCENARIO PATH_TO_WSPUSH
"not delivered" is always shown by a marker sent afterwards arriving next, never by silence.
"""
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402

TOKEN = "s3cret-token"


async def next_is(ck, what, clients, want, timeout=5):
    """Checks that the next message of every client is want (a function of the client's
    index, or one value for all)."""
    got = await wt.recv_all(clients, timeout)
    wants = [want(i) if callable(want) else want for i in range(len(clients))]
    bad = [(g if g is None or len(g) < 80 else g[:80] + "...") for g, w in zip(got, wants)
           if g != w]
    return ck.check(what, not bad, f"{len(bad)} of {len(got)} got other: {bad[:3]}")


async def admin_channels(ck, binary):
    with tempfile.TemporaryDirectory(prefix="wspush-ops-") as tmp:
        token_file = os.path.join(tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        with wt.Server(binary, "--admin-token-file", token_file) as srv:
            await admin_and_channels(ck, srv)


async def admin_and_channels(ck, srv):
    for token, why in ((None, "without the token"), ("s3cret-tokeX", "with a wrong token of the "
                       "same length"), ("short", "with a short wrong token")):
        st, _ = srv.publish("hi", token=token)
        ck.check(f"publish {why} is 401", st == 401, str(st))

    plain = [await wt.connect(srv.url()) for _ in range(4)]
    on_a = [await wt.connect(srv.url("?channels=a")) for _ in range(3)]
    on_b = [await wt.connect(srv.url("?channels=b")) for _ in range(3)]
    a_time = await wt.connect(srv.url("?channels=a,time"))

    st, reply = srv.publish("héllo everyone", token=TOKEN)
    ck.check("publish with the token is 202 with seq and connections",
             st == 202 and reply.get("seq") == 1 and "connections" in reply, f"{st} {reply}")
    await next_is(ck, "the default channel (which a,time includes) got it", plain + [a_time],
                  "héllo everyone")
    st, _ = srv.publish("for-a", channel="a", token=TOKEN)
    ck.check("publish on channel a is 202", st == 202, str(st))
    await next_is(ck, "every subscriber of a got it, and not the default message before it",
                  on_a + [a_time], "for-a")
    st, _ = srv.publish("for-b", channel="b", token=TOKEN)
    ck.check("publish on channel b is 202", st == 202, str(st))
    await next_is(ck, "channel b reaches b, which got neither the default nor a's before",
                  on_b, "for-b")
    srv.signal(signal.SIGUSR1)  # the time tick goes to the default channel and to time
    got = await wt.recv_all(plain + [a_time], 5)
    ck.check("the tick is next for default and a,time clients: default ones got neither a's "
             "nor b's message, a,time not b's", all(g and '"time":' in g for g in got), str(got))
    for chan, group in (("a", on_a), ("b", on_b)):
        srv.publish(f"mark-{chan}", channel=chan, token=TOKEN)
        await next_is(ck, f"clients on {chan} never got the tick (or the other channel's "
                      "message): their marker came next", group, f"mark-{chan}")

    st, _, body = srv.http("POST", "/publish", b"x" * (64 * 1024 + 1),
                           {"Authorization": "Bearer " + TOKEN})
    ck.check("a 64 KiB + 1 body is 413", st == 413, f"{st} {body[:60]!r}")
    st, _, body = srv.http("POST", "/publish", b"ok \xff\xfe", {"Authorization": "Bearer " + TOKEN})
    ck.check("invalid UTF-8 is 400", st == 400 and b"UTF-8" in body, f"{st} {body!r}")
    st, _ = srv.publish("x", channel="bad%20name", token=TOKEN)
    ck.check("an invalid channel name is 400", st == 400, str(st))
    st, _ = srv.publish(b"y" * (64 * 1024), token=TOKEN)
    ck.check("exactly 64 KiB is accepted", st == 202, str(st))
    await next_is(ck, "and delivered whole (and nothing refused before it)", plain,
                  "y" * 65536)

    ws = wt.websockets()
    for q in ("?channels=", "?channels=a,,b",
              "?channels=" + ",".join("c%d" % i for i in range(9)), "?channels=has%20space"):
        try:
            await (await wt.connect(srv.url(q))).close()
            ck.check(f"{q} is refused", False, "it was upgraded")
        except ws.InvalidStatusCode as e:
            ck.check(f"{q} is refused with 400 before the upgrade", e.status_code == 400,
                     str(e.status_code))

    st, _, _ = srv.http("GET", "/healthz")
    ck.check("/healthz is 200 while serving", st == 200, str(st))
    stats = srv.stats()
    ck.check("/stats counts 11 connections", stats.get("connections") == 11, str(stats)[:80])
    st, hdrs, body = srv.http("GET", "/metrics")
    text = body.decode()
    ck.check("/metrics is text/plain", st == 200 and "text/plain" in hdrs.get("Content-Type", ""))
    ck.check("wspush_connections sums to 11", wt.metric(text, "wspush_connections{") == 11)
    ck.check("the refused channel lists count as handshake failures (400)",
             wt.metric(text, 'wspush_handshake_failures_total{status="400"}') >= 4)
    r = subprocess.run([wt.need("promtool", "prometheus"), "check", "metrics"], input=body,
                       capture_output=True, timeout=30)
    ck.check("promtool check metrics accepts /metrics", r.returncode == 0,
             (r.stdout + r.stderr).decode()[:500])
    await wt.close_all(plain + on_a + on_b + [a_time])
    ck.check("exit 0", srv.stop() == 0)


async def closed_by_server(c, timeout):
    """True once the server closes the raw client c, within timeout; reads and discards what
    it sends meanwhile, without blocking the websockets clients' tasks."""
    def gone():
        while c.fill(wt.now()):
            if not c.buf:
                return False  # nothing more right now
            c.buf.clear()
        return True
    return await wt.apoll(gone, timeout)


async def limits(ck, binary):
    # Slow consumer: one shard, a tiny queue cap; a client that never reads is closed with
    # 1008 while a reading client in the same shard keeps receiving.
    with wt.Server(binary, "--max-pending", "20000", "--max-conns", "3", threads=1) as srv:
        slow = wt.ws_connect(wt.HOST, srv.port, rcvbuf=4096)
        good = await wt.connect(srv.url())
        third = await wt.connect(srv.url())
        try:
            await (await wt.connect(srv.url())).close()
            ck.check("over --max-conns: refused", False, "a 4th connection was accepted")
        except wt.websockets().InvalidStatusCode as e:
            ck.check("over --max-conns: 503", e.status_code == 503, str(e.status_code))
        await third.close()  # it would stop reading too (its queue fills): a 2nd slow one
        # Enough that the kernel's socket buffers (send buffers autotune up to 4 MiB) fill and
        # the rest queues in the server.
        received = 0
        for _ in range(160):
            srv.publish(b"z" * 60000)
            received += await wt.recv(good, 5) == "z" * 60000
        ck.check("the reading client got all 160 large messages", received == 160, str(received))
        text = srv.metrics()
        ck.check("exactly one slow consumer was closed (1008)",
                 wt.metric(text, "wspush_slow_consumer_closes_total") == 1)
        ck.check("the slow consumer's socket was closed", await closed_by_server(slow, 10))
        ck.check("the refused connection is counted",
                 wt.metric(text, 'wspush_connections_closed_total{reason="refused"}') == 1)
        await good.close()
        slow.close()
        srv.stop()

    # Ping timeout: --ping-interval 1; a raw client that never answers is closed; a client
    # that answers pings (the websockets library does) stays through later rounds.
    with wt.Server(binary, "--ping-interval", "1") as srv:
        mute = wt.ws_connect(wt.HOST, srv.port)
        alive = await wt.connect(srv.url())
        ck.check("a client that never answers pings is closed", await closed_by_server(mute, 8))
        pings = srv.metric("wspush_pings_total{")
        ck.check("two more ping rounds pass", await wt.apoll(
            lambda: srv.metric("wspush_pings_total{") >= pings + 2, 10))
        ck.check("a client that answers pings stays open", alive.open)
        srv.publish("still here")
        await next_is(ck, "and still receives", [alive], "still here")
        text = srv.metrics()
        ck.check("the ping timeout is counted",
                 wt.metric(text, 'wspush_connections_closed_total{reason="ping_timeout"}') == 1)
        ck.check("pings were sent", wt.metric(text, "wspush_pings_total{") >= 2)
        await alive.close()
        mute.close()
        srv.stop()


async def drain(ck, binary):
    # SIGTERM: /healthz turns 503 and the 1001 closes are spread over --drain-seconds.
    with wt.Server(binary, "--drain-seconds", "2") as srv:
        clients = [await wt.connect(srv.url()) for _ in range(40)]
        t0 = time.time()
        srv.signal(signal.SIGTERM)
        st = await wt.apoll(lambda: srv.http("GET", "/healthz")[0] == 503, 5, 0.1)
        ck.check("/healthz is 503 while draining", st)

        async def closed_at(ws):
            code = await wt.close_code(ws)
            return (time.time() - t0 if code else None), code
        res = await asyncio.gather(*(closed_at(w) for w in clients))
        codes = [c for _, c in res]
        times = sorted(t for t, _ in res if t is not None)
        ck.check("every client got 1001", all(c == 1001 for c in codes),
                 f"{codes.count(1001)}/40")
        span = times[-1] - times[0] if times else 0
        ck.check("the closes were spread over the window", span >= 1.0,
                 f"first to last {span:.2f} s")
        ck.check("exit 0 after the drain", srv.wait(20) == 0)


def interval_ticks(ck, binary):
    """Stamps, not arrival times, carry the bound: the server stamps a tick as it builds it,
    so a late stamp is a late tick; when this test reads it is its own business."""
    per, bound, n = 2000, 50, 3
    with wt.Server(binary, interval=2) as one, wt.Server(binary, interval=2, threads=1,
                                                         procs=2) as two:
        readers = {"one process": wt.ws_connect(wt.HOST, one.port),
                   "--procs 2": wt.ws_connect(wt.HOST, two.port)}
        ticks = {name: [] for name in readers}  # (time, seq, arrival)
        deadline = wt.now() + (n + 2) * per / 1000
        while wt.now() < deadline and any(len(t) < n for t in ticks.values()):
            for c in wt.ready(list(readers.values()), 0.5):
                f = c.read_frame(5)
                name = next(k for k, v in readers.items() if v is c)
                msg = wt.parse_time_msg(f[2]) if f else None
                ck.check(f"{name}: a time message", msg is not None, repr(f))
                if msg:
                    ticks[name].append((*msg, int(time.time() * 1000)))
        for name, got in ticks.items():
            ck.check(f"{name}: {n} ticks within {(n + 2) * per / 1000:.0f} s", len(got) >= n,
                     str(got))
            late = [(t, t % per) for t, _, _ in got if t % per > bound]
            ck.check(f"{name}: every tick stamped within {bound} ms after an even second",
                     not late, f"(time, ms past) {late}")
            seqs = [s for _, s, _ in got]
            ck.check(f"{name}: consecutive seqs", seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                     if seqs else False, str(seqs))
            gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
            ck.check(f"{name}: {per} ms apart, none skipped or doubled",
                     all(abs(g - per) <= bound for g in gaps), str(gaps))
            ck.check(f"{name}: each read after its stamp", all(a >= t for t, _, a in got),
                     str(got))
            ck.note(f"{name}: stamps {[t % per for t, _, _ in got]} ms past the even second, "
                    f"read {[a - t for t, _, a in got]} ms after")
        for c in readers.values():
            c.close()
        ck.check("both exit 0", one.stop() == 0 and two.stop() == 0)


def log_rate(ck, binary):
    n = 300
    with wt.Server(binary) as srv:
        t0 = wt.now()
        conns = [wt.Conn(wt.HOST, srv.port) for _ in range(n)]
        for c in conns:
            c.send_all(b"hello there\r\n\r\n")  # not HTTP: 400
        answered = sum(c.read_head(10)[0] == 400 for c in conns)
        took = wt.now() - t0
        for c in conns:
            c.close()
        ck.check(f"{n} handshakes answered 400", answered == n, str(answered))
        ck.note(f"{n} handshake failures in {took:.2f} s")

        def accounted():
            lines = re.findall(r"shard=(\d+) event=handshake_failed status=400", srv.log())
            counts = re.findall(r"shard=(\d+) event=logs_suppressed count=(\d+)", srv.log())
            return lines, counts, len(lines) + sum(int(k) for _, k in counts)
        # The suppressed count is reported on the shard's next tick.
        ck.check("every failure either logged or counted as suppressed",
                 wt.poll(lambda: accounted()[2] == n, 5), str(accounted()[2]))
        lines, counts, _ = accounted()
        ticks = int(took) + 2  # 1 s ticks during the burst, plus the window it started in
        for shard in sorted(set(lines)):
            k = lines.count(shard)
            ck.check(f"shard {shard}: at most one handshake_failed line per tick", k <= ticks,
                     f"{k} lines over {took:.2f} s")
        ck.check("the rest reported as event=logs_suppressed count=N", counts and
                 sum(int(k) for _, k in counts) >= n - 2 * ticks, str(counts))
        ck.check("wspush_handshake_failures_total counts all of them",
                 srv.metric('wspush_handshake_failures_total{status="400"}') == n)
        ck.check("exit 0", srv.stop() == 0)


async def shard_lag(ck, binary):
    n = 200
    with tempfile.TemporaryDirectory(prefix="wspush-lag-") as tmp:
        go = os.path.join(tmp, "go")
        env = dict(os.environ, WSP_TEST_SHARD_STALL=f"1:{go}")
        with wt.Server(binary, env=env) as srv:
            clients = await wt.connect_many(srv.url(), 40)
            acked = [k for k in range(1, n + 1) if srv.publish(f"m-{k}")[0] == 202]
            ck.check(f"all {n} publishes accepted while a shard is blocked", len(acked) == n,
                     f"{len(acked)} accepted")
            stalled = "event=test_shard_stalled" in srv.log()
            ck.check("shard 1 was blocked (the test hook ran) and had not resumed",
                     stalled and "event=test_shard_resumed" not in srv.log())
            with open(go, "w"):
                pass
            got = [[] for _ in clients]
            for _ in range(n):
                for i, m in enumerate(await wt.recv_all(clients, 30)):
                    got[i].append(m)
            want = [f"m-{k}" for k in range(1, n + 1)]
            bad = [i for i, g in enumerate(got) if g != want]
            ck.check(f"every client got the {n} messages once, in order", not bad,
                     f"{len(bad)} clients differ, e.g. {got[bad[0]][:3] if bad else ''}...")
            m = re.search(r"shard=1 event=shard_broadcast seq=1 .*? conns=(\d+)", srv.log())
            ck.check("shard 1 held clients", m is not None and int(m.group(1)) > 0,
                     m.group(0) if m else "no pass of shard 1 logged")
            ck.check("no broadcast was skipped", "broadcast_shard_skipped" not in srv.log())
            for c in clients:
                await c.close()


if __name__ == "__main__":
    sys.exit(wt.main({f.__name__: f for f in (admin_channels, limits, drain, interval_ticks,
                                              log_rate, shard_lag)}))
