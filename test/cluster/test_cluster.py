#!/usr/bin/python3
"""Prefork and Redis against the real binary, one scenario per run:

  redis_prefork   --procs 2 --redis, 1,000 clients: Redis late at start, PUBLISH reaches
                  every client once, kill -9 of a worker, a Redis outage, SIGTERM
  procs_frames    --procs 3 --interval 1: clients on each of the three workers (per /stats)
                  receive byte-identical frames for the same ticks and for a SIGUSR1
  admin_procs     POST /publish on the supervisor's admin port reaches the clients of both
                  workers of --procs 2, on the default channel and on a named one
  admin_redis     POST /publish on one instance's admin port goes through a real Redis to
                  the clients of that instance and of a --procs 2 instance beside it
  redis_dropped   invalid UTF-8, oversize (> 64 KiB) and badly named Redis messages are
                  dropped and counted (wspush_redis_dropped_total); the next valid one arrives

usage: /usr/bin/python3 test_cluster.py SCENARIO PATH_TO_WSPUSH
"not delivered" is always shown by a marker sent afterwards arriving next, never by silence.
"""
import asyncio
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402

CLIENTS = 1000


def written(srv, seq):
    """Connections written per worker for the broadcast numbered seq in that worker."""
    return {int(m.group(1)): int(m.group(3)) for m in
            re.finditer(r"worker=(\d+) pid=\d+ event=broadcast seq=(\d+) .*written=(\d+)",
                        srv.log()) if int(m.group(2)) == seq}


async def all_got(ck, what, clients, want, timeout=10):
    """Checks that the next message of every client is want."""
    got = await wt.recv_all(clients, timeout)
    return ck.check(what, all(g == want for g in got),
                    f"{sum(g == want for g in got)} of {len(got)}; others {set(got) - {want}}")


async def redis_prefork(ck, binary):
    channel = "cluster-test"
    with wt.Redis(start=False) as redis, \
            wt.Server(binary, "--channel", channel, threads=1, procs=2, redis=redis) as srv:
        # Redis unreachable at start: the server serves anyway and keeps retrying.
        early = await wt.connect_many(srv.url(), 10)
        ck.check("clients connect while Redis is unreachable", len(early) == 10)
        ck.check("both workers tried Redis and found it unreachable",
                 all(srv.wait_log(f"worker={w} ", "event=redis_unreachable") for w in (0, 1)))
        redis.start()
        ck.check("both workers subscribed once Redis came up",
                 redis.wait_subscribers(channel, 2, 15))
        await wt.close_all(early)
        clients = await wt.connect_many(srv.url(), CLIENTS)
        ck.check(f"{CLIENTS} clients connected", len(clients) == CLIENTS)

        # 1. PUBLISH reaches every client exactly once: the next message is the next one.
        ck.check("PUBLISH counted 2 subscribers", redis.publish(channel, "hello-1") == 2)
        await all_got(ck, "every client got the published message", clients, "hello-1")
        redis.publish(channel, "marker-1")
        await all_got(ck, "no client got it twice: the marker came next", clients, "marker-1")
        sent = written(srv, 1)
        ck.check("both workers wrote", sorted(sent) == [0, 1] and sum(sent.values()) == CLIENTS,
                 str(sent))

        # 2. kill -9 one worker: the supervisor restarts it; the other's clients are untouched.
        pids = srv.worker_pids()
        victim = 0
        os.kill(pids[victim], signal.SIGKILL)
        ck.check("the supervisor saw the worker killed", srv.wait_re(
            rf"event=worker_exit worker={victim} pid={pids[victim]} signal=Killed"))
        ck.check("the supervisor restarted it", srv.wait_re(
            rf"event=worker_started worker={victim} pid=(?!{pids[victim]})\d+"))
        ck.check("the new worker subscribed", redis.wait_subscribers(channel, 2, 15))
        # The killed worker's clients see their connections end; none of the others may.
        left = await wt.apoll(lambda: sum(ws.open for ws in clients) == sent.get(1 - victim), 10)
        alive = [ws for ws in clients if ws.open]
        ck.check(f"the other worker's {sent.get(1 - victim)} clients are all still open", left,
                 f"{len(alive)} open")
        newcomers = await wt.connect_many(srv.url(), 50)
        ck.check("new clients connect after the restart", len(newcomers) == 50)
        everyone = alive + newcomers
        ck.check("PUBLISH after the restart", redis.publish(channel, "hello-2") == 2)
        await all_got(ck, "survivors and newcomers got it", everyone, "hello-2")

        # 3. A Redis outage, until both workers lost the link and failed to reconnect once:
        # no client is disconnected; publishing works again after.
        tried = srv.count("event=redis_unreachable")
        redis.stop()
        ck.check("both workers saw the outage (link lost, a reconnect refused)", srv.wait_log(
            "worker=0 ", "event=redis_link_lost") and srv.wait_log(
            "worker=1 ", "event=redis_link_lost") and wt.poll(
            lambda: srv.count("event=redis_unreachable") >= tried + 2, 15))
        ck.check("no client disconnected while Redis was down", all(ws.open for ws in everyone))
        redis.start()
        ck.check("both workers resubscribed after Redis came back",
                 redis.wait_subscribers(channel, 2, 20))
        ck.check("PUBLISH after the outage", redis.publish(channel, "hello-3") == 2)
        await all_got(ck, "every client got the message after the outage", everyone, "hello-3")
        ck.check("no client disconnected across the outage", all(ws.open for ws in everyone))

        # 4. SIGTERM to the supervisor: close 1001 for everyone, exit 0.
        srv.signal(signal.SIGTERM)
        codes = await asyncio.gather(*(wt.close_code(ws) for ws in everyone))
        ck.check("every client got close 1001", all(c == 1001 for c in codes),
                 f"{codes.count(1001)}/{len(codes)}")
        ck.check("the supervisor exited 0", srv.wait(20) == 0, f"rc={srv.proc.returncode}")
        ck.check("supervisor logged stop", srv.count("supervisor pid=", "event=stopped") == 1)


def worker_of_each(ck, srv, conns_per_worker, connect, limit=120):
    """Connects clients one at a time until every worker holds conns_per_worker of them;
    /stats says which worker took each. Returns {worker: [client, ...]}."""
    by_worker = {w: [] for w in range(srv.procs)}
    seen = [0] * srv.procs
    for _ in range(limit):
        if all(len(v) >= conns_per_worker for v in by_worker.values()):
            break
        c = connect()
        now = srv.worker_conns(total=sum(seen) + 1) or seen
        grew = [w for w in range(srv.procs) if now[w] > seen[w]]
        if len(grew) != 1:
            ck.check("/stats counts each new client on one worker", False, f"{seen} -> {now}")
            break
        by_worker[grew[0]].append(c)
        seen = now
    ck.check(f"clients on each of the {srv.procs} workers", all(
        len(v) >= conns_per_worker for v in by_worker.values()),
        str({w: len(v) for w, v in by_worker.items()}))
    return by_worker


def procs_frames(ck, binary):
    with wt.Server(binary, threads=1, procs=3, interval=1) as srv:
        by_worker = worker_of_each(ck, srv, 2, lambda: wt.ws_connect(wt.HOST, srv.port))
        conns = [c for cs in by_worker.values() for c in cs]
        # Every client is counted (so OPEN): every tick the supervisor sends after this
        # reaches all of them. Earlier ones may have reached only some: skipped by seq.
        last = max([int(s) for s in re.findall(r"event=supervisor_broadcast seq=(\d+)",
                                               srv.log())] or [0])
        for k, how in ((1, "tick"), (2, "tick"), (3, "SIGUSR1")):
            if how == "SIGUSR1":
                srv.signal(signal.SIGUSR1)
            want = last + k
            frames = []
            for c in conns:
                f = c.read_frame(10, raw=True)
                while f is not None and (wt.parse_time_msg(wt.parse_frame(f)[2]) or (0, 0))[1] \
                        < want:
                    f = c.read_frame(10, raw=True)
                frames.append(f)
            msg = wt.parse_time_msg(wt.parse_frame(frames[0])[2]) if frames[0] else None
            ck.check(f"{how} seq {want}: a time message", msg is not None and msg[1] == want,
                     repr(frames[0]))
            ck.check(f"{how} seq {want}: byte-identical frames from the 3 workers",
                     all(f == frames[0] for f in frames),
                     f"{len(set(frames))} distinct: {sorted(set(frames), key=repr)[:3]}")
        for c in conns:
            c.close()
        ck.check("exit 0", srv.stop() == 0)


async def admin_procs(ck, binary):
    with wt.Server(binary, threads=1, procs=2) as srv:
        plain = await wt.connect_many(srv.url(), 20)
        news = await wt.connect_many(srv.url("?channels=news"), 10)
        per = srv.worker_conns(total=30)
        ck.check("both workers hold clients", per and all(per), f"per worker {per}")
        st, reply = srv.publish("hello procs")
        ck.check("POST /publish on the supervisor is 202 with a seq",
                 st == 202 and reply.get("seq", 0) >= 1, f"{st} {reply}")
        await all_got(ck, "every default client of both workers got it", plain, "hello procs")
        st, _ = srv.publish("for-news", channel="news")
        ck.check("POST /publish?channel=news is 202", st == 202)
        await all_got(ck, "every news client got it, and the default message never came first",
                      news, "for-news")
        srv.publish("marker")
        await all_got(ck, "default clients never got the news message: the marker came next",
                      plain, "marker")
        await wt.close_all(plain + news)
        ck.check("exit 0", srv.stop() == 0)


async def admin_redis(ck, binary):
    with wt.Redis() as redis, \
            wt.Server(binary, redis=redis) as one, \
            wt.Server(binary, threads=1, procs=2, redis=redis) as two:
        ck.check("all three processes subscribed", redis.wait_subscribers("wspush", 3))
        plain = await wt.connect_many(one.url(), 10) + await wt.connect_many(two.url(), 20)
        news = (await wt.connect_many(one.url("?channels=news"), 5) +
                await wt.connect_many(two.url("?channels=news"), 10))
        st, _ = one.publish("through redis")
        ck.check("POST /publish with --redis is 202", st == 202)
        await all_got(ck, "it reached the clients of both instances, through Redis", plain,
                      "through redis")
        st, _ = two.publish("news through redis", channel="news")
        ck.check("POST /publish?channel=news on the supervisor is 202", st == 202)
        await all_got(ck, "news clients of both instances got it", news, "news through redis")
        one.publish("marker")
        await all_got(ck, "each default client got each message once: the marker came next",
                      plain, "marker")
        one.publish("news marker", channel="news")
        await all_got(ck, "each news client got the news once: the news marker came next", news,
                      "news marker")
        await wt.close_all(plain + news)
        ck.check("both exit 0", one.stop() == 0 and two.stop() == 0)


async def redis_dropped(ck, binary):
    with wt.Redis() as redis, wt.Server(binary, redis=redis) as srv:
        ck.check("subscribed", srv.wait_log("event=redis_subscribed", timeout=15))
        plain = await wt.connect_many(srv.url(), 3)
        news = await wt.connect_many(srv.url("?channels=news"), 2)
        bad = [("invalid_utf8", "wspush", b"ok \xff\xfe"),
               ("too_large", "wspush", b"x" * (64 * 1024 + 1)),
               ("invalid_channel", "wspush:bad name", b"fine")]
        for _, chan, msg in bad:
            ck.check(f"PUBLISH {msg[:8]!r}... on {chan} reached the server",
                     redis.publish(chan, msg) == 1)
        redis.publish("wspush", "valid after")
        redis.publish("wspush:news", "news after")
        await all_got(ck, "the next valid message arrives, nothing before it", plain,
                      "valid after")
        await all_got(ck, "the next valid news arrives, nothing before it", news, "news after")
        for why, _, msg in bad:
            ck.check(f"{why}: logged as dropped", srv.count(
                "event=redis_message_dropped", f"bytes={len(msg)} ", f"reason={why}") == 1)
        # The gauge is copied from the Redis module once a second.
        n = wt.poll(lambda: srv.metric("wspush_redis_dropped_total") == len(bad), 5)
        ck.check("wspush_redis_dropped_total counts the three", n,
                 str(srv.metric("wspush_redis_dropped_total")))
        await wt.close_all(plain + news)
        ck.check("exit 0", srv.stop() == 0)


if __name__ == "__main__":
    sys.exit(wt.main({f.__name__: f for f in (redis_prefork, procs_frames, admin_procs,
                                              admin_redis, redis_dropped)}))
