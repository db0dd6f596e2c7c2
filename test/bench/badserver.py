#!/usr/bin/env python3
"""wspush-bench against servers that misbehave: each misbehaviour is counted under its kind,
none makes the bench hang or crash. Usage: badserver.py BENCH MODE (see MODES)."""
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNS = 20


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


def answer_101(c, key, accept=None):
    acc = accept or base64.b64encode(hashlib.sha1(key + GUID).digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")


def frame(op, payload, fin=True):
    n = len(payload)
    b0 = (0x80 if fin else 0) | op
    if n < 126:
        h = struct.pack("!BB", b0, n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, 126, n)
    else:
        h = struct.pack("!BBQ", b0, 127, n)
    return h + payload


def tick(seq, pad=0):
    d = {"time": int(time.time() * 1000), "seq": seq}
    if pad:
        d["pad"] = "x" * pad
    return json.dumps(d, separators=(",", ":")).encode()


pongs = []
order = []
lock = threading.Lock()


def serve_conn(c, mode):
    try:
        if mode == "close":
            return
        key = read_request(c)
        if key is None:
            return
        if mode == "silent":
            time.sleep(6)
            return
        if mode == "status":
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.5)
            return
        if mode == "badaccept":
            answer_101(c, key, accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            time.sleep(0.5)
            return
        answer_101(c, key)
        if mode == "garbage":
            c.sendall(b"\xff\xfe\xfd garbage that is no frame")
        elif mode == "closeframe":
            c.sendall(frame(0x8, struct.pack("!H", 1011) + b"bye"))
        elif mode == "gaps":
            # connection i: seq 1; seq 2 only if i is even; seq 3 (twice if i % 4 == 0);
            # seq 4 only if i is odd, so even ones miss it at the end of the run
            with lock:
                i = len(order)
                order.append(i)
            time.sleep(1.0)  # every connection is open before the first seq
            c.sendall(frame(0x1, tick(1)))
            time.sleep(0.1)
            if i % 2 == 0:
                c.sendall(frame(0x1, tick(2)))
            time.sleep(0.1)
            c.sendall(frame(0x1, tick(3)) * (2 if i % 4 == 0 else 1))
            time.sleep(0.1)
            if i % 2 == 1:
                c.sendall(frame(0x1, tick(4)))
        elif mode == "frames":
            time.sleep(0.3)
            # a 200 KB tick, a ping, then a tick one byte per write, then a fragmented tick
            c.sendall(frame(0x1, tick(1, pad=200000)))
            c.sendall(frame(0x9, b"ping!"))
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for b in frame(0x1, tick(2)):
                c.sendall(bytes([b]))
                time.sleep(0.001)
            t = tick(3)
            c.sendall(frame(0x1, t[:10], fin=False) + frame(0x0, t[10:]))
            # the pong: masked, same payload
            c.settimeout(3)
            h = c.recv(2)
            n = h[1] & 0x7F
            rest = b""
            while len(rest) < 4 + n:
                rest += c.recv(4 + n - len(rest))
            mask, data = rest[:4], rest[4:]
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(data))
            pongs.append((h[0], h[1] & 0x80, data))
        time.sleep(8)
    except OSError:
        pass
    finally:
        c.close()


def main():
    bench, mode = sys.argv[1], sys.argv[2]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    if mode == "refused":
        ls.close()  # nothing listens there now
    else:
        ls.listen(128)

        def acceptor():
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                threading.Thread(target=serve_conn, args=(c, mode), daemon=True).start()
        threading.Thread(target=acceptor, daemon=True).start()

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        duration = 4
        args = [bench, "--url", f"ws://127.0.0.1:{port}/", "--conns", str(CONNS), "--procs", "2",
                "--duration", str(duration), "--json", out, "--handshake-timeout", "1",
                "--retries", "2", "--quiet"]
        t0 = time.monotonic()
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        took = time.monotonic() - t0
        sys.stdout.write(p.stdout.decode(errors="replace"))
        assert p.returncode == 0, f"bench exit {p.returncode}"
        assert took < duration + 10, f"bench took {took:.1f} s for a {duration} s run"
        r = json.load(open(out))
    e = r["errors"]
    kinds = ["connect", "handshake_status", "handshake_invalid", "closed", "protocol",
             "timeout", "bad_message", "worker_died"]
    expect = {
        "refused": {"connect": CONNS},
        "status": {"handshake_status": CONNS},
        "badaccept": {"handshake_invalid": CONNS},
        "close": {"closed": CONNS},
        "silent": {"timeout": CONNS},
        "garbage": {"protocol": CONNS},
        "closeframe": {"closed": CONNS},
        "frames": {},
        "gaps": {},
    }[mode]
    for k in kinds:
        assert e[k] == expect.get(k, 0), f"{mode}: errors.{k} = {e[k]}, want {expect.get(k, 0)}"
    assert e["total"] == sum(expect.values())
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
    if mode == "frames":
        assert r["active"] == CONNS and r["messages"]["count"] == 3 * CONNS, r["messages"]
        assert r["messages"]["pings_answered"] == CONNS
        assert [b["got"] for b in r["broadcasts"]] == [CONNS] * 3, r["broadcasts"]
        assert len(pongs) == CONNS and all(p == (0x8A, 0x80, b"ping!") for p in pongs), pongs[:3]
    if mode == "gaps":
        b = {x["seq"]: (x["got"], x["missing"], x["duplicates"]) for x in r["broadcasts"]}
        h = CONNS // 2
        assert b == {1: (CONNS, 0, 0), 2: (h, h, 0), 3: (CONNS, 0, CONNS // 4), 4: (h, h, 0)}, b
    print(f"ok: {mode}")


if __name__ == "__main__":
    main()
