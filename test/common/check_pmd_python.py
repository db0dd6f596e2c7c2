#!/usr/bin/python3
"""Cross-checks common/pmd.c and common/deflate.c against python3-websockets and zlib.

usage: /usr/bin/python3 test/common/check_pmd_python.py BUILD/test/deflate_tool

1. Negotiation: websockets' client offers (each parameter combination) get our answer, and
   websockets' client accepts that answer with server_no_context_takeover in force.
2. Our frames decode with websockets' frame parser and permessage-deflate decoder, with
   zlib.decompressobj(-bits) as RFC 7692 section 7.2.2 describes, and with one inflater kept
   across all frames that restarts at the end of each DEFLATE stream (as Chromium's does).
3. websockets' compressed client messages inflate with ours, within the bound and not past it.
"""

import subprocess
import sys
import zlib

from websockets import exceptions, frames, headers
from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory,
                                                      PerMessageDeflate)
from websockets.streams import StreamReader

TOOL = sys.argv[1]
failures = 0


def fail(what):
    global failures
    failures += 1
    print("FAIL:", what)


def tool(*args, stdin=None):
    r = subprocess.run([TOOL, *args], input=stdin, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"{TOOL} {args[0]} failed: {r.stderr}")
    return r.stdout


def answers(requests):
    """Our answers to requests, each a list of Sec-WebSocket-Extensions lines."""
    stdin = "".join("\x1f".join(lines) + "\n" for lines in requests)
    got = tool("answer", stdin=stdin).split("\n")
    if len(got) != len(requests) + 1 or got[-1] != "":
        raise SystemExit(f"answer: {len(got) - 1} lines for {len(requests)} requests")
    return got[:-1]


def check_negotiation():
    configs = []
    for snct in (False, True):
        for cnct in (False, True):
            for smwb in (None, 8, 10, 15):
                for cmwb in (None, True, 12):
                    configs.append(dict(server_no_context_takeover=snct,
                                        client_no_context_takeover=cnct,
                                        server_max_window_bits=smwb,
                                        client_max_window_bits=cmwb))
    factories = [ClientPerMessageDeflateFactory(**cfg) for cfg in configs]
    offers = [headers.build_extension([(f.name, f.get_request_params())]) for f in factories]
    for cfg, factory, offer, ans in zip(configs, factories, offers, answers([[o] for o in offers])):
        if ans in ("-", "400"):
            fail(f"offer {offer!r} answered {ans}")
            continue
        [(name, params)] = headers.parse_extension(ans)
        try:
            ext = factory.process_response_params(params, [])
        except exceptions.NegotiationError as e:
            fail(f"offer {offer!r}: websockets refuses our answer {ans!r}: {e}")
            continue
        want_bits = cfg["server_max_window_bits"] or 15
        if not (ext.remote_no_context_takeover and ext.local_no_context_takeover
                and ext.remote_max_window_bits == want_bits):
            fail(f"offer {offer!r}: answer {ans!r} agreed {ext!r}")
    # Offers websockets (or a browser) never sends still get a sensible answer.
    others = [(["permessage-deflate; server_max_window_bits"], "-"),
              (["x-foo", "permessage-deflate"],
               "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
              (["permessage-deflate;"], "400")]
    for (lines, want), got in zip(others, answers([lines for lines, _ in others])):
        if got != want:
            fail(f"{lines!r}: answered {got!r}, want {want!r}")
    print(f"negotiation: {len(configs)} websockets client offers accepted")


def parse_frame(data, ext):
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = frames.Frame.parse(reader.read_exact, mask=False, extensions=[ext])
    try:
        next(gen)
    except StopIteration as stop:
        if reader.buffer:
            raise ValueError("bytes left after the frame")
        return stop.value
    raise ValueError("frame incomplete")


def check_frames():
    lines = tool("frames").split("\n")
    keep = zlib.decompressobj(-15)  # one inflater for every frame, restarted at a stream end
    count = 0
    for line in filter(None, lines):
        bits, ph, fh = line.split(" ")
        bits = int(bits)
        payload = b"" if ph == "=" else bytes.fromhex(ph)
        frame = bytes.fromhex(fh)
        if frame[0] != 0xC1:
            fail(f"first byte {frame[0]:#x}, want FIN + RSV1 + text")
        ext = PerMessageDeflate(True, True, bits, 15)
        got = parse_frame(frame, ext)
        if got.data != payload or got.rsv1 or got.opcode != frames.OP_TEXT:
            fail(f"websockets decoded {len(got.data)} bytes, want {len(payload)} ({bits} bits)")
        data = strip_header(frame)
        d = zlib.decompressobj(-bits)
        if d.decompress(data + b"\x00\x00\xff\xff") != payload:
            fail(f"zlib with a {bits}-bit window: wrong output")
        # The inflater that goes on after a stream end must be left at a block boundary.
        out = b""
        rest = data + b"\x00\x00\xff\xff"
        while rest:
            out += keep.decompress(rest)
            rest = keep.unused_data
            if keep.eof:
                keep = zlib.decompressobj(-15)
        if out != payload:
            fail(f"the kept inflater decoded {len(out)} bytes, want {len(payload)}")
        count += 1
    if count < 14:
        fail(f"only {count} frames")
    print(f"frames: {count} decoded by websockets, zlib and a kept inflater")


def strip_header(frame):
    n = frame[1] & 0x7F
    return frame[2:] if n < 126 else frame[4:] if n == 126 else frame[10:]


def check_inflate():
    msgs = [b"Hello", b"", b'{"subscribe":["news","sport"],"since":1733480000}' * 20,
            bytes(range(256)) * 16]
    payloads = []
    for m in msgs:
        enc = PerMessageDeflate(False, True, 15, 15)  # websockets as a client
        f = enc.encode(frames.Frame(frames.OP_TEXT, m))
        payloads.append(f.data)
    stdin = "".join(p.hex() + "\n" for p in payloads)
    cap = 4096
    got = tool("inflate", str(cap), stdin=stdin).split()
    for m, g in zip(msgs, got):
        want = "EMSGSIZE" if len(m) > cap else (m.hex() or "=")
        if g != want:
            fail(f"inflate of a {len(m)}-byte message: {g[:40]}, want {want[:40]}")
    # Exactly at the bound and one byte under it.
    exact = PerMessageDeflate(False, True, 15, 15).encode(
        frames.Frame(frames.OP_TEXT, msgs[3][:cap])).data.hex() + "\n"
    if tool("inflate", str(cap), stdin=exact).strip() != msgs[3][:cap].hex():
        fail("a message of exactly the bound")
    if tool("inflate", str(cap - 1), stdin=exact).strip() != "EMSGSIZE":
        fail("a message one byte over the bound")
    print(f"inflate: {len(msgs) + 2} websockets client messages")


check_negotiation()
check_frames()
check_inflate()
print(f"{0 if failures else 3} passed, {failures} failed")
sys.exit(1 if failures else 0)
