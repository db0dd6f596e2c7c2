#!/usr/bin/python3
"""The live upgrade (SIGUSR2, issue #20) with token-authenticated connections (issue #16),
against the real binary, one scenario per run (the helpers are test_upgrade.py's):

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

usage: /usr/bin/python3 test_upgrade_auth.py SCENARIO PATH_TO_WSPUSH
"""
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402
from test_upgrade import Clients, install, session, subreaper, upgraded  # noqa: E402,F401


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
    sys.exit(wt.main({"auth": auth, "auth_procs": auth_procs, "auth_misfit": auth_misfit},
                     timeout=120))
