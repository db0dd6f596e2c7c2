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
  redis_resolve   --redis with a host name: localhost (/etc/hosts) is resolved off the loop,
                  for the subscriber and for a --procs supervisor's publishing link; a name
                  that cannot resolve (.invalid) is logged, counted and retried while
                  broadcasts and the admin API carry on; a connect that hangs (a full
                  listen queue) is given up after 5 s and retried, and subscribes once Redis
                  is there
  redis_resolve_slow  (root) a resolver that answers when the test says (a DNS server of
                  the test's own, given to the server through a private mount of
                  /etc/resolv.conf): while the lookup is pending the server starts, broadcasts
                  and answers its admin API; every reconnect resolves again, and follows
                  the host to a new address

usage: /usr/bin/python3 test_cluster.py SCENARIO PATH_TO_WSPUSH
"not delivered" is always shown by a marker sent afterwards arriving next, never by silence.
"""
import asyncio
import os
import re
import signal
import socket
import struct
import sys
import tempfile
import time

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


# ---- Redis host names (#20 item 4) ----

def publish_reaches(ck, what, redis, clients, msg, channel="wspush"):
    """PUBLISH msg reached one subscriber and each client's next frame is msg."""
    n = redis.publish(channel, msg)
    frames = [c.read_frame(10) for c in clients]
    ck.check(what, n >= 1 and all(f and f[2] == msg.encode() for f in frames),
             f"PUBLISH reached {n}; {[f and f[2][:20] for f in frames][:3]}")


def serving(ck, what, srv, clients):
    """While Redis is out of reach: a SIGUSR1 broadcast reaches every client, and /healthz and
    /metrics answer at once."""
    srv.signal(signal.SIGUSR1)
    got = [c.read_frame(10) for c in clients]
    ck.check(f"{what}: a broadcast reaches every client",
             all(f and wt.parse_time_msg(f[2]) for f in got), f"{got[:2]}")
    t0 = wt.now()
    st, _, body = srv.http("GET", "/healthz")
    took = wt.now() - t0
    ck.check(f"{what}: /healthz answers 200 at once", st == 200 and took < 1.0,
             f"{st} in {took * 1000:.0f} ms")
    ck.check(f"{what}: /metrics answers", srv.http("GET", "/metrics")[0] == 200)


def redis_resolve(ck, binary):
    with wt.Redis() as redis:
        url = f"redis://localhost:{redis.port}"
        # A. /etc/hosts: resolved off the loop, subscribed; the publishing link too.
        with wt.Server(binary, redis=url) as srv:
            ck.check("A: localhost resolved", srv.wait_log(
                "event=redis_resolved host=localhost addr=127.0.0.1 previous=none"))
            ck.check("A: subscribed", srv.wait_log("event=redis_subscribed", timeout=15))
            cs = [wt.ws_connect(wt.HOST, srv.port) for _ in range(3)]
            publish_reaches(ck, "A: PUBLISH reaches the clients", redis, cs, "via-localhost")
            st, _ = srv.publish("admin-via-localhost")
            ck.check("A: POST /publish is 202", st == 202)
            ck.check("A: ...and comes back through Redis",
                     all((f := c.read_frame(10)) and f[2] == b"admin-via-localhost" for c in cs))
            ck.check("A: exit 0", srv.stop() == 0)
        with wt.Server(binary, threads=1, procs=2, redis=url) as srv:
            ck.check("A: --procs 2: both workers subscribed",
                     redis.wait_subscribers("wspush", 2, 15))
            ck.check("A: the supervisor resolved localhost for its publishing link",
                     srv.wait_log("supervisor", "event=redis_resolved host=localhost"))
            cs = [wt.ws_connect(wt.HOST, srv.port) for _ in range(6)]
            st, _ = srv.publish("supervisor-via-localhost")
            ck.check("A: POST /publish on the supervisor is 202", st == 202)
            ck.check("A: the supervisor's link published it to every client, through Redis",
                     all((f := c.read_frame(10)) and f[2] == b"supervisor-via-localhost"
                         for c in cs))
            ck.check("A: --procs exit 0", srv.stop() == 0)

    # B. A name that cannot resolve: logged once, counted, retried; the server carries on.
    with wt.Server(binary, redis="redis://no-such-host.invalid:6379") as srv:
        ck.check("B: the failure is logged", srv.wait_log(
            "level=warn", "event=redis_resolve_failed host=no-such-host.invalid", timeout=30))
        line = re.search(r".*event=redis_resolve_failed.*", srv.log())
        ck.check("B: ...saying why: the resolver's error name and its text",
                 line and re.search(r' error=EAI_[A-Z]+ detail="[^"]+" failures=1 retry_ms=\d+',
                                    line.group(0)), line and line.group(0))
        cs = [wt.ws_connect(wt.HOST, srv.port) for _ in range(20)]
        serving(ck, "B", srv, cs)
        n = wt.poll(lambda: srv.metric("wspush_redis_resolve_failures_total") >= 3, 60, 0.1)
        ck.check("B: retried and counted (wspush_redis_resolve_failures_total >= 3)", n,
                 str(srv.metric("wspush_redis_resolve_failures_total")))
        ck.check("B: logged once at warn level, the retries at debug",
                 srv.count("level=warn", "event=redis_resolve_failed") == 1)
        st, _, body = srv.http("POST", "/publish", b"x")
        ck.check("B: POST /publish says Redis is unreachable (500)",
                 st == 500 and b"unreachable" in body, f"{st} {body[:80]}")
        serving(ck, "B, later", srv, cs)
        ck.check("B: never subscribed", srv.count("event=redis_subscribed") == 0)
        for c in cs:
            c.close()
        ck.check("B: exit 0 while retrying", srv.stop() == 0)

    # C. A connect that hangs: a listener whose accept queue is full drops SYNs.
    blocker = socket.socket()
    blocker.bind((wt.HOST, 0))
    blocker.listen(0)
    port = blocker.getsockname()[1]
    filler = socket.create_connection((wt.HOST, port), timeout=5)  # the queue's one place
    redis = wt.Redis(start=False)
    redis.port = port
    try:
        with wt.Server(binary, redis=f"redis://localhost:{port}") as srv:
            t0 = wt.now()
            hung = srv.wait_log("event=redis_unreachable", 'error="connect timeout"', timeout=15)
            ck.check("C: a hung connect is given up after 5 s", hung and wt.now() - t0 >= 4.5,
                     f"after {wt.now() - t0:.1f} s")
            cs = [wt.ws_connect(wt.HOST, srv.port) for _ in range(5)]
            serving(ck, "C", srv, cs)
            filler.close()
            blocker.close()
            redis.start()
            ck.check("C: subscribed once Redis listens there",
                     srv.wait_log("event=redis_subscribed", timeout=20))
            publish_reaches(ck, "C: PUBLISH reaches the clients", redis, cs, "after-hang")
            ck.check("C: exit 0", srv.stop() == 0)
    finally:
        filler.close()
        blocker.close()
        redis.close()


class FakeDNS:
    """A DNS server on UDP addr:53 for the server under test (through its resolv.conf): A
    queries are answered with `answer` when pump() runs with one set, else held unanswered;
    other types get an empty answer. Only this test's process serves it."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.sock.setblocking(False)
        self.answer = None
        self.held = []
        self.a_queries = []  # names asked for, in order

    def pump(self):
        """Reads what came; answers what it can. Returns the number of A queries so far."""
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except BlockingIOError:
                break
            i, labels = 12, []
            while i < len(data) and data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode())
                i += 1 + data[i]
            qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
            q = (data[:2], data[12:i + 5], qtype, peer)
            if qtype == 1:
                self.a_queries.append(".".join(labels))
                self.held.append(q)
            else:
                self._reply(q, None)
        if self.answer:
            for q in self.held:
                self._reply(q, self.answer)
            self.held = []
        return len(self.a_queries)

    def _reply(self, q, ip):
        qid, question, qtype, peer = q
        rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(ip) if ip else b""
        head = qid + struct.pack(">HHHHH", 0x8180, 1, 1 if rr else 0, 0, 0)  # QR RD RA, NOERROR
        self.sock.sendto(head + question + rr, peer)

    def close(self):
        self.sock.close()


def redis_resolve_slow(ck, binary):
    if os.geteuid() != 0:
        raise wt.Skip("needs root: a private mount of /etc/resolv.conf, a DNS server on port 53")
    wt.need("unshare", "util-linux")
    pid = os.getpid()
    dns_addr = f"127.53.{(pid >> 8) & 255}.{pid & 255 or 1}"  # this test's own
    dns = FakeDNS(dns_addr)
    conf = tempfile.NamedTemporaryFile("w", prefix="wspush-resolv-", suffix=".conf")
    # One attempt, 30 s: the lookup stays pending for as long as the test holds it.
    conf.write(f"nameserver {dns_addr}\noptions timeout:30 attempts:1\n")
    conf.flush()
    host = "redis.wspush-test"
    prefix = ["unshare", "--mount", "--", "/bin/sh", "-c",
              'mount --bind "$0" /etc/resolv.conf && exec "$@"', conf.name]
    try:
        with wt.Redis() as redis, wt.Server(binary, redis=f"redis://{host}:{redis.port}",
                                            prefix=prefix) as srv:
            # The server is listening (Server() waited for it) with the lookup unanswered.
            ck.check("the lookup reached the test's DNS server", wt.poll(dns.pump, 10),
                     "no query: is nscd or another cache in the way?")
            cs = [wt.ws_connect(wt.HOST, srv.port) for _ in range(20)]
            serving(ck, "lookup pending", srv, cs)
            ck.check("lookup pending: the first query is still unanswered",
                     dns.pump() == 1 and len(dns.held) == 1 and
                     srv.count("event=redis_resolved") == 0)
            # First answer: an address where nothing listens; every later one: Redis's.
            dns.answer = "127.0.0.2"
            dns.pump()
            dns.answer = "127.0.0.1"
            ok = wt.poll(lambda: dns.pump() and srv.count("event=redis_subscribed"), 20)
            ck.check("subscribed after the answers", ok)
            ck.check("the refused address was given up", srv.wait_log(
                "event=redis_unreachable", "addr=127.0.0.2"))
            ck.check("the reconnect resolved again and followed the host", srv.count(
                f"event=redis_resolved host={host} addr=127.0.0.1 previous=127.0.0.2") == 1 and
                len(dns.a_queries) >= 2 and set(dns.a_queries) == {host}, str(dns.a_queries))
            publish_reaches(ck, "PUBLISH reaches the clients", redis, cs, "after-dns")
            # A Redis restart: the link is lost, the reconnect asks the resolver again.
            asked = dns.pump()
            redis.stop()
            ck.check("the link loss is seen", srv.wait_log("event=redis_link_lost"))
            redis.start()
            ok = wt.poll(lambda: dns.pump() and srv.count("event=redis_subscribed") == 2, 20)
            ck.check("resubscribed after the restart, resolving again", ok and
                     dns.pump() > asked, f"A queries {asked} -> {dns.pump()}")
            publish_reaches(ck, "PUBLISH after the restart", redis, cs, "after-restart")
            for c in cs:
                c.close()
            ck.check("exit 0", srv.stop() == 0)
    finally:
        dns.close()
        conf.close()


if __name__ == "__main__":
    sys.exit(wt.main({f.__name__: f for f in (redis_prefork, procs_frames, admin_procs,
                                              admin_redis, redis_dropped, redis_resolve,
                                              redis_resolve_slow)}))
