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
  procs     --procs 2: the supervisor replaces its workers one at a time; every client of
            both stays open and gets the next broadcast once; the supervisor's pid stays
  v1        wspush.v1 clients (issue #17) and permessage-deflate ones (#19): numbered
            messages go on after the handover in the same epoch with the next seq, nothing
            twice, none closed; a client resuming with the old epoch is recovered
  auth      token-authenticated clients (issue #16, HS256 from PyJWT), one with a token that
            expires a few seconds after the upgrade: none closed by it; each gets the next
            broadcast once; a ?user= publish reaches exactly that user's connections (the
            old ones and one made since); a refresh for the same sub keeps a carried
            connection, one for another sub closes it with 4003; the short token's connection
            is closed by the new process with 4001 within 1 s of its exp
  auth_procs  the same under --procs 2: both workers replaced, every user's connections on
            both reached by a ?user= publish, the short tokens closed with 4001 at their exp
  auth_misfit  a new process that cannot keep what the connections carry closes them with
            4001 (the client comes back with a token for it): HS256 to HS384 (the binary at
            the path replaced by a script adding the flag), then no auth to HS256; logged and
            counted, and the new process admits a token of its own

usage: /usr/bin/python3 test_upgrade.py SCENARIO PATH_TO_WSPUSH
After an upgrade the serving process is not the test's child but its grandchild: the test
makes itself a child subreaper, so the new process is reaped (and killed) here.
"""
import asyncio
import contextlib
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time

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
    with wt.Server(binary, threads=1, procs=2) as srv:
        try:
            conns = cl.connect(srv.port, 400)
            per = srv.worker_conns(total=400)
            ck.check("both workers hold clients", per and all(per), str(per))
            before = srv.worker_pids()
            srv.signal(signal.SIGUSR2)
            done = srv.wait_re(r"event=upgrade_workers_done workers=2", 40)
            ck.check("the supervisor replaced both workers", done is not None)
            after = srv.worker_pids()
            ck.check("each worker has a new pid", all(after.get(w) not in (None, before[w])
                                                     for w in before), f"{before} -> {after}")
            starts = [int(m.group(1)) for m in re.finditer(
                r"event=upgrade_worker_started worker=(\d+)", srv.log())]
            ck.check("one at a time: worker 0, then worker 1", starts == [0, 1], str(starts))
            ck.check("the supervisor itself still runs (same pid)", srv.alive())
            srv.signal(signal.SIGUSR1)
            ok = cl.wait(lambda m: len(m) >= 1, conns, 15)
            cl.pump(0.2)
            ck.check("every client of both workers got the broadcast once",
                     ok and all(len(cl.msgs[c]) == 1 for c in conns),
                     f"{sum(len(m) == 1 for m in cl.msgs.values())} of {len(conns)}")
            ck.check("no client was closed", not cl.closed(), f"{len(cl.closed())} closed")
            cl.close()
            ck.check("exit 0", srv.stop() == 0)
        finally:
            cl.close()


async def v1(ck, binary):
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


SECRET = "wspush-upgrade-test-secret-0123456789abcdef0123456789"


@contextlib.contextmanager
def hs_key():
    """The HS256 secret in a file, for --auth-jwt-key."""
    with tempfile.TemporaryDirectory(prefix="wspush-upgrade-auth-") as d:
        path = os.path.join(d, "hs.key")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        yield ["--auth-jwt-alg", "HS256", "--auth-jwt-key", path, "--auth-leeway", "0"]


def token(sub, exp, alg="HS256"):
    try:
        import jwt  # Debian python3-jwt (PyJWT)
    except ImportError:
        raise wt.Missing("python3-jwt", "python3-jwt")
    return jwt.encode({"sub": sub, "exp": int(exp)}, SECRET, algorithm=alg)


def users(cl, port, per_user, exp):
    """{sub: [conn, ...]}: per_user[sub] clients with a token for sub expiring at exp."""
    return {sub: cl.connect(port, n, "/?token=" + token(sub, exp)) for sub, n in per_user.items()}


def user_publish(ck, srv, cl, by, sub, msg, want):
    """POST ?user=sub: the reply counts want connections, and each of by[sub] gets msg."""
    st, reply = srv.publish_user(sub, msg)
    ck.check(f"?user={sub} after the upgrade: 202 with {want} connections",
             st == 202 and reply == {"connections": want, "complete": True}, f"{st} {reply}")
    ck.check(f"every connection of {sub} got it",
             cl.wait(lambda m: m and m[-1] == msg, by[sub], 10))


def expired_at(ck, cl, conns, exp, slow):
    """The connections of a token expiring at exp close with 4001 within 1 s of it."""
    ok = cl.wait(lambda m: m and m[-1] == "close=4001", conns, exp - time.time() + 10)
    t = time.time()
    ck.check("the short token's connections got 4001 from the new process", ok,
             str([cl.msgs[c][-1:] for c in conns]))
    ck.note(f"closed {t - exp:+.3f} s after exp")
    ck.check("within 1 s of exp", ok and exp <= t <= exp + 1.0 + (0.5 if slow else 0.25),
             f"closed {t - exp:+.3f} s after exp")
    cl.drop(conns)  # the server closes them once the client did, and counts them


def auth_checks(ck, srv, cl, by, short, short_exp, slow, signal_pid):
    """After the upgrade: none closed, the next broadcast once each, user publishes, the short
    token's expiry. signal_pid is who gets SIGUSR1 (the new process, or the supervisor)."""
    everyone = [c for conns in by.values() for c in conns] + short
    ck.check("no client was closed", not cl.closed(), f"{len(cl.closed())} closed")
    ck.check("the upgrade was done before the short token's exp (else its expiry says "
             "nothing of the new process)", time.time() < short_exp - 1,
             f"{short_exp - time.time():.1f} s left")
    os.kill(signal_pid, signal.SIGUSR1)
    ok = cl.wait(lambda m: len(m) >= 2, everyone, 15)
    cl.pump(0.2)
    ck.check(f"each of the {len(everyone)} clients got the next broadcast exactly once",
             ok and all(len(cl.msgs[c]) == 2 for c in everyone),
             f"{sum(len(cl.msgs[c]) == 2 for c in everyone)} of {len(everyone)}")
    user_publish(ck, srv, cl, by, "bob", "for-bob", len(by["bob"]))
    st, _ = srv.publish("marker")
    others = [c for sub, conns in by.items() if sub != "bob" for c in conns]
    ck.check("nobody else got bob's message: the marker came next",
             cl.wait(lambda m: m and m[-1] == "marker", others + by["bob"], 10) and
             all(cl.msgs[c][2:] == ["marker"] for c in others) and
             all(cl.msgs[c][2:] == ["for-bob", "marker"] for c in by["bob"]),
             str({tuple(cl.msgs[c][2:]) for c in others + by["bob"]}))
    late = cl.connect(srv.port, 1, "/?token=" + token("alice", time.time() + 600))
    by["alice"] = by["alice"] + late
    user_publish(ck, srv, cl, by, "alice", "for-alice", len(by["alice"]))
    expired_at(ck, cl, short, short_exp, slow)
    ck.check("no other client was closed", not cl.closed())


def auth(ck, binary):
    with hs_key() as flags, session(ck, binary, *flags) as (srv, cl):
        by = users(cl, srv.port, {"alice": 4, "bob": 3, "carol": 3}, time.time() + 600)
        short_exp = int(time.time()) + (20 if ck.slow else 6)
        short = cl.connect(srv.port, 1, "/?token=" + token("dave", short_exp))
        everyone = [c for conns in by.values() for c in conns] + short
        srv.signal(signal.SIGUSR1)  # every client is OPEN once this arrived
        ck.check("11 clients with tokens connected and got the first tick",
                 cl.wait(lambda m: len(m) == 1, everyone, 20))
        srv.signal(signal.SIGUSR2)
        new = upgraded(ck, srv)
        ck.check("the new process goes on with the old one's user-id key",
                 srv.count("event=upgrade_adopting", "auth_key=same_algorithm") == 1)
        ck.check("no adopted connection was closed for its token",
                 srv.count("event=handover_adopted", "token_misfit=0") == 2)
        auth_checks(ck, srv, cl, by, short, short_exp, ck.slow, new)
        # A refresh checks the carried user id against the sub of the new token.
        keep, wrong = by["carol"][0], by["carol"][1]
        refreshes = srv.metric("wspush_auth_refreshes_total")
        keep.send_all(wt.frame(wt.OP_TEXT, json.dumps(
            {"refresh": token("carol", time.time() + 900)}).encode()))
        wrong.send_all(wt.frame(wt.OP_TEXT, json.dumps(
            {"refresh": token("bob", time.time() + 900)}).encode()))
        ck.check("a carried connection refreshed with another sub's token closes with 4003",
                 cl.wait(lambda m: m and m[-1] == "close=4003", [wrong], 10))
        cl.drop([wrong])
        ck.check("one refreshed with its own sub's token is kept (refresh counted)", wt.poll(
            lambda: srv.metric("wspush_auth_refreshes_total") == refreshes + 1, 5))
        by["carol"] = [c for c in by["carol"] if c is not wrong]
        user_publish(ck, srv, cl, by, "carol", "for-carol", 2)
        ck.check("closes counted by reason in the new process", wt.poll(lambda: srv.metric(
            'wspush_connections_closed_total{reason="token_expired"}') == 1 and srv.metric(
            'wspush_connections_closed_total{reason="token_invalid"}') == 1, 5))


def auth_procs(ck, binary):
    cl = Clients()
    with hs_key() as flags, wt.Server(binary, *flags, threads=1, procs=2) as srv:
        try:
            by = users(cl, srv.port, {"alice": 6, "bob": 6}, time.time() + 600)
            short_exp = int(time.time()) + (40 if ck.slow else 12)
            short = cl.connect(srv.port, 4, "/?token=" + token("dave", short_exp))
            per = srv.worker_conns(total=16)
            ck.check("both workers hold clients", per and all(per), str(per))
            everyone = [c for conns in by.values() for c in conns] + short
            srv.signal(signal.SIGUSR1)
            ck.check("16 clients with tokens connected and got the first tick",
                     cl.wait(lambda m: len(m) == 1, everyone, 20))
            srv.signal(signal.SIGUSR2)
            ck.check("the supervisor replaced both workers",
                     srv.wait_re(r"event=upgrade_workers_done workers=2", 40) is not None)
            ck.check("each new worker goes on with its old worker's user-id key",
                     srv.count("event=upgrade_adopting", "auth_key=same_algorithm") == 2)
            ck.check("no adopted connection was closed for its token",
                     srv.count("event=handover_adopted", "token_misfit=0") == 2)
            auth_checks(ck, srv, cl, by, short, short_exp, ck.slow, srv.pid)
            cl.close()
            ck.check("exit 0", srv.stop() == 0)
        finally:
            cl.close()


def status_of(port, path):
    """The status of one upgrade request for path (the connection is closed again)."""
    c = wt.Conn(wt.HOST, port)
    try:
        c.send_all(wt.upgrade_request(path)[0])
        return c.read_head()[0]
    finally:
        c.close()


def misfit_upgrade(ck, srv, cl, conns, exe, script, key_said):
    """SIGUSR2 with script at the server's path: each of conns closes with 4001 from the new
    process, logged and counted."""
    install(exe, script)
    srv.signal(signal.SIGUSR2)
    upgraded(ck, srv)
    ck.check(f"the new process said auth_key={key_said}",
             srv.count("event=upgrade_adopting", f"auth_key={key_said}") == 1)
    ck.check(f"every one of the {len(conns)} carried connections closed with 4001",
             cl.wait(lambda m: m and m[-1] == "close=4001", conns, 10),
             str({tuple(cl.msgs[c][-1:]) for c in conns}))
    cl.drop(conns)
    n = sum(int(x) for x in re.findall(r"event=handover_adopted .*?token_misfit=(\d+)", srv.log()))
    ck.check("counted as token_misfit on adoption", n == len(conns), f"{n}")
    ck.check("and as token_expired closes", wt.poll(lambda: srv.metric(
        'wspush_connections_closed_total{reason="token_expired"}') == len(conns), 5))


def auth_misfit(ck, binary):
    with tempfile.TemporaryDirectory(prefix="wspush-upgrade-") as tmp, hs_key() as flags:
        exe = os.path.join(tmp, "wspush")
        shutil.copy(binary, exe)
        with open(binary, "rb") as f:
            real = f.read()
        with session(ck, exe, *flags) as (srv, cl):
            by = users(cl, srv.port, {"alice": 3, "bob": 2}, time.time() + 600)
            conns = [c for l in by.values() for c in l]
            srv.signal(signal.SIGUSR1)
            ck.check("5 clients with HS256 tokens", cl.wait(lambda m: len(m) == 1, conns, 20))
            hs384 = "/?token=" + token("alice", time.time() + 60, "HS384")
            ck.check("the old process refuses an HS384 token", status_of(srv.port, hs384) == 401)
            misfit_upgrade(ck, srv, cl, conns, exe, f'#!/bin/sh\nexec {shlex.quote(binary)} '
                           f'"$@" --auth-jwt-alg HS384\n'.encode(), "other_algorithm")
            ck.check("logged why", srv.count("event=upgrade_auth_misfit",
                                             "reason=other_algorithm") == 1)
            ck.check("the new process admits an HS384 token", status_of(srv.port, hs384) == 101)
        install(exe, real)
        with session(ck, exe) as (srv, cl):
            conns = cl.connect(srv.port, 4)
            srv.signal(signal.SIGUSR1)
            ck.check("4 clients without a token", cl.wait(lambda m: len(m) == 1, conns, 20))
            args = " ".join(shlex.quote(a) for a in flags)
            misfit_upgrade(ck, srv, cl, conns, exe,
                           f'#!/bin/sh\nexec {shlex.quote(binary)} "$@" {args}\n'.encode(),
                           "none")
            ck.check("the new process refuses a client without a token",
                     status_of(srv.port, "/") == 401)
            ck.check("and admits one with a token", status_of(
                srv.port, "/?token=" + token("alice", time.time() + 60)) == 101)


if __name__ == "__main__":
    sys.exit(wt.main({"handover": handover, "race": race, "flood": flood, "failed": failed,
                      "procs": procs, "v1": v1, "auth": auth, "auth_procs": auth_procs,
                      "auth_misfit": auth_misfit},
                     timeout=120))
