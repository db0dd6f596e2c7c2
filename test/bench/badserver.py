#!/usr/bin/env python3
"""wspush-bench against servers that misbehave: each misbehaviour is counted under its kind,
none makes the bench hang or crash, and the bench exits non-zero whenever something went
wrong. The broadcast modes check delivery: a broadcast skipped for every connection or for
some, and a bench worker killed mid-run, show up as missing, by seq, in the report, the JSON
and the exit status. Usage: badserver.py BENCH MODE (see MODES). No fixed sleeps: every wait
polls the bench's status file or a socket, with a bound.

badserver.py serve [--drop K] --port P --bind ADDR [other options, ignored]: a push server for
bench/run-local.sh --server-cmd (or as WSPUSH_SERVER): logs event=listening, and on each
SIGUSR1 sends {"time", "seq"} to every connection, except seq K, which it skips for everyone
(but logs as sent). SIGTERM or SIGINT stops it."""
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

from benchutil import read_status, wait_for

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNS = 20
HALF = CONNS // 2
BOUND = 20  # seconds any one wait may take

# Errors each handshake/frame mode must produce (every connection once); a mode not listed
# expects none.
ERRORS = {
    "refused": {"connect": CONNS},
    "status": {"handshake_status": CONNS},
    "badaccept": {"handshake_invalid": CONNS},
    "close": {"closed": CONNS},
    "silent": {"timeout": CONNS},
    "garbage": {"protocol": CONNS},
    "closeframe": {"closed": CONNS},
    "worker_dies": {"worker_died": 1},
    "pmd_badanswer": {"handshake_invalid": CONNS},
    "pmd_rsv1": {"protocol": CONNS},
}
# permessage-deflate (the bench runs with --deflate): an answer the bench must fail (an
# extension it did not offer), RSV1 on a connection that did not negotiate it, and "pmd": three
# ticks, compressed in one write, compressed one byte per write, and plain.
PMD = {"pmd_badanswer", "pmd_rsv1", "pmd"}
# The broadcast modes: the server sends seqs to every registered connection from one thread.
BROADCAST = {"gaps", "drop_all", "drop_some", "worker_dies"}
MODES = sorted(set(ERRORS) | BROADCAST | PMD | {"frames"})


def read_request(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d:
            return None
        buf += d
    for line in buf.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            return line.split(b":", 1)[1].strip()
    return b""


def answer_101(c, key, accept=None, ext=None):
    acc = accept or base64.b64encode(hashlib.sha1(key + GUID).digest())
    ext = b"Sec-WebSocket-Extensions: " + ext + b"\r\n" if ext else b""
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n" + ext + b"\r\n")


def frame(op, payload, fin=True, rsv1=False):
    n = len(payload)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    if n < 126:
        h = struct.pack("!BB", b0, n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, 126, n)
    else:
        h = struct.pack("!BBQ", b0, 127, n)
    return h + payload


def tick(seq, pad=0, t_ms=None):
    d = {"time": t_ms or int(time.time() * 1000), "seq": seq}
    if pad:
        d["pad"] = "x" * pad
    return json.dumps(d, separators=(",", ":")).encode()


HOLD = [BOUND + 10]  # seconds a connection is held at most; serve: as long as the process


def wait_eof(c):
    """Holds the connection until the bench closes it."""
    c.settimeout(HOLD[0])
    while c.recv(4096):
        pass


pongs = []
registered = []  # the upgraded sockets of the broadcast modes, in upgrade order
lock = threading.Lock()
all_up = threading.Event()  # the bench reports every connection open


def serve_frames(c):
    """A 200 KB tick, a ping, a tick one byte per write, a fragmented tick; then the pong."""
    all_up.wait(BOUND)
    c.sendall(frame(0x1, tick(1, pad=200000)))
    c.sendall(frame(0x9, b"ping!"))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in frame(0x1, tick(2)):
        c.sendall(bytes([b]))
    t = tick(3)
    c.sendall(frame(0x1, t[:10], fin=False) + frame(0x0, t[10:]))
    # the pong: masked, same payload
    c.settimeout(BOUND)
    h = c.recv(2)
    n = h[1] & 0x7F
    rest = b""
    while len(rest) < 4 + n:
        rest += c.recv(4 + n - len(rest))
    mask, data = rest[:4], rest[4:]
    data = bytes(x ^ mask[i % 4] for i, x in enumerate(data))
    with lock:
        pongs.append((h[0], h[1] & 0x80, data))


def compressed(payload):
    """A permessage-deflate payload (RFC 7692 7.2.1): raw DEFLATE, sync flush, tail dropped."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


def serve_pmd(c, mode):
    """The permessage-deflate modes, after the request: the answer, then the frames."""
    key = read_request(c)
    if key is None:
        return
    if mode == "pmd_badanswer":
        answer_101(c, key, ext=b"x-not-offered")
        return
    if mode == "pmd_rsv1":
        answer_101(c, key)  # no extension: RSV1 means nothing here
        c.sendall(frame(0x1, compressed(tick(1)), rsv1=True))
        return
    answer_101(c, key, ext=b"permessage-deflate; server_no_context_takeover")
    all_up.wait(BOUND)
    c.sendall(frame(0x1, compressed(tick(1, pad=3000)), rsv1=True))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in frame(0x1, compressed(tick(2, pad=500)), rsv1=True):
        c.sendall(bytes([b]))
    c.sendall(frame(0x1, tick(3)))


def serve_conn(c, mode):
    try:
        if mode == "close":
            return
        if mode in PMD:
            serve_pmd(c, mode)
            wait_eof(c)
            return
        key = read_request(c)
        if key is None:
            return
        if mode == "status":
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        elif mode == "badaccept":
            answer_101(c, key, accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        elif mode != "silent":
            answer_101(c, key)
        if mode == "garbage":
            c.sendall(b"\xff\xfe\xfd garbage that is no frame")
        elif mode == "closeframe":
            c.sendall(frame(0x8, struct.pack("!H", 1011) + b"bye"))
        elif mode == "frames":
            serve_frames(c)
        elif mode in BROADCAST:
            with lock:
                registered.append(c)
        wait_eof(c)
    except OSError:
        pass
    finally:
        c.close()


def broadcast(seq, skip=lambda i: False, twice=lambda i: False):
    """Sends seq, stamped once, to every registered connection but the skipped ones. Returns
    how many frames went out."""
    data = frame(0x1, tick(seq))
    sent = 0
    for i, c in enumerate(registered):
        if skip(i):
            continue
        n = 2 if twice(i) else 1
        try:
            c.sendall(data * n)
            sent += n
        except OSError:
            pass  # a connection of the killed worker
    return sent


def bench_children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def run_broadcasts(mode, bench, status):
    """The broadcast modes' script; returns the messages the live connections will count."""
    wait_for("every connection registered", lambda: len(registered) == CONNS, BOUND)
    # Each broadcast's time must be later than every upgrade the bench saw (ms clock): the
    # status file was written after the last one.
    mtime_ms = os.stat(status).st_mtime_ns // 1000000
    wait_for("the clock past the last upgrade", lambda: int(time.time() * 1000) > mtime_ms,
             BOUND)
    if mode == "gaps":
        # connection i: seq 1; seq 2 only if i is even; seq 3 (twice if i % 4 == 0); seq 4
        # only if i is odd, so even ones miss it at the end of the run
        return (broadcast(1) + broadcast(2, skip=lambda i: i % 2) +
                broadcast(3, twice=lambda i: i % 4 == 0) +
                broadcast(4, skip=lambda i: i % 2 == 0))
    if mode == "drop_all":  # 2 and 4 reach nobody
        return broadcast(1) + broadcast(3)
    if mode == "drop_some":  # i % 3 == 0 miss 1 (before their first), 1 miss 2, 2 miss 3
        return sum(broadcast(k, skip=lambda i, k=k: i % 3 == k - 1) for k in (1, 2, 3))
    # worker_dies: 1 to everyone, then one worker (HALF connections) is killed; 2 and 3 reach
    # only the other half.
    broadcast(1)
    wait_for("broadcast 1 everywhere", lambda: read_status(status).get("messages") == CONNS,
             BOUND)
    os.kill(bench_children(bench.pid)[0], signal.SIGKILL)
    wait_for("the bench to see its worker die", lambda: read_status(status).get("errors") == 1,
             BOUND)
    broadcast(2)
    broadcast(3)
    return CONNS + 2 * HALF


def until_done(mode, bench, status):
    """Waits for the mode's end on the bench's status file, then stops the bench."""
    if mode in BROADCAST:
        want = run_broadcasts(mode, bench, status)
        wait_for(f"{want} messages", lambda: read_status(status).get("messages") == want, BOUND)
    elif mode in ("garbage", "closeframe"):
        wait_for("every connection closed", lambda: read_status(status).get("errors") == CONNS,
                 BOUND)
    elif mode == "frames":
        wait_for("3 messages and a pong each", lambda: read_status(status).get("messages") ==
                 3 * CONNS and len(pongs) == CONNS, BOUND)
    elif mode == "pmd":
        wait_for("3 messages each", lambda: read_status(status).get("messages") == 3 * CONNS,
                 BOUND)
    elif mode == "pmd_rsv1":
        wait_for("every connection failed", lambda: read_status(status).get("errors") == CONNS,
                 BOUND)
    else:
        wait_for("every connection resolved", lambda: read_status(status).get("ramp_done") == 1,
                 BOUND)
    bench.send_signal(signal.SIGINT)


def run_bench(bench_bin, mode, port):
    with tempfile.TemporaryDirectory() as tmp:
        out, status = os.path.join(tmp, "r.json"), os.path.join(tmp, "status")
        args = [bench_bin, "--url", f"ws://127.0.0.1:{port}/", "--conns", str(CONNS), "--procs",
                "2", "--duration", "60", "--json", out, "--status-file", status,
                "--handshake-timeout", "1", "--retries", "2", "--quiet"]
        if mode in ("drop_all", "drop_some", "worker_dies"):
            args += ["--expect-broadcasts", "4" if mode == "drop_all" else "3"]
        if mode in PMD:
            args += ["--deflate"]
        t0 = time.monotonic()
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for("every connection open", lambda: mode not in BROADCAST | {"frames", "pmd"} or
                     read_status(status).get("active") == CONNS, BOUND)
            all_up.set()
            until_done(mode, p, status)
            stdout, _ = p.communicate(timeout=BOUND)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        took = time.monotonic() - t0
        text = stdout.decode(errors="replace")
        sys.stdout.write(text)
        assert took < 30, f"bench took {took:.1f} s"
        with open(out) as f:
            return p.returncode, text, json.load(f)


def check_errors(mode, rc, text, r):
    e = r["errors"]
    expect = ERRORS.get(mode, {})
    for k in ["connect", "handshake_status", "handshake_invalid", "closed", "protocol",
              "timeout", "bad_message", "worker_died"]:
        assert e[k] == expect.get(k, 0), f"{mode}: errors.{k} = {e[k]}, want {expect.get(k, 0)}"
    assert e["total"] == sum(expect.values())
    wrong = expect or mode in BROADCAST
    assert rc == (1 if wrong else 0), f"{mode}: bench exit {rc}"
    assert ("wspush-bench: FAIL:" in text) == bool(wrong), text[-500:]
    assert r["ok"] is (not wrong)
    if mode == "refused":
        assert r["retries"] == 2 * CONNS, r["retries"]  # each retried twice with backoff
        assert e["last_connect_error"] == "Connection refused"
    if mode == "status":
        assert e["handshake_statuses"] == {"404": CONNS}, e["handshake_statuses"]
    if mode == "close":
        assert e["closed_in_handshake"] == CONNS and e["closed_codes"] == {"1006": CONNS}
    if mode == "closeframe":
        assert e["closed_codes"] == {"1011": CONNS}, e["closed_codes"]
        assert r["active"] == 0


def check_delivery(mode, text, r):
    b = {x["seq"]: (x["got"], x["missing"], x["duplicates"]) for x in r["broadcasts"]}
    if mode == "pmd":
        z = r["deflate"]
        assert b == {k: (CONNS, 0, 0) for k in (1, 2, 3)}, b
        assert z["offered"] == CONNS and z["accepted"] == CONNS, z
        assert z["compressed_messages"] == 2 * CONNS and z["uncompressed_messages"] == CONNS, z
        want = CONNS * (len(tick(1, pad=3000)) + len(tick(2, pad=500)))
        assert z["inflated_bytes"] == want, (z, want)
        assert z["compressed_bytes"] < want / 4, z
        return
    if mode == "frames":
        assert r["active"] == CONNS and r["messages"]["count"] == 3 * CONNS, r["messages"]
        assert r["messages"]["pings_answered"] == CONNS
        assert b == {k: (CONNS, 0, 0) for k in (1, 2, 3)}, b
        assert len(pongs) == CONNS and all(p == (0x8A, 0x80, b"ping!") for p in pongs), pongs[:3]
        assert (r["expected"], r["delivered"], r["missing"]) == (3 * CONNS, 3 * CONNS, 0)
        return
    want = {
        "gaps": {1: (CONNS, 0, 0), 2: (HALF, HALF, 0), 3: (CONNS, 0, CONNS // 4),
                 4: (HALF, HALF, 0)},
        "drop_all": {1: (CONNS, 0, 0), 2: (0, CONNS, 0), 3: (CONNS, 0, 0), 4: (0, CONNS, 0)},
        "drop_some": {1: (13, 7, 0), 2: (13, 7, 0), 3: (14, 6, 0)},
        "worker_dies": {1: (CONNS, 0, 0), 2: (HALF, HALF, 0), 3: (HALF, HALF, 0)},
    }[mode]
    assert b == want, b
    missing = [k for k, v in sorted(want.items()) if v[1]]
    got = sum(v[0] for v in want.values())
    lost = sum(v[1] for v in want.values())
    assert r["missing_seqs"] == missing, r["missing_seqs"]
    assert (r["expected"], r["delivered"], r["missing"]) == (got + lost, got, lost), r
    assert r["duplicates"] == sum(v[2] for v in want.values())
    assert r["unexpected"] == 0
    assert r["expect_broadcasts"] == {"gaps": None, "drop_all": 4}.get(mode, 3)
    assert r["dead_worker_conns"] == (HALF if mode == "worker_dies" else 0)
    seqs = ", ".join(map(str, missing))
    assert f"FAIL: {lost} missing (seqs {seqs})" in text, text[-500:]


def listen(host, port, mode, backlog):
    """A listening socket whose connections serve_conn() handles in mode, one thread each."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(backlog)

    def acceptor():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve_conn, args=(c, mode), daemon=True).start()
    threading.Thread(target=acceptor, daemon=True).start()
    return ls


def serve(argv):
    """The serve mode: a server that loses broadcast --drop for every connection."""
    opt = dict(zip(argv[::2], argv[1::2]))  # every flag run-local passes takes a value
    drop = int(opt.get("--drop", 0))
    HOLD[0] = None  # run-local bounds the process's life
    sigs = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)  # every thread; sigwait() takes them
    ls = listen(opt.get("--bind", "127.0.0.1"), int(opt.get("--port", 0)), "drop_all", 4096)
    print(f"event=listening port={ls.getsockname()[1]}", file=sys.stderr, flush=True)
    seq = 0
    while signal.sigwait(sigs) == signal.SIGUSR1:
        seq += 1
        with lock:
            sent = 0 if seq == drop else broadcast(seq)
        print(f"event=broadcast seq={seq} written={sent}", file=sys.stderr, flush=True)
    ls.close()


def main():
    if sys.argv[1] == "serve":
        serve(sys.argv[2:])
        return
    bench, mode = sys.argv[1], sys.argv[2]
    assert mode in MODES, f"mode {mode}: one of {MODES}"
    if mode == "refused":
        with socket.socket() as ls:  # a port that was free a moment ago: nothing listens there
            ls.bind(("127.0.0.1", 0))
            port = ls.getsockname()[1]
    else:
        port = listen("127.0.0.1", 0, mode, 128).getsockname()[1]
    rc, text, r = run_bench(bench, mode, port)
    check_errors(mode, rc, text, r)
    if mode in BROADCAST | {"frames", "pmd"}:
        check_delivery(mode, text, r)
    print(f"ok: {mode}")


if __name__ == "__main__":
    main()
