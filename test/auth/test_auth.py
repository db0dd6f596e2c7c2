#!/usr/bin/python3
"""Token auth (issue #16) against the real binary, one scenario per run. Tokens are minted by
PyJWT (Debian python3-jwt); keys are made at test time with the openssl CLI.

  verify      HS256, RS256 and ES256 servers: a valid token gets 101; a bad signature, alg
              none, HS256 signed with the RSA public key, expired, nbf in the future, wrong aud,
              wrong iss, no sub, bad base64 and a 5 KiB token each get 401 with its reason and
              its counter; a channel outside the claim 403; the token works in the header, the
              query and the cookie
  expiry      a token expiring in 3 s closes with 4001 within 1 s of expiry; one refreshed
              at 2 s stays open; refreshes with an invalid token or another user's close with
              4003; both closes counted by reason
  procs_user  --procs 2: POST /publish?user= reaches exactly that user's connections on both
              workers (a sub with ':', '#', a space and UTF-8), and says how many
  redis_user  through a real redis-server: a user publish on one instance reaches that user on
              it and on a --procs 2 instance beside it; the answer counts this machine's; a
              PUBLISH on NAME:#<sub> straight to Redis reaches the user too
  secrets     --log-level debug through every path (valid and refused tokens, refresh, user
              publish, SIGHUP with a new key and with a bad one): no log line holds a token, a
              token's signature, the secret or a line of a key file; SIGHUP's new key admits
              new connections, the old one no longer, open connections stay

usage: /usr/bin/python3 test_auth.py SCENARIO PATH_TO_WSPUSH
"""
import asyncio
import base64
import hashlib
import hmac
import json
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

try:
    import jwt  # Debian python3-jwt (PyJWT 2.6), with python3-cryptography for RS/ES
except ImportError:
    raise SystemExit("python3-jwt is missing (Debian package python3-jwt; `make deps`)")

SECRET = "wspush-auth-test-secret-0123456789abcdef0123456789ab"


class Keys:
    """Test-only keys in a temporary directory: an HS secret, RSA and EC key pairs."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsp-auth-")
        d = self.dir.name
        self.hs = os.path.join(d, "hs.key")
        with open(self.hs, "w") as f:
            f.write(SECRET + "\n")
        wt.need("openssl")
        for name, opts in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
            pem = os.path.join(d, name + ".pem")
            subprocess.run(["openssl", "genpkey", *opts, "-out", pem], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-out",
                            os.path.join(d, name + ".pub")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.priv = {"RS256": self.read("rsa.pem"), "ES256": self.read("ec.pem"), "HS256": SECRET}
        self.pub = {"RS256": os.path.join(d, "rsa.pub"), "ES256": os.path.join(d, "ec.pub"),
                    "HS256": self.hs}

    def read(self, name):
        with open(os.path.join(self.dir.name, name)) as f:
            return f.read()

    def token(self, alg="HS256", sub="alice", exp=60, **claims):
        """A token for sub, expiring exp seconds from now (None: no exp)."""
        c = dict(claims)
        if sub is not None:
            c["sub"] = sub
        if exp is not None:
            c["exp"] = int(time.time()) + exp
        return jwt.encode(c, self.priv[alg], algorithm=alg)

    def close(self):
        self.dir.cleanup()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256_with(key_bytes, claims):
    """An HS256 token whose HMAC key is key_bytes: the algorithm-confusion attack (PyJWT
    refuses to sign with a PEM key, so by hand)."""
    signing = b64u(b'{"alg":"HS256","typ":"JWT"}') + "." + b64u(json.dumps(claims).encode())
    return signing + "." + b64u(hmac.new(key_bytes, signing.encode(), hashlib.sha256).digest())


def attempt(srv, path="/", headers=b""):
    """One upgrade: (status, body) and the connection (open after a 101, else closed)."""
    c = wt.Conn(wt.HOST, srv.port)
    req, key = wt.upgrade_request(path, extra=headers)
    c.send_all(req)
    status, head = c.read_head()
    body = b""
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head or b"")
    if status != 101 and m:
        deadline = wt.now() + 5
        while len(c.buf) < int(m.group(1)) and c.fill(deadline) and wt.now() < deadline:
            pass
        body = bytes(c.buf[:int(m.group(1))])
    if status != 101:
        c.close()
    return status, body, c


def failures(srv):
    text = srv.metrics()
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'wspush_auth_failures_total\{reason="(\w+)"\} (\S+)', text)}


def check_refused(ck, srv, what, reason, path="/", headers=b"", status=401):
    before = failures(srv).get(reason, 0)
    got, body, _ = attempt(srv, path, headers)
    want = json.dumps({"error": reason}, separators=(",", ":")).encode()
    ck.check(f"{what}: {status} {want.decode()}", got == status and body == want,
             f"got {got} {body!r}")
    ck.check(f"{what}: counted as {reason}",
             wt.poll(lambda: failures(srv).get(reason, 0) == before + 1, 5))


def check_ok(ck, srv, what, path="/", headers=b""):
    status, body, c = attempt(srv, path, headers)
    ck.check(f"{what}: 101", status == 101, f"got {status} {body!r}")
    c.close()


def bearer(tok):
    return b"Authorization: Bearer " + tok.encode() + b"\r\n"


def auth_flags(keys, alg, *extra):
    return ["--auth-jwt-alg", alg, "--auth-jwt-key", keys.pub[alg], *extra]


def verify(ck, binary):
    keys = Keys()
    try:
        for alg in ("HS256", "RS256", "ES256"):
            with wt.Server(binary, *auth_flags(keys, alg), threads=1) as srv:
                check_ok(ck, srv, f"{alg}: a valid token", headers=bearer(keys.token(alg)))
                if alg == "RS256":  # the public key's bytes as an HMAC secret
                    with open(keys.pub["RS256"], "rb") as f:
                        forged = hs256_with(f.read(), {"sub": "x", "exp": int(time.time()) + 60})
                    check_refused(ck, srv, "RS256: HS256 signed with the RSA public key",
                                  "algorithm", headers=bearer(forged))
                if alg == "ES256":
                    check_refused(ck, srv, "ES256: an RS256 token", "algorithm",
                                  headers=bearer(keys.token("RS256")))
        flags = auth_flags(keys, "HS256", "--auth-jwt-aud", "wspush", "--auth-jwt-iss", "idp")
        with wt.Server(binary, *flags, threads=2) as srv:
            good = {"aud": "wspush", "iss": "idp"}
            tok = keys.token(**good)
            check_ok(ck, srv, "the header", headers=bearer(tok))
            check_ok(ck, srv, "the query", path="/?token=" + tok)
            check_ok(ck, srv, "the cookie",
                     headers=b"Cookie: a=1; wspush_token=" + tok.encode() + b"; b=2\r\n")
            head, payload, sig = tok.split(".")
            bad_sig = head + "." + payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
            cases = [
                ("no token", "missing", {}),
                ("a bad signature", "signature", {"tok": bad_sig}),
                ("alg none", "algorithm", {"tok": jwt.encode(
                    {"sub": "a", "exp": int(time.time()) + 60, **good}, None, algorithm="none")}),
                ("expired", "expired", {"tok": keys.token(exp=-10, **good)}),
                ("nbf in the future", "not_yet_valid",
                 {"tok": keys.token(nbf=int(time.time()) + 60, **good)}),
                ("a wrong aud", "audience", {"tok": keys.token(aud="other", iss="idp")}),
                ("a wrong iss", "issuer", {"tok": keys.token(aud="wspush", iss="evil")}),
                ("no sub", "malformed", {"tok": keys.token(sub=None, **good)}),
                ("malformed base64", "malformed", {"tok": head + "." + payload[:-2] + "!!." + sig}),
                ("a 5 KiB token", "too_large", {"tok": keys.token(pad="p" * 5000, **good)}),
            ]
            for what, reason, c in cases:
                check_refused(ck, srv, what, reason,
                              headers=bearer(c["tok"]) if "tok" in c else b"")
            news = keys.token(channels=["news", "time"], **good)
            check_ok(ck, srv, "a channel in the claim", path="/?channels=news&token=" + news)
            check_refused(ck, srv, "a channel outside the claim", "forbidden_channel",
                          path="/?channels=news,sport&token=" + news, status=403)
            ck.check("401 and 403 counted by status", wt.poll(lambda: srv.metric(
                'wspush_handshake_failures_total{status="401"}') == len(cases) and srv.metric(
                'wspush_handshake_failures_total{status="403"}') == 1, 5))
    finally:
        keys.close()


async def expiry(ck, binary):
    keys = Keys()
    try:
        with wt.Server(binary, *auth_flags(keys, "HS256"), "--auth-leeway", "0",
                       threads=2) as srv:
            url = srv.url()
            exp = int(time.time()) + 3
            tok = jwt.encode({"sub": "short", "exp": exp}, SECRET, algorithm="HS256")
            ws = await wt.connect(url + "?token=" + tok)
            kept = await wt.connect(url + "?token=" + tok)
            other = await wt.connect(url + "?token=" + keys.token(sub="other"))
            bad = await wt.connect(url + "?token=" + keys.token(sub="bad"))
            # Refresh at 2 s: a valid token for the same sub moves the deadline.
            await wt.apoll(lambda: time.time() >= exp - 1, 5)
            await kept.send(json.dumps({"refresh": keys.token(sub="short", exp=60)}))
            await bad.send(json.dumps({"refresh": tok + "x"}))  # an invalid token
            await other.send(json.dumps({"refresh": keys.token(sub="short")}))  # another sub
            ck.check("an invalid refresh closes with 4003", await wt.close_code(bad, 5) == 4003)
            ck.check("another user's token closes with 4003",
                     await wt.close_code(other, 5) == 4003)
            # The expiry: a close 4001 within 1 s of exp (the shard's 1 s tick).
            code = await wt.close_code(ws, 10)
            t = time.time()
            ck.check("the expired connection got 4001", code == 4001, f"code {code}")
            ck.note(f"closed {t - exp:+.3f} s after exp")
            ck.check("within 1 s of exp", exp <= t <= exp + 1.0 + (0.5 if ck.slow else 0.25),
                     f"closed {t - exp:+.3f} s after exp")
            # The refreshed one is still open past that tick: a user message reaches it.
            st, reply = await asyncio.to_thread(srv.publish_user, "short", "still here")
            ck.check("the refreshed connection still gets its user's messages",
                     st == 202 and reply.get("connections") == 1 and
                     await wt.recv(kept, 5) == "still here", f"{st} {reply}")
            ck.check("closes counted by reason", wt.poll(lambda: srv.metric(
                'wspush_connections_closed_total{reason="token_expired"}') == 1 and srv.metric(
                'wspush_connections_closed_total{reason="token_invalid"}') == 2, 5))
            ck.check("the refresh counted", srv.metric("wspush_auth_refreshes_total") == 1)
            await wt.close_all([kept])
    finally:
        keys.close()


async def users_on(ck, srv, keys, names, per=3):
    """per connections for each user name; {name: [ws, ...]}."""
    out = {}
    for n in names:
        out[n] = await asyncio.gather(*(wt.connect(srv.url("?token=" + keys.token(sub=n)))
                                        for _ in range(per)))
    return out


async def check_user_publish(ck, srv, by_user, user, msg, want_conns):
    st, reply = await asyncio.to_thread(srv.publish_user, user, msg)
    ck.check(f"POST ?user={user!r}: 202 with {want_conns} connections",
             st == 202 and reply == {"connections": want_conns, "complete": True},
             f"{st} {reply}")
    got = await wt.recv_all(by_user[user], 5)
    ck.check(f"every connection of {user!r} got it", all(g == msg for g in got), str(got))


async def only_user_got(ck, srv, by_user, user, msg, marker):
    """After a user message: the others got nothing; a default-channel marker comes next."""
    others = [ws for u, l in by_user.items() if u != user for ws in l]
    st, _ = await asyncio.to_thread(srv.publish, marker)
    got = await wt.recv_all(others, 5)
    ck.check(f"no other user got {msg!r}: the marker came first", all(g == marker for g in got),
             str(got))
    got = await wt.recv_all(by_user[user], 5)
    ck.check(f"{user!r} got the marker next", all(g == marker for g in got), str(got))


async def procs_user(ck, binary):
    keys = Keys()
    try:
        with wt.Server(binary, *auth_flags(keys, "HS256"), threads=1, procs=2) as srv:
            odd = "al:ice #1 \u00e9"
            by_user = await users_on(ck, srv, keys, [odd, "bob"], per=6)
            per = srv.worker_conns(12)
            ck.check("both workers hold connections", per and all(per), str(per))
            await check_user_publish(ck, srv, by_user, odd, "for alice", 6)
            await only_user_got(ck, srv, by_user, odd, "for alice", "marker-1")
            await check_user_publish(ck, srv, by_user, "bob", "for bob", 6)
            st, reply = await asyncio.to_thread(srv.publish_user, "nobody", "x")
            ck.check("a user with no connection: 0", reply.get("connections") == 0, str(reply))
            ck.check("both workers wrote user messages", wt.poll(lambda: all(
                srv.count(f"worker={w} ", "event=user_message", "written=") for w in (0, 1)), 5))
            await wt.close_all([ws for l in by_user.values() for ws in l])
    finally:
        keys.close()


async def redis_user(ck, binary):
    keys = Keys()
    chan = "authtest"
    try:
        with wt.Redis() as redis, \
                wt.Server(binary, *auth_flags(keys, "HS256"), "--channel", chan, threads=2,
                          redis=redis) as a, \
                wt.Server(binary, *auth_flags(keys, "HS256"), "--channel", chan, threads=1,
                          procs=2, redis=redis) as b:
            ck.check("three subscribers (one, and two workers)",
                     redis.wait_subscribers(chan, 3, 15))
            on_a = await users_on(ck, a, keys, ["u:1#x", "v"], per=2)
            on_b = await users_on(ck, b, keys, ["u:1#x", "v"], per=3)
            st, reply = await asyncio.to_thread(a.publish_user, "u:1#x", "via redis")
            ck.check("the answer counts this machine's 2 connections",
                     st == 202 and reply == {"connections": 2, "complete": True},
                     f"{st} {reply}")
            got = await wt.recv_all(on_a["u:1#x"] + on_b["u:1#x"], 5)
            ck.check("the user's connections on both machines got it",
                     all(g == "via redis" for g in got), str(got))
            st, _ = await asyncio.to_thread(a.publish, "marker")
            got = await wt.recv_all(on_a["v"] + on_b["v"], 5)
            ck.check("the other user got only the marker", all(g == "marker" for g in got),
                     str(got))
            await wt.recv_all(on_a["u:1#x"] + on_b["u:1#x"], 5)  # the marker
            n = redis.publish(f"{chan}:#v".encode(), b"straight to redis")
            ck.check("PUBLISH NAME:#<sub> counted 3 subscribers", n == 3)
            got = await wt.recv_all(on_a["v"] + on_b["v"], 5)
            ck.check("a PUBLISH on NAME:#v reaches v everywhere",
                     all(g == "straight to redis" for g in got), str(got))
            await wt.close_all([ws for d in (on_a, on_b) for l in d.values() for ws in l])
    finally:
        keys.close()


def secret_texts(keys, tokens):
    """What no log line may hold: each token and its signature, the secret, every base64 line
    of the key files."""
    out = [SECRET]
    for t in tokens:
        out += [t, t.rsplit(".", 1)[1]]
    for name in ("rsa.pem", "rsa.pub", "ec.pem", "ec.pub"):
        out += [line for line in keys.read(name).splitlines()
                if line and not line.startswith("-----")]
    return [s for s in out if len(s) >= 16]


async def secrets(ck, binary):
    keys = Keys()
    used = []
    try:
        with wt.Server(binary, *auth_flags(keys, "HS256"), "--log-level", "debug",
                       threads=2) as srv:
            url = srv.url()

            def tok(**kw):
                used.append(keys.token(**kw))
                return used[-1]
            ws = await wt.connect(url + "?token=" + tok(sub="keep"))
            await ws.send(json.dumps({"refresh": tok(sub="keep", exp=120)}))
            st, _ = await asyncio.to_thread(srv.publish_user, "keep", "hello")
            ck.check("a user publish reaches the connection", await wt.recv(ws, 5) == "hello")
            for t in (tok(exp=-30), tok(sub=None), tok() + "x"):
                attempt(srv, "/?token=" + t)
            # SIGHUP with a new secret: new connections need it, the open one stays.
            old = tok(sub="old")
            with open(keys.hs, "w") as f:
                f.write(SECRET[::-1] + "\n")
            srv.signal(signal.SIGHUP)
            ck.check("SIGHUP reloaded the key", srv.wait_log("event=auth_key_reloaded"))
            keys.priv["HS256"] = SECRET[::-1]
            ck.check("the old key's token is refused after SIGHUP",
                     wt.poll(lambda: attempt(srv, "/?token=" + old)[0] == 401, 5))
            check_ok(ck, srv, "the new key's token", path="/?token=" + tok(sub="new"))
            # A bad key file keeps the key in use.
            with open(keys.hs, "w") as f:
                f.write("")
            srv.signal(signal.SIGHUP)
            ck.check("a bad key file is an error, and kept the key",
                     srv.wait_log("event=auth_key_reload_failed"))
            check_ok(ck, srv, "the key in use still admits", path="/?token=" + tok(sub="new2"))
            st, _ = await asyncio.to_thread(srv.publish_user, "keep", "still")
            ck.check("the connection opened before SIGHUP is untouched",
                     await wt.recv(ws, 5) == "still")
            await ws.close()
            log = srv.log()
            ck.check("debug logging was on", "level=debug" in log)
            texts = secret_texts(keys, used)
            ck.check("the leak check would see a token", any(s in "x=" + used[0] for s in texts))
            leaks = [s for s in texts if s in log]
            ck.check("no token, signature, secret or key line in any log line", not leaks,
                     f"{len(leaks)} found")
            ck.check("nor the new secret", SECRET[::-1] not in log)
    finally:
        keys.close()


if __name__ == "__main__":
    sys.exit(wt.main({"verify": verify, "expiry": expiry, "procs_user": procs_user,
                      "redis_user": redis_user, "secrets": secrets}))
