#!/usr/bin/python3
"""permessage-deflate (RFC 7692, issue #19) against the real server.

usage: /usr/bin/python3 test_deflate.py SCENARIO PATH_TO_WSPUSH [NODE_DIR]

  clients   mixed clients on one shard get the same broadcast: python3-websockets with the
            extension (its default) and without, raw clients offering it and not, and one
            whose window (server_max_window_bits=9) is too small for the payload; the
            compressed frame is built once and decodes to the published text, the plain one
            is byte for byte what a server without the extension sends; below
            --deflate-min-bytes everyone gets the plain frame; python3-websockets' compressed
            messages are inflated
  offers    the answer to each parameter combination, offers declined by taking the next or
            none, malformed headers (400), and --deflate off (offers ignored)
  frames    client frames: RSV1 without the extension (1002), a compressed control frame
            (1002), RSV1 on a continuation (1002), a bomb (1009), corrupt data (1002), text
            that inflates to bad UTF-8 (1007)
  window    server_max_window_bits=9: payloads up to 512 bytes compressed (zlib inflates them
            with a 512-byte window), longer ones plain
  node      Node's ws (8.x, perMessageDeflate) receives compressed broadcasts that decode to
            the published text and sends compressed messages that are inflated; NODE_DIR
            holds node_modules/ws (test/integration/node/install.sh)

The broadcast payload is bench/payloads/notifications-2k.json (2,046 bytes of notification
JSON). Every wait is bounded.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../lib"))
import wsptest as wt  # noqa: E402

STEP = 10  # seconds for any one wait: a hang bound, not a speed check
PAYLOAD = open(os.path.join(HERE, "../../bench/payloads/notifications-2k.json"),
               "rb").read().rstrip(b"\n")
BASE = b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def upgrade(server, lines=(), port=None):
    """Sends an upgrade with these Sec-WebSocket-Extensions lines: (conn, status, head, key)."""
    c = wt.Conn(wt.HOST, port or server.port)
    extra = b"".join(b"Sec-WebSocket-Extensions: " + v + b"\r\n" for v in lines)
    req, key = wt.upgrade_request("/", extra=extra)
    c.send_all(req)
    status, head = c.read_head(STEP)
    return c, status, head, key


def answers(head):
    """The Sec-WebSocket-Extensions values of a response head."""
    return re.findall(rb"(?im)^sec-websocket-extensions:[ \t]*(.*?)[ \t]*\r$", head or b"")


def raw_client(ck, server, lines, want):
    """An upgraded raw client whose offer (lines) must be answered want (None: declined)."""
    c, status, head, key = upgrade(server, lines)
    ck.check(f"101 for {lines}", status == 101 and wt.check_101(head, key), repr(head))
    got = answers(head)
    ck.check(f"answer to {lines} is {want}", got == ([want] if want else []), repr(got))
    return c


def inflate(payload, wbits=15):
    """What a client makes of a compressed payload (RFC 7692 7.2.2), with a 2^wbits window."""
    d = zlib.decompressobj(-wbits)
    return d.decompress(payload + b"\x00\x00\xff\xff") + d.flush()


def compress(data, level=6):
    """What a client sends for data (RFC 7692 7.2.1): raw DEFLATE, sync flush, tail dropped."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    z = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert z.endswith(b"\x00\x00\xff\xff")
    return z[:-4]


def plain_frame(payload):
    return wt.frame(wt.OP_TEXT, payload, mask=False)


def read_wire(ck, c, what):
    """The next server frame's bytes (None after a check failure)."""
    w = c.read_frame(STEP, raw=True)
    ck.check(f"{what}: a frame arrives", w is not None)
    return w


def check_compressed(ck, wire, want, what, wbits=15):
    """wire is one compressed text frame whose payload inflates to want."""
    if wire is None:
        return
    parsed = wt.parse_frame(wire)
    ck.check(f"{what}: FIN, RSV1, text", wire[0] == 0xC1, hex(wire[0]))
    try:
        got = inflate(parsed[2], wbits)
    except zlib.error as e:
        got = repr(e).encode()
    ck.check(f"{what}: inflates to the published text", got == want, repr(got[:80]))
    ck.check(f"{what}: smaller than the plain frame", len(wire) < len(plain_frame(want)),
             f"{len(wire)} >= {len(plain_frame(want))}")


def close_code_of(c):
    """The code of the close frame c gets next (None: none within STEP)."""
    while True:
        f = c.read_frame(STEP)
        if f is None:
            return None
        if f[1] == wt.OP_CLOSE:
            return int.from_bytes(f[2][:2], "big") if len(f[2]) >= 2 else 1005


def deflate_metrics(server):
    text = server.metrics()
    names = ("connections", "broadcasts", "messages_written", "input_bytes", "output_bytes")
    m = {k: wt.metric(text, f"wspush_deflate_{k}_total") for k in names}
    m["inflated"] = wt.metric(text, "wspush_inflated_messages_total")
    m["written"] = wt.metric(text, "wspush_messages_written_total")
    m["compress_s"] = wt.metric(text, "wspush_deflate_compress_seconds_total")
    return m


async def clients(ck, binary):
    with wt.Server(binary, threads=1) as server:  # one shard: every kind in one pass
        py_z = [await wt.connect(server.url()) for _ in range(2)]  # websockets offers it
        py_plain = await wt.connect(server.url(), compression=None)
        for c in py_z:
            ck.check("python3-websockets negotiated permessage-deflate",
                     [e.name for e in c.extensions] == ["permessage-deflate"], str(c.extensions))
        ck.check("without compression=deflate, no extension", py_plain.extensions == [])
        raw_z = raw_client(ck, server, [b"permessage-deflate; client_max_window_bits"], BASE)
        raw_plain = raw_client(ck, server, [], None)
        raw_w9 = raw_client(ck, server, [b"permessage-deflate; server_max_window_bits=9"],
                            BASE + b"; server_max_window_bits=9")
        ck.check("the server counts 4 deflate connections",
                 wt.poll(lambda: deflate_metrics(server)["connections"] == 4, STEP))

        st, _ = server.publish(PAYLOAD)
        ck.check("publish accepted", st == 202, str(st))
        got = await wt.recv_all(py_z + [py_plain], STEP)
        ck.check("every python3-websockets client got the published text",
                 all(g == PAYLOAD.decode() for g in got), str([len(g or "") for g in got]))
        check_compressed(ck, read_wire(ck, raw_z, "raw deflate"), PAYLOAD, "raw deflate")
        want = plain_frame(PAYLOAD)
        ck.check("a client without the extension gets today's frame, byte for byte",
                 read_wire(ck, raw_plain, "raw plain") == want)
        ck.check("a 2^9 window gets the 2 KiB payload uncompressed, byte for byte",
                 read_wire(ck, raw_w9, "raw window 9") == want)
        m = deflate_metrics(server)
        ck.check("compressed once for the whole broadcast", m["broadcasts"] == 1, str(m))
        ck.check("3 compressed frames and 6 frames written",
                 m["messages_written"] == 3 and m["written"] == 6, str(m))
        ck.check("bytes before and after counted",
                 m["input_bytes"] == len(PAYLOAD) and 0 < m["output_bytes"] < len(PAYLOAD) / 2,
                 str(m))
        ck.check("compress time counted", m["compress_s"] > 0, str(m))

        small = b'{"time":1,"seq":2,"note":"under the 256-byte threshold"}'
        server.publish(small)
        got = await wt.recv_all(py_z + [py_plain], STEP)
        ck.check("a small payload reaches everyone", all(g == small.decode() for g in got))
        for c, what in ((raw_z, "deflate"), (raw_plain, "plain"), (raw_w9, "window 9")):
            ck.check(f"under --deflate-min-bytes the {what} client gets the plain frame",
                     read_wire(ck, c, what) == plain_frame(small))
        ck.check("nothing compressed for it", deflate_metrics(server)["broadcasts"] == 1)

        # python3-websockets compresses what it sends: the server inflates each message.
        for i, c in enumerate(py_z):
            await c.send(json.dumps({"ack": i, "pad": "x" * 1500}))
            pong = await c.ping(b"after")
            await asyncio.wait_for(pong, STEP)
        ck.check("both compressed client messages inflated, connections open",
                 wt.poll(lambda: deflate_metrics(server)["inflated"] == 2, STEP),
                 str(deflate_metrics(server)))
        for c in (raw_z, raw_plain, raw_w9):
            c.close()
        await wt.close_all(py_z + [py_plain])


def offers(ck, binary):
    pmd = b"permessage-deflate"
    cases = [
        ([pmd], BASE),
        ([pmd + b"; client_max_window_bits"], BASE),
        ([pmd + b"; client_max_window_bits=10"], BASE),
        ([pmd + b"; server_no_context_takeover"], BASE),
        ([pmd + b"; client_no_context_takeover"], BASE),
        ([pmd + b"; server_max_window_bits=10"], BASE + b"; server_max_window_bits=10"),
        ([pmd + b'; server_max_window_bits="15"'], BASE + b"; server_max_window_bits=15"),
        ([pmd + b"; server_no_context_takeover; client_no_context_takeover; "
          b"server_max_window_bits=12; client_max_window_bits=9"],
         BASE + b"; server_max_window_bits=12"),
        ([pmd + b";client_max_window_bits ;  server_max_window_bits=8"],
         BASE + b"; server_max_window_bits=8"),
        # declined: the next offer, or none at all (never a failed handshake)
        ([pmd + b"; server_max_window_bits=7, " + pmd + b"; server_max_window_bits=11"],
         BASE + b"; server_max_window_bits=11"),
        ([pmd + b"; foo, " + pmd], BASE),
        ([pmd + b"; client_no_context_takeover; client_no_context_takeover"], None),
        ([pmd + b"; server_max_window_bits"], None),
        ([pmd + b"; server_max_window_bits=08"], None),
        ([b"x-webkit-deflate-frame"], None),
        ([b"Permessage-Deflate"], None),
        ([b"foo; a=1", pmd + b"; server_max_window_bits=13"], BASE + b"; server_max_window_bits=13"),
        ([b"", pmd], BASE),
    ]
    malformed = [
        [pmd + b";"], [pmd + b"; server_max_window_bits=\"1"], [b",,;"], [pmd + b", =x"],
        [b"permessage deflate"], [pmd, b"foo;"], [pmd + b"; a=\"b c\""],
        [b"e%d" % i for i in range(9)],  # more lines than the server keeps: refused, not cut
    ]
    with wt.Server(binary) as server:
        for lines, want in cases:
            raw_client(ck, server, lines, want).close()
        for lines in malformed:
            c, status, head, _ = upgrade(server, lines)
            ck.check(f"400 for {lines[:2]}", status == 400, repr(head))
            c.close()
        ck.check("eight lines are fine", upgrade(server, [b"e%d" % i for i in range(8)])[1] == 101)
    with wt.Server(binary, "--deflate", "off") as server:
        raw_client(ck, server, [pmd], None).close()
        c, status, head, _ = upgrade(server, [pmd + b";"])
        ck.check("--deflate off: a malformed header is not read (101)", status == 101, repr(head))
        c.close()


def expect_close(ck, server, lines, data, code, what):
    c = raw_client(ck, server, lines, BASE if lines else None)
    c.send_all(data)
    got = close_code_of(c)
    ck.check(f"{what}: close {code}", got == code, str(got))
    c.close()


def frames(ck, binary):
    pmd = [b"permessage-deflate"]
    z = compress(b'{"subscribe":"news","note":"hello hello hello"}')
    rsv1 = 0x40
    with wt.Server(binary) as server:
        c = raw_client(ck, server, pmd, BASE)
        c.send_all(wt.frame(wt.OP_TEXT, z, rsv=rsv1) + wt.frame(wt.OP_PING, b"still there?"))
        f = c.read_frame(STEP)
        ck.check("a compressed message is taken, the ping after it answered",
                 f == (True, wt.OP_PONG, b"still there?"), repr(f))
        c.close()
        expect_close(ck, server, [], wt.frame(wt.OP_TEXT, z, rsv=rsv1), 1002,
                     "RSV1 without the extension")
        expect_close(ck, server, pmd, wt.frame(wt.OP_PING, b"p", rsv=rsv1), 1002,
                     "a compressed ping")
        expect_close(ck, server, pmd, wt.frame(wt.OP_TEXT, z[:3], fin=False, rsv=rsv1) +
                     wt.frame(wt.OP_CONT, z[3:], rsv=rsv1), 1002, "RSV1 on a continuation")
        expect_close(ck, server, pmd, wt.frame(wt.OP_BINARY, b"x", rsv=0x20), 1002, "RSV2")
        bomb = compress(b"\0" * (1 << 20), 9)
        ck.check("the bomb is small on the wire", len(bomb) < 2048, str(len(bomb)))
        expect_close(ck, server, pmd, wt.frame(wt.OP_BINARY, bomb, rsv=rsv1), 1009,
                     "1 MiB inflated from 1 KiB")
        expect_close(ck, server, pmd, wt.frame(wt.OP_BINARY, compress(b"a" * 4097), rsv=rsv1),
                     1009, "one byte over 4 KiB inflated")
        expect_close(ck, server, pmd, wt.frame(wt.OP_TEXT, b"\x07\x00", rsv=rsv1), 1002,
                     "corrupt DEFLATE")
        expect_close(ck, server, pmd, wt.frame(wt.OP_TEXT, compress(b"ok\xc3\x28"), rsv=rsv1),
                     1007, "text that inflates to bad UTF-8")
        text = server.metrics()
        ck.check("the closes are counted by reason",
                 wt.metric(text, 'wspush_connections_closed_total{reason="protocol"}') == 5 and
                 wt.metric(text, 'wspush_connections_closed_total{reason="too_big"}') == 2 and
                 wt.metric(text, 'wspush_connections_closed_total{reason="invalid_utf8"}') == 1,
                 re.findall(r"closed_total\S+ [1-9]\d*", text))


def window(ck, binary):
    with wt.Server(binary, "--deflate-min-bytes", "0") as server:
        c = raw_client(ck, server, [b"permessage-deflate; server_max_window_bits=9"],
                       BASE + b"; server_max_window_bits=9")
        for n in (200, 512, 513, 600):
            # Letters whose start repeats at the end: a back-reference as far as the payload.
            core = bytes(97 + (i * 7 + i // 5) % 26 for i in range(n - 20))
            body = core + core[:20]
            server.publish(body)
            w = read_wire(ck, c, f"{n} bytes")
            if n <= 512:
                check_compressed(ck, w, body, f"{n} bytes in a 2^9 window", wbits=9)
            else:
                ck.check(f"{n} bytes: over the window, plain", w == plain_frame(body))
        c.close()


def node(ck, binary, node_dir):
    exe = wt.need("node", "nodejs")
    script = os.path.join(HERE, "node", "client.js")
    env = dict(os.environ, NODE_PATH=os.path.join(node_dir, "node_modules"))
    with wt.Server(binary, threads=2) as server:
        procs = []
        for mode in ("deflate", "deflate", "plain"):
            procs.append(subprocess.Popen(
                [exe, script, server.url(), mode, str(len(PAYLOAD))], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=env, preexec_fn=wt.die_with_parent))
        lines = [[] for _ in procs]

        def read_until(i, event):
            while True:
                line = procs[i].stdout.readline()
                if not line:
                    return None
                lines[i].append(line)
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == event:
                    return ev

        opened = [read_until(i, "open") for i in range(len(procs))]
        ck.check("every node client opened", all(opened), str(lines))
        if not all(opened):
            return
        ck.check("ws negotiated permessage-deflate when it offered it",
                 [bool(o["deflate"]) for o in opened] == [True, True, False], str(opened))
        server.publish(PAYLOAD)
        got = [read_until(i, "message") for i in range(len(procs))]
        ck.check("every node client got the published text",
                 all(g and g["data"] == PAYLOAD.decode() and not g["binary"] for g in got),
                 str([(g or {}).get("data", "")[:60] for g in got]))
        m = wt.poll(lambda: (lambda m: m if m["inflated"] == 2 else None)(deflate_metrics(server)),
                    STEP)
        ck.check("the server inflated the compressed message each deflate client sent", m,
                 str(deflate_metrics(server)))
        pongs = [read_until(i, "pong") for i in range(len(procs))]
        ck.check("and answered their pings afterwards", all(pongs), str(lines))
        m = deflate_metrics(server)
        ck.check("the broadcast went compressed to the two deflate clients",
                 m["messages_written"] == 2 and m["broadcasts"] == 1, str(m))
        for p in procs:
            p.kill()
            p.wait(STEP)


if __name__ == "__main__":
    sys.exit(wt.main({"clients": clients, "offers": offers, "frames": frames, "window": window,
                      "node": node}, timeout=120))
