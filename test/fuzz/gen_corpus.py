#!/usr/bin/python3
"""Writes the seed corpora under test/fuzz/corpus/<target>/: one small file per input class.

usage: /usr/bin/python3 test/fuzz/gen_corpus.py

Deterministic (no randomness), so re-running it changes nothing unless this file changed.
Seeds named crash-*, leak-*, timeout-* or regress-* are regression inputs from fuzzing; this
script never writes or removes those. Input formats:
  upgrade: the bytes a client sent before the upgrade (and possibly after it)
  frame:   [split control][sink control][client byte stream]   (see fuzz.h, fuzz_frame.c;
           sink control bit 6: permessage-deflate negotiated)
  ipc:     [split control][packet stream]                      (see fuzz_ipc.c)
  utf8:    the bytes to validate
  channels: a request's query string, without the '?'
  admin:   [split control][ops control][client byte stream]          (see fuzz_admin.c)
  pmd:     Sec-WebSocket-Extensions values, one per line
  inflate: [bound control][form][bit lo][bit hi][data]             (see fuzz_inflate.c)
  jwt:     [mode/policy/leeway control][token, or JSON text to sign]  (see fuzz_jwt.c)
  tlsrec:  [split control][suite][items: op, length (2 bytes), bytes]   (see fuzz_tlsrec.c)
  tlsconn: the same as tlsrec, through one server connection     (see fuzz_tlsconn.c)
  tlshs:   [split control][client byte stream]                       (see fuzz_tlshs.c)
  auth:    [mode][request, refresh message, "QUERY\nCLAIMS" or CLAIMS]  (see fuzz_auth.c)
  framed:  [mode][query | payload | Redis message | epoch]           (see fuzz_framed.c)
  handover: one live-upgrade datagram (server/handover.h)             (see fuzz_handover.c)
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's sample key


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def request(method=b"GET", target=b"/", version=b"HTTP/1.1", headers=None, eol=b"\r\n"):
    if headers is None:
        headers = [(b"Host", b"example.com"), (b"Upgrade", b"websocket"),
                   (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", KEY),
                   (b"Sec-WebSocket-Version", b"13")]
    lines = [method + b" " + target + b" " + version]
    lines += [k + b": " + v for k, v in headers]
    return eol.join(lines) + eol + eol


def std_headers(drop=(), extra=(), replace=None):
    hs = [(b"Host", b"example.com"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
          (b"Sec-WebSocket-Key", KEY), (b"Sec-WebSocket-Version", b"13")]
    replace = replace or {}
    out = []
    for k, v in hs:
        if k in drop:
            continue
        out.append((k, replace.get(k, v)))
    return out + list(extra)


def upgrade_seeds():
    s = {}
    # valid
    s["valid-minimal"] = request()
    s["valid-query"] = request(target=b"/feed?room=1&x=%20")
    s["valid-lowercase-names"] = request(headers=[(k.lower(), v) for k, v in std_headers()])
    s["valid-connection-list"] = request(
        headers=std_headers(replace={b"Connection": b"keep-alive, Upgrade"}))
    s["valid-upgrade-list"] = request(
        headers=std_headers(replace={b"Upgrade": b"h2c , WebSocket"}))
    s["valid-bare-lf"] = request(eol=b"\n")
    s["valid-extra-headers"] = request(headers=std_headers(extra=[
        (b"Origin", b"https://example.com"), (b"Sec-WebSocket-Protocol", b"chat, superchat"),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"),
        (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64)"), (b"Cookie", b"a=b; c=d")]))
    s["valid-ows"] = request(headers=[(k, b" \t" + v + b"\t ") for k, v in std_headers()])
    s["valid-then-frames"] = request() + bytes([0x81, 0x85, 0, 0, 0, 0]) + b"hello"
    s["valid-long-path"] = request(target=b"/" + b"a" * 2000)
    pad = 8192 - len(request(headers=std_headers(extra=[(b"X-Pad", b"")])))
    s["valid-exactly-8k"] = request(headers=std_headers(extra=[(b"X-Pad", b"p" * pad)]))
    # incomplete (-EAGAIN)
    s["partial-request-line"] = b"GET / HTTP/1.1\r\n"
    s["partial-no-final-crlf"] = request()[:-2]
    s["partial-cr"] = request()[:-1]
    # 400
    s["400-http10"] = request(version=b"HTTP/1.0")
    s["400-http2"] = request(version=b"HTTP/2.0")
    s["400-no-host"] = request(headers=std_headers(drop=(b"Host",)))
    s["400-two-hosts"] = request(headers=std_headers(extra=[(b"Host", b"other")]))
    s["400-no-upgrade"] = request(headers=std_headers(drop=(b"Upgrade",)))
    s["400-no-connection"] = request(headers=std_headers(drop=(b"Connection",)))
    s["400-no-key"] = request(headers=std_headers(drop=(b"Sec-WebSocket-Key",)))
    s["400-two-keys"] = request(headers=std_headers(extra=[(b"Sec-WebSocket-Key", KEY)]))
    s["400-short-key"] = request(headers=std_headers(replace={b"Sec-WebSocket-Key": b"abc=="}))
    s["400-key-bad-char"] = request(
        headers=std_headers(replace={b"Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZ!=="}))
    s["400-absolute-form"] = request(target=b"http://example.com/")
    s["400-asterisk"] = request(target=b"*")
    s["400-fragment"] = request(target=b"/#frag")
    s["400-space-before-colon"] = request(headers=std_headers(extra=[(b"Host ", b"x")]))
    s["400-obs-fold"] = request()[:-2] + b" folded\r\n\r\n"
    s["400-bare-cr"] = b"GET / HTTP/1.1\rHost: x\r\n\r\n"
    s["400-nul-in-header"] = request(headers=std_headers(extra=[(b"X-Nul", b"a\x00b")]))
    s["400-ctl-in-header"] = request(headers=std_headers(extra=[(b"X-Ctl", b"a\x01b")]))
    s["400-no-colon"] = request()[:-2] + b"NoColonHere\r\n\r\n"
    s["400-empty-name"] = request()[:-2] + b": value\r\n\r\n"
    s["400-empty-request-line"] = b"\r\n\r\n"
    s["400-lowercase-version"] = request(version=b"http/1.1")
    s["400-tls-clienthello"] = bytes.fromhex(
        "16030100c4010000c00303") + bytes(range(32)) + bytes.fromhex(
        "0000020035010000950000000e000c0000096c6f63616c686f7374")
    s["400-binary-garbage"] = bytes(range(256))
    s["400-space-first"] = b" GET / HTTP/1.1\r\n\r\n"
    # 405
    s["405-post"] = request(method=b"POST")
    s["405-lowercase-get"] = request(method=b"get")
    s["405-connect"] = request(method=b"CONNECT", target=b"/x")
    # 426
    s["426-no-version"] = request(headers=std_headers(drop=(b"Sec-WebSocket-Version",)))
    s["426-version-8"] = request(headers=std_headers(replace={b"Sec-WebSocket-Version": b"8"}))
    # 431
    s["431-too-many-fields"] = request(
        headers=std_headers(extra=[(b"X-%d" % i, b"v") for i in range(101)]))
    s["431-over-8k"] = request(headers=std_headers(extra=[(b"X-Pad", b"p" * (pad + 1))]))
    s["431-endless-line"] = b"GET /" + b"a" * 8300
    s["431-endless-headers"] = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 1400
    for name, data in s.items():
        write("upgrade", name, data)


def cframe(op, payload=b"", fin=True, mask=b"\0\0\0\0", rsv=0, masked=True, length=None,
           ext=None):
    """A client frame; length/ext force a (possibly non-minimal) length encoding."""
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload) if length is None else length
    mbit = 0x80 if masked else 0
    if ext is None:
        ext = 0 if n < 126 else (2 if n < 65536 else 8)
    if ext == 0:
        hdr = bytes([b0, mbit | n])
    elif ext == 2:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return hdr + mask + body


def close(code=None, reason=b"", mask=b"\0\0\0\0"):
    p = b"" if code is None else struct.pack(">H", code) + reason
    return cframe(0x8, p, mask=mask)


def frame_seeds():
    TEXT, BIN, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
    k = b"\x37\xfa\x21\x3d"
    s = {}
    s["text"] = cframe(TEXT, b"hello")
    s["text-masked"] = cframe(TEXT, b"hello", mask=k)
    s["binary"] = cframe(BIN, bytes(range(100)))
    s["empty-text"] = cframe(TEXT)
    s["text-utf8"] = cframe(TEXT, "h\u00e9llo \u20ac \U0001F600".encode())
    s["text-126"] = cframe(TEXT, b"x" * 200)
    s["binary-4096"] = cframe(BIN, b"\xaa" * 4096)
    s["binary-4097-1009"] = cframe(BIN, b"\xaa" * 4097)
    s["len-127-huge-1009"] = cframe(BIN, length=1 << 40)[:14]
    s["len-msb-set-1002"] = cframe(BIN, length=1 << 63)[:14]
    s["len-nonminimal-2-1002"] = cframe(TEXT, b"abc", ext=2)
    s["len-nonminimal-8-1002"] = cframe(TEXT, b"x" * 300, ext=8)
    s["ping"] = cframe(PING, b"are you there")
    s["ping-empty"] = cframe(PING)
    s["ping-125"] = cframe(PING, b"p" * 125)
    s["ping-126-1002"] = cframe(PING, b"p" * 126)
    s["ping-nofin-1002"] = cframe(PING, b"x", fin=False)
    s["pong"] = cframe(PONG, b"unsolicited")
    s["pings-many"] = b"".join(cframe(PING, b"%d" % i) for i in range(40))
    s["close-1000"] = close(1000, b"bye")
    s["close-empty"] = close()
    s["close-1byte-1002"] = cframe(CLOSE, b"\x03")
    s["close-1005-1002"] = close(1005)
    s["close-999-1002"] = close(999)
    s["close-4000"] = close(4000, b"app")
    s["close-reason-bad-utf8"] = close(1000, b"\xc3\x28")
    s["close-reason-utf8"] = close(1001, "\u00e9t\u00e9".encode())
    s["close-reason-125"] = close(1000, b"r" * 123)
    s["close-masked"] = close(1000, b"bye", mask=k)
    s["after-close"] = close(1000) + cframe(TEXT, b"late") + cframe(PING, b"late")
    s["frag-text"] = cframe(TEXT, b"hel", fin=False) + cframe(CONT, b"lo", fin=False) + \
        cframe(CONT, b"!")
    s["frag-ping-between"] = cframe(TEXT, b"a", fin=False) + cframe(PING, b"mid") + \
        cframe(CONT, b"b")
    s["frag-utf8-split"] = cframe(TEXT, b"\xe2\x82", fin=False) + cframe(CONT, b"\xac")
    s["frag-utf8-bad-1007"] = cframe(TEXT, b"\xe2\x82", fin=False) + cframe(CONT, b"\x28")
    s["frag-over-4096-1009"] = cframe(BIN, b"a" * 3000, fin=False) + cframe(CONT, b"b" * 1100)
    s["frag-empty-endless"] = cframe(TEXT, fin=False) + cframe(CONT, fin=False) * 200
    s["frag-text-in-msg-1002"] = cframe(TEXT, b"a", fin=False) + cframe(TEXT, b"b")
    s["cont-without-start-1002"] = cframe(CONT, b"x")
    s["text-bad-utf8-1007"] = cframe(TEXT, b"\xff")
    s["text-surrogate-1007"] = cframe(TEXT, b"\xed\xa0\x80")
    s["text-truncated-utf8-1007"] = cframe(TEXT, b"ok\xe2\x82")
    s["unmasked-1002"] = cframe(TEXT, b"hello", masked=False)
    s["rsv1-1002"] = cframe(TEXT, b"x", rsv=0x40)
    s["rsv3-1002"] = cframe(TEXT, b"x", rsv=0x10)
    s["opcode-3-1002"] = cframe(0x3, b"x")
    s["opcode-b-1002"] = cframe(0xB, b"x")
    s["ping-then-bad"] = cframe(PING, b"1") + cframe(PING, b"2") + cframe(0x3)
    s["http-as-frames-1002"] = b"GET / HTTP/1.1\r\n\r\n"
    s["mixed"] = cframe(TEXT, b"a") + cframe(PING, b"b") + cframe(BIN, b"c") + \
        cframe(PONG) + cframe(TEXT, b"d", fin=False) + cframe(CONT, b"e") + close(1000, b"x")
    # Each class under several splits: whole, byte by byte, small, medium; and a few with a
    # sink that refuses after 0, 8 and 64 bytes (--max-pending).
    splits = [0x00, 0x10, 0x03, 0x07]
    for name, data in s.items():
        for sp in splits:
            write("frame", "%s-s%02x" % (name, sp), bytes([sp, 0x00]) + data)
    for name in ("pings-many", "ping-125", "mixed", "close-1000"):
        for sink in (0x80, 0x81, 0x88):
            write("frame", "%s-sink%02x" % (name, sink), bytes([0x05, sink]) + s[name])
    # permessage-deflate negotiated (sink control 0x40): RSV1 marks a compressed message.
    for name, data in pmd_frame_seeds().items():
        for sp in splits:
            write("frame", "pmd-%s-s%02x" % (name, sp), bytes([sp, 0x40]) + data)
    write("frame", "pmd-mixed-sinkc1", bytes([0x05, 0xC1]) + pmd_frame_seeds()["mixed"])


def zpayload(data, level=6):
    """A client's compressed payload (RFC 7692 7.2.1): sync flush, 00 00 ff ff dropped."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def pmd_frame_seeds():
    TEXT, BIN, CONT, PING = 0x1, 0x2, 0x0, 0x9
    R1 = 0x40
    z = zpayload(b'{"subscribe":"news","note":"hello hello hello hello"}')
    big = zpayload(bytes(range(256)) * 16, 0)  # 4 KiB in stored blocks: just over 4096 bytes
    s = {}
    s["text"] = cframe(TEXT, z, rsv=R1)
    s["binary"] = cframe(BIN, z, rsv=R1)
    s["plain-text"] = cframe(TEXT, b"hello")
    s["empty"] = cframe(TEXT, b"\x00", rsv=R1)
    s["no-bytes-1002"] = cframe(TEXT, b"", rsv=R1)
    s["frag"] = cframe(TEXT, z[:5], fin=False, rsv=R1) + cframe(PING, b"mid") + \
        cframe(CONT, z[5:20], fin=False) + cframe(CONT, z[20:])
    s["stored-4096"] = cframe(BIN, big, rsv=R1)
    s["over-wire-1009"] = cframe(BIN, big + b"\x00" * 64, rsv=R1)
    s["bomb-1009"] = cframe(BIN, zpayload(b"\x00" * 100000, 9), rsv=R1)
    s["4097-1009"] = cframe(BIN, zpayload(b"a" * 4097), rsv=R1)
    s["corrupt-1002"] = cframe(TEXT, b"\x07\x00", rsv=R1)
    s["truncated-1002"] = cframe(TEXT, z[:len(z) // 2], rsv=R1)
    s["bad-utf8-1007"] = cframe(TEXT, zpayload(b"ok\xc3\x28"), rsv=R1)
    s["ping-rsv1-1002"] = cframe(PING, b"p", rsv=R1)
    s["cont-rsv1-1002"] = cframe(TEXT, z[:5], fin=False, rsv=R1) + cframe(CONT, z[5:], rsv=R1)
    s["rsv2-1002"] = cframe(TEXT, z, rsv=0x20)
    s["mixed"] = cframe(TEXT, z, rsv=R1) + cframe(PING, b"a") + cframe(TEXT, b"plain") + \
        cframe(BIN, z, rsv=R1) + cframe(0x8, b"\x03\xe8")
    return s


def ipc(t, seq, payload=b""):
    return bytes([t]) + struct.pack("<QI", seq, len(payload)) + payload


def ipc_seeds():
    B, T, P = ord("B"), ord("T"), ord("P")
    s = {}
    s["broadcast"] = ipc(B, 1, b'{"time":1795755922337,"seq":1}')
    s["trigger"] = ipc(T, 0)
    s["publish"] = ipc(P, 0, b"hello")
    s["sequence"] = ipc(T, 0) + ipc(B, 7, b"x" * 300) + ipc(P, 0, b"y") + ipc(B, 8, b"")
    s["partial-header"] = ipc(B, 1, b"abc")[:7]
    s["partial-payload"] = ipc(B, 1, b"abcdef")[:16]
    s["max-payload"] = ipc(P, 0, b"m" * 65536)
    s["over-max-payload"] = ipc(P, 0, b"")[:9] + struct.pack("<I", 65537)
    s["huge-length"] = ipc(B, 0, b"")[:9] + struct.pack("<I", 0xFFFFFFFF)
    s["unknown-type"] = ipc(ord("X"), 1, b"x")
    s["upgrade"] = ipc(ord("H"), 4242)
    s["unknown-after-good"] = ipc(T, 0) + ipc(0, 0)
    s["seq-max"] = ipc(B, 0xFFFFFFFFFFFFFFFF, b"z")
    # BROADCAST/PUBLISH payloads: [channel length][channel][message]
    s["chan-default"] = ipc(B, 3, b"\x00" + b'{"time":1,"seq":3}')
    s["chan-named"] = ipc(P, 0, b"\x07news:eu" + b"hello")
    s["chan-empty-msg"] = ipc(B, 4, b"\x04time")
    s["chan-255"] = ipc(P, 0, b"\xff" + b"c" * 255 + b"m")
    s["chan-len-past-end"] = ipc(B, 5, b"\x09abc")
    s["chan-empty-payload"] = ipc(P, 0, b"")
    for name, data in s.items():
        for sp in (0x00, 0x10, 0x02, 0x0a):
            write("ipc", "%s-s%02x" % (name, sp), bytes([sp]) + data)


def ho_dgram(*recs, version=1):
    return b"WSPH" + bytes([version]) + struct.pack("<H", len(recs)) + b"".join(recs)


def ho_rec(t, body):
    return bytes([t]) + struct.pack("<I", len(body)) + body


def ho_conn(state=1, flags=0, xf=0, ttl=0, hs=b"", pending=b"", chans=(), tags=b""):
    body = bytes([state, flags, xf, ttl]) + struct.pack("<I", len(hs)) + hs
    body += struct.pack("<I", len(pending)) + pending + bytes([len(chans)])
    for c in chans:
        body += bytes([len(c)]) + c
    return ho_rec(3, body + tags)


def ho_tls(version, suite, keylen, secretlen, part):
    """Tag 0x02 of an OPEN TLS connection: made-up keys, sequence numbers 5 and 9."""
    v = bytes([2]) + struct.pack("<HHBB", version, suite, keylen, secretlen)
    for seq, fill in ((5, 0x11), (9, 0x22)):
        v += struct.pack("<Q", seq) + bytes([fill]) * (keylen + 12 + secretlen)
    v += struct.pack("<H", len(part)) + part
    return b"\x02" + struct.pack("<H", len(v)) + v


def ho_hist(seq, age, chan, epoch, msg):
    return ho_rec(9, struct.pack("<QQB", seq, age, len(chan)) + chan + bytes([len(epoch)]) +
                  epoch + struct.pack("<I", len(msg)) + msg)


def handover_seeds():
    hello = ho_rec(1, struct.pack("<IHHBQ", 4242, 2, 8080, 1, 17))
    end = ho_rec(6, struct.pack("<QQQ", 99, 7, 1795755960000))
    auth = b"\x01" + struct.pack("<HQI", 12, 0x0123456789ABCDEF, 1795755960)
    bcast = ho_rec(5, struct.pack("<QB", 5, 4) + b"news" + struct.pack("<I", 5) + b"hello" +
                   struct.pack("<QB", 3, 6) + b"e0abcd")
    s = {
        "hello": ho_dgram(hello),
        "ready": ho_dgram(ho_rec(2, b"")),
        "conn-open": ho_dgram(ho_conn()),
        "conn-channels": ho_dgram(ho_conn(flags=1, chans=(b"news", b"sport.eu"))),
        "conn-handshake": ho_dgram(ho_conn(state=0, ttl=7, hs=b"GET / HTTP/1.1\r\nHost: a\r\n")),
        "conn-pending": ho_dgram(ho_conn(flags=2, pending=b"\x81\x05hello" * 3)),
        "conn-skippable-tag": ho_dgram(ho_conn(tags=b"\x81\x02\x00ab")),
        "conn-required-tag": ho_dgram(ho_conn(tags=b"\x7e\x01\x00z")),
        "conn-auth": ho_dgram(ho_conn(chans=(b"news",), tags=auth)),
        "conn-auth-after-skippable": ho_dgram(ho_conn(tags=b"\x81\x02\x00ab" + auth)),
        "conn-auth-twice": ho_dgram(ho_conn(tags=auth + auth)),
        "conn-auth-short": ho_dgram(ho_conn(tags=auth[:3] + auth[4:])),
        "conn-auth-handshake": ho_dgram(ho_conn(state=0, ttl=3, tags=auth)),
        "hello-key": ho_dgram(hello, ho_rec(8, b"\x05HS256" + bytes(range(16)))),
        "key-no-alg": ho_dgram(hello, ho_rec(8, b"\x00" + bytes(16))),
        "key-short": ho_dgram(ho_rec(8, b"\x05RS256" + bytes(15))),
        "conn-open-with-hs": ho_dgram(ho_conn(hs=b"x")),
        "many-conns": ho_dgram(*[ho_conn(chans=(b"c%d" % i,)) for i in range(40)], ho_rec(4, b"")),
        "end-with-bcasts": ho_dgram(bcast, ho_rec(5, struct.pack("<QBI", 6, 0, 2) + b"hi" + struct.pack("<QB", 0, 0)), end),
        "cseqs": ho_dgram(ho_rec(7, struct.pack("<QB", 41, 4) + b"news"),
                          ho_rec(7, struct.pack("<QB", 9, 4) + b"time"), end),
        "hists": ho_dgram(ho_hist(1, 900, b"news", b"e0abcd", b'{"ch":"news","seq":1,"data":"a"}'),
                          ho_hist(2, 0, b"news", b"e0abcd", b'{"ch":"news","seq":2,"data":"b"}'),
                          ho_hist(7, 5, b"time", b"e0abcd", b""), end),
        "hist-cut": ho_dgram(ho_hist(1, 1, b"c", b"e", b"xyz"))[:-1],
        "bad-magic": b"WSPX" + ho_dgram(end)[4:],
        "other-version": ho_dgram(end, version=2),
        "short-record": ho_dgram(end)[:-3],
        "count-too-high": ho_dgram(end)[:5] + struct.pack("<H", 2) + ho_dgram(end)[7:],
        "trailing-bytes": ho_dgram(end) + b"zz",
        "huge-length": ho_dgram(ho_rec(3, b""))[:8] + struct.pack("<I", 0xFFFFFFFF),
        "chan-past-end": ho_dgram(ho_conn(chans=(b"abc",)))[:-2],
        # tag 0x02: a TLS connection (issue #18)
        "conn-tls13": ho_dgram(ho_conn(xf=0x20, chans=(b"news",),
                                       tags=ho_tls(0x0304, 0x1302, 32, 48, b"\x17\x03\x03\x00\x40ab"))),
        "conn-tls12": ho_dgram(ho_conn(xf=0x20, pending=b"\x17\x03\x03\x00\x02zz",
                                       tags=ho_tls(0x0303, 0xC02F, 16, 0, b""))),
        "conn-tls-new": ho_dgram(ho_conn(state=0, xf=0x20, ttl=3, tags=b"\x02\x01\x00\x01")),
        "conn-tls-twice": ho_dgram(ho_conn(tags=b"\x02\x01\x00\x01" * 2)),
        "conn-tls-after-skippable": ho_dgram(ho_conn(
            tags=b"\x81\x02\x00ab" + ho_tls(0x0304, 0x1301, 16, 32, b""))),
        "ready-tls": ho_dgram(ho_rec(2, b"\x01")),
        # MARK: the old process's Redis marker before END (issue #20, server/pubhold.h)
        "ready-redis": ho_dgram(ho_rec(2, b"\x03")),
        "mark-end": ho_dgram(bcast, ho_rec(10, b"4242.17"), end),
        "mark-empty": ho_dgram(ho_rec(10, b""), end),
        "mark-long": ho_dgram(ho_rec(10, b"7" * 48), end),
    }
    for name, data in s.items():
        write("handover", name, data)


def utf8_seeds():
    s = {
        "empty": b"",
        "ascii": b"hello, world",
        "two-byte": "\u00e9\u00df".encode(),
        "three-byte": "\u20ac\uffff".encode(),
        "four-byte": "\U0001F600\U0010FFFF".encode(),
        "boundaries": "\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\U00010000".encode(),
        "overlong-2": b"\xc0\x80",
        "overlong-2b": b"\xc1\xbf",
        "overlong-3": b"\xe0\x80\x80",
        "overlong-3b": b"\xe0\x9f\xbf",
        "overlong-4": b"\xf0\x80\x80\x80",
        "overlong-4b": b"\xf0\x8f\xbf\xbf",
        "surrogate-lo": b"\xed\xa0\x80",
        "surrogate-hi": b"\xed\xbf\xbf",
        "above-10ffff": b"\xf4\x90\x80\x80",
        "f5": b"\xf5\x80\x80\x80",
        "ff": b"\xff",
        "lone-continuation": b"\x80",
        "truncated-2": b"a\xc3",
        "truncated-3": b"a\xe2\x82",
        "truncated-4": b"a\xf0\x9f\x98",
        "bad-continuation": b"\xe2\x28\xa1",
        "json": b'{"time":1795755922337,"seq":1,"msg":"caf\xc3\xa9"}',
    }
    for name, data in s.items():
        write("utf8", name, data)


def channels_seeds():
    s = {
        "none": b"",
        "one": b"channels=news",
        "several": b"channels=news,sport.1,a:b,x-y_z",
        "with-others": b"x=1&channels=news:eu,sport&y=&z",
        "duplicates": b"channels=a,b,a,b",
        "eight": b"channels=" + b",".join(b"c%d" % i for i in range(8)),
        "nine": b"channels=" + b",".join(b"c%d" % i for i in range(9)),
        "nine-with-dup": b"channels=" + b",".join(b"c%d" % i for i in range(8)) + b",c0",
        "name-64": b"channels=" + b"n" * 64,
        "name-65": b"channels=" + b"n" * 65,
        "empty-value": b"channels=",
        "no-equals": b"channels",
        "repeated": b"channels=a&channels=b",
        "empty-item": b"channels=a,,b",
        "leading-comma": b"channels=,a",
        "trailing-comma": b"channels=a,",
        "percent": b"channels=a%20b",
        "space": b"channels=a b",
        "other-key": b"channelsX=a&xchannels=b",
        "ampersands": b"&&&channels=a&&",
        "uppercase-key": b"CHANNELS=a",
        "utf8-name": "channels=caf\u00e9".encode(),
        "nul": b"channels=a\x00b",
    }
    for name, data in s.items():
        write("channels", name, data)


ADMIN_TOKEN = b"fuzz-token"  # fuzz_admin.c's FUZZ_TOKEN
# fuzz_admin.c's ops control bits
DRAINING, PUB_EAGAIN, PUB_FAIL, METRICS_FAIL, STATS_FAIL, BIG, NO_TOKEN = (1 << i for i in range(7))


def hreq(method=b"GET", target=b"/healthz", version=b"HTTP/1.1", headers=(), body=b"",
         length=True):
    """An admin request; Content-Length is added for a body unless length is False."""
    hs = [(b"Host", b"127.0.0.1")] + list(headers)
    if body and length:
        hs.append((b"Content-Length", b"%d" % len(body)))
    lines = [method + b" " + target + b" " + version] + [k + b": " + v for k, v in hs]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def auth(token=ADMIN_TOKEN):
    return (b"Authorization", b"Bearer " + token)


def publish(body=b"hello", target=b"/publish", headers=None, **kw):
    return hreq(b"POST", target, headers=[auth()] if headers is None else headers, body=body,
                **kw)


def chunked(body, size=16):
    out = b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def admin_seeds():
    te = (b"Transfer-Encoding", b"chunked")
    s = {}  # name: (ops control, stream)
    s["get-healthz"] = (0, hreq())
    s["get-metrics"] = (0, hreq(target=b"/metrics"))
    s["get-stats"] = (0, hreq(target=b"/stats"))
    s["head-metrics"] = (0, hreq(b"HEAD", b"/metrics"))
    s["head-then-get"] = (0, hreq(b"HEAD", b"/stats") + hreq(target=b"/stats"))
    s["healthz-draining"] = (DRAINING, hreq())
    s["metrics-fail"] = (METRICS_FAIL, hreq(target=b"/metrics"))
    s["stats-fail"] = (STATS_FAIL, hreq(target=b"/stats"))
    s["metrics-query"] = (0, hreq(target=b"/metrics?x=1#frag"))
    s["publish"] = (0, publish())
    s["publish-channel"] = (0, publish(target=b"/publish?channel=news:eu"))
    s["publish-channel-other-params"] = (0, publish(target=b"/publish?a=1&channel=x&b"))
    s["publish-channel-twice"] = (0, publish(target=b"/publish?channel=a&channel=b"))
    s["publish-user"] = (0, publish(target=b"/publish?user=a%3A%23b%00c"))
    s["publish-user-and-channel"] = (0, publish(target=b"/publish?user=a&channel=b"))
    s["publish-user-bad-escape"] = (0, publish(target=b"/publish?user=%4"))
    s["publish-channel-empty"] = (0, publish(target=b"/publish?channel="))
    s["publish-channel-novalue"] = (0, publish(target=b"/publish?channel"))
    s["publish-channel-bad"] = (0, publish(target=b"/publish?channel=a%20b"))
    s["publish-channel-65"] = (0, publish(target=b"/publish?channel=" + b"c" * 65))
    s["publish-empty"] = (0, hreq(b"POST", b"/publish", headers=[auth(), (b"Content-Length",
                                                                          b"0")]))
    s["publish-utf8"] = (0, publish("caf\u00e9 \u20ac \U0001F600".encode()))
    s["publish-bad-utf8"] = (0, publish(b"\xc3\x28"))
    s["publish-no-token"] = (0, publish(headers=[]))
    s["publish-wrong-token"] = (0, publish(headers=[auth(b"fuzz-tokem")]))
    s["publish-token-prefix"] = (0, publish(headers=[auth(b"fuzz-toke")]))
    s["publish-two-auth"] = (0, publish(headers=[auth(), auth()]))
    s["publish-basic-auth"] = (0, publish(headers=[(b"Authorization", b"Basic Zm9vOmJhcg==")]))
    s["publish-auth-lowercase"] = (0, publish(headers=[(b"authorization",
                                                        b"bearer   " + ADMIN_TOKEN + b" \t")]))
    s["publish-auth-folded"] = (0, publish(headers=[(b"Authorization",
                                                     b"Bearer fuzz-\r\n token")]))
    s["publish-no-token-server"] = (NO_TOKEN, publish(headers=[]))
    s["publish-no-length"] = (0, publish(body=b"", headers=[auth()]))
    s["publish-chunked"] = (0, publish(chunked(b"hello chunked world", 5),
                                       headers=[auth(), te], length=False))
    s["publish-chunked-ext"] = (0, publish(b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
                                           headers=[auth(), te], length=False))
    s["publish-chunked-bad"] = (0, publish(b"zz\r\nhello\r\n0\r\n\r\n",
                                           headers=[auth(), te], length=False))
    s["publish-cl-and-te"] = (0, publish(chunked(b"abc"), headers=[auth(), te]))
    s["publish-two-cl"] = (0, publish(headers=[auth(), (b"Content-Length", b"5")]))
    s["publish-cl-too-big"] = (0, hreq(b"POST", b"/publish", headers=[
        auth(), (b"Content-Length", b"65537")]) + b"x" * 100)
    s["publish-cl-huge"] = (0, hreq(b"POST", b"/publish", headers=[
        auth(), (b"Content-Length", b"99999999999999999999")]))
    s["publish-expect"] = (0, publish(headers=[auth(), (b"Expect", b"100-continue")]))
    s["publish-expect-unauthorized"] = (0, publish(headers=[(b"Expect", b"100-continue")]))
    s["publish-expect-unknown"] = (0, publish(headers=[auth(), (b"Expect", b"200-ok")]))
    s["publish-draining"] = (PUB_EAGAIN, publish())
    s["publish-fail"] = (PUB_FAIL, publish())
    s["publish-partial-body"] = (0, publish(b"hello world")[:-4])
    s["publish-then-get"] = (0, publish(b"one") + hreq(target=b"/stats") + publish(b"two"))
    s["get-publish"] = (0, hreq(target=b"/publish"))
    s["post-metrics"] = (0, hreq(b"POST", b"/metrics", body=b"x"))
    s["delete-stats"] = (0, hreq(b"DELETE", b"/stats"))
    s["not-found"] = (0, hreq(target=b"/"))
    s["not-found-body"] = (0, hreq(b"POST", b"/nope", body=b"dropped") + hreq())
    s["get-with-body"] = (0, hreq(target=b"/healthz", body=b"ignored") + hreq())
    s["keep-alive"] = (0, hreq() + hreq(target=b"/metrics") + hreq(target=b"/stats"))
    s["pipelined-many"] = (0, b"".join(hreq(target=t) for t in (
        b"/healthz", b"/metrics", b"/stats", b"/nope", b"/publish") * 8))
    s["pipelined-big"] = (BIG, hreq(target=b"/metrics") * 6 + publish())
    s["big-head"] = (BIG, hreq(b"HEAD", b"/metrics") + hreq(target=b"/metrics"))
    s["connection-close"] = (0, hreq(headers=[(b"Connection", b"close")]) + hreq())
    s["http10"] = (0, hreq(version=b"HTTP/1.0") + hreq())
    s["http10-keep-alive"] = (0, hreq(version=b"HTTP/1.0",
                                      headers=[(b"Connection", b"keep-alive")]) + hreq())
    s["http09"] = (0, b"GET /healthz\r\n\r\n")
    s["http2-preface"] = (0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    s["upgrade"] = (0, hreq(headers=[(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]) +
                    b"\x81\x80\0\0\0\0")
    s["connect"] = (0, b"CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n")
    s["absolute-form"] = (0, hreq(target=b"http://127.0.0.1/metrics"))
    s["leading-crlf"] = (0, b"\r\n\r\n" + hreq())
    s["bare-lf"] = (0, hreq().replace(b"\r\n", b"\n"))
    s["lowercase-method"] = (0, hreq(b"get"))
    s["url-2048"] = (0, hreq(target=b"/healthz?" + b"q" * 2039))
    s["url-2049"] = (0, hreq(target=b"/healthz?" + b"q" * 2040))
    pad = 8192 - len(hreq(headers=[(b"X-Pad", b"")]))
    s["head-8192"] = (0, hreq(headers=[(b"X-Pad", b"p" * pad)]) + hreq())
    s["head-8193"] = (0, hreq(headers=[(b"X-Pad", b"p" * (pad + 1))]) + hreq())
    s["head-many-fields"] = (0, hreq(headers=[(b"X-%d" % i, b"v") for i in range(500)]))
    s["head-endless"] = (0, b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 1500)
    s["partial-request-line"] = (0, b"GET /metr")
    s["partial-headers"] = (0, hreq()[:-2])
    s["empty"] = (0, b"")
    s["nul-in-header"] = (0, hreq(headers=[(b"X-Nul", b"a\x00b")]))
    s["garbage"] = (0, bytes(range(256)))
    s["tls-clienthello"] = (0, bytes.fromhex("16030100c4010000c00303") + bytes(range(32)))
    # Whole, then in random pieces of up to 32 bytes; a few also byte by byte.
    for name, (ops, data) in s.items():
        for sp in (0x00, 0x05):
            write("admin", "%s-s%02x" % (name, sp), bytes([sp, ops]) + data)
    for name in ("publish", "publish-chunked", "keep-alive", "publish-expect", "head-then-get"):
        ops, data = s[name]
        write("admin", "%s-s10" % name, bytes([0x10, ops]) + data)
    # The body cap: exactly 64 KiB, then one byte over it in chunks (whole only: they are big).
    body = b"\xe2\x82\xac" * (65536 // 3) + b"a"  # 65536 bytes of UTF-8
    write("admin", "publish-64k-s00", bytes([0, 0]) + publish(body) + hreq())
    write("admin", "publish-chunked-over-64k-s00",
          bytes([0, 0]) + publish(chunked(body + b"b", 4096), headers=[auth(), te], length=False))


def pmd_seeds():
    s = {
        "empty": b"",
        "plain": b"permessage-deflate",
        "browser": b"permessage-deflate; client_max_window_bits",
        "all-params": b"permessage-deflate; server_no_context_takeover; "
                      b"client_no_context_takeover; server_max_window_bits=10; "
                      b"client_max_window_bits=12",
        "rfc-fallback": b"permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
                        b"permessage-deflate; client_max_window_bits",
        "two-lines": b"x-foo; a=1\npermessage-deflate; server_max_window_bits=9",
        "quoted": b'permessage-deflate; server_max_window_bits="1\\1"; x="a\\"b"',
        "whitespace": b" \t permessage-deflate \t; server_max_window_bits = 13 , x ; y = z ,",
        "declined": b"permessage-deflate; foo, permessage-deflate; server_max_window_bits=08, "
                    b"permessage-deflate; server_no_context_takeover; "
                    b"server_no_context_takeover, permessage-deflate",
        "case": b"Permessage-Deflate; Server_No_Context_Takeover",
        "many": b", ".join([b"permessage-deflate; x"] * 9 + [b"permessage-deflate"]),
        "answer": b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                  b"server_max_window_bits=12",
        "unterminated": b'permessage-deflate; x="abc\npermessage-deflate"',
        "bad-trailing-semicolon": b"permessage-deflate;",
        "bad-utf8": "perm\u00e9ssage-deflate".encode(),
    }
    for name, data in s.items():
        write("pmd", name, data)


def raw_deflate(data, level=6, final=False):
    """What clients send: raw DEFLATE, sync-flushed and 00 00 ff ff removed (RFC 7692 7.2.1);
    final=True: a BFINAL stream plus one zero byte, as libdeflate-based senders do."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    if final:
        return c.compress(data) + c.flush(zlib.Z_FINISH) + b"\x00"
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_seeds():
    json = b'{"subscribe":["news","sport"],"since":1733480000,"id":"c-4821"}'
    raw = {  # form 0: payloads as they come
        "hello-7.2.3.1": bytes.fromhex("f248cdc9c90700"),
        "stored-7.2.3.3": bytes.fromhex("000500faff48656c6c6f00"),
        "bfinal-7.2.3.4": bytes.fromhex("f348cdc9c9070000"),
        "two-blocks-7.2.3.5": bytes.fromhex("f24805000000ffffcac9c90700"),
        "empty-7.2.3.6": b"\x00",
        "context-7.2.3.2": bytes.fromhex("f200110000"),
        "none": b"",
        "json": raw_deflate(json * 8),
        "json-bfinal": raw_deflate(json * 8, final=True),
        "two-streams": raw_deflate(b"Hello", final=True) + raw_deflate(b" world", final=True),
        "bomb": raw_deflate(bytes(1 << 20), 9),
        "corrupt": bytes.fromhex("ff0700faff"),
    }
    plain = {  # forms 1-3: plain text zlib compresses
        "json": json * 8,
        "text": b"Hello, world! " * 50,
        "binary": bytes((i * 7919 + 13) % 251 for i in range(3000)),
        "zeros": bytes(8000),
        "empty": b"",
    }
    for bound in (0x40, 0x02):  # 4096 bytes; 128 bytes
        for name, data in raw.items():
            write("inflate", "%s-b%02x" % (name, bound), bytes([bound, 0, 0, 0]) + data)
        for name, data in plain.items():
            for form in (0x19, 0x1a, 0x1b, 0x01, 0x99, 0x59):
                write("inflate", "%s-f%02x-b%02x" % (name, form, bound),
                      bytes([bound, form, 0x35, 0x01]) + data)

JWT_SECRET = b"fuzz-only-hs256-secret-not-for-production-use!!"  # fuzz_jwt.c's secret
JWT_NOW = 1700000000  # fuzz_jwt.c's NOW
# fuzz_jwt.c's control byte: mode in bits 0-1, a policy with aud and iss in bit 2, the leeway
# in bits 3-7.
HS_TOKEN, ES_TOKEN, SIGN_HEADER, SIGN_CLAIMS = 0, 1, 2, 3
POLICY = 4


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jwt_hs256(claims, header=None):
    """A token signed with the fuzz secret; claims and header are dicts or raw bytes."""
    h = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    enc = [b64u(x if isinstance(x, bytes) else json.dumps(x, separators=(",", ":")).encode())
           for x in (h, claims)]
    signing = b".".join(enc)
    return signing + b"." + b64u(hmac.new(JWT_SECRET, signing, hashlib.sha256).digest())


def jwt_seeds():
    now = JWT_NOW
    ok = {"sub": "user-1", "exp": now + 3600, "iat": now}
    full = dict(ok, aud=["other", "wspush"], iss="issuer-1", nbf=now - 10,
                channels=["news", "sport:eu"])
    s = {}
    good = jwt_hs256(ok)
    s["hs-valid"] = (HS_TOKEN, good)
    s["hs-valid-policy"] = (HS_TOKEN | POLICY | 5 << 3, jwt_hs256(full))
    s["hs-channels-8"] = (HS_TOKEN, jwt_hs256(dict(ok, channels=["c%d" % i for i in range(8)])))
    s["hs-float-exp"] = (HS_TOKEN, jwt_hs256(dict(ok, exp=now + 0.5)))
    s["hs-typ-at-jwt"] = (HS_TOKEN, jwt_hs256(ok, {"alg": "HS256", "typ": "at+jwt"}))
    s["hs-expired-leeway"] = (HS_TOKEN | 31 << 3, jwt_hs256(dict(ok, exp=now - 31)))
    s["hs-expired"] = (HS_TOKEN, jwt_hs256(dict(ok, exp=now)))
    s["hs-nbf-future"] = (HS_TOKEN, jwt_hs256(dict(ok, nbf=now + 1)))
    s["hs-iat-future"] = (HS_TOKEN, jwt_hs256(dict(ok, iat=now + 1)))
    s["hs-aud-wrong"] = (HS_TOKEN | POLICY, jwt_hs256(dict(full, aud="other")))
    s["hs-iss-wrong"] = (HS_TOKEN | POLICY, jwt_hs256(dict(full, iss="evil")))
    s["hs-exp-string"] = (HS_TOKEN, jwt_hs256(dict(ok, exp="soon")))
    s["hs-sub-65"] = (HS_TOKEN, jwt_hs256(dict(ok, sub="s" * 65)))
    s["hs-dup-sub"] = (HS_TOKEN, jwt_hs256(b'{"sub":"a","sub":"b","exp":1700003600}'))
    s["hs-crit"] = (HS_TOKEN, jwt_hs256(ok, {"alg": "HS256", "crit": ["exp"]}))
    s["hs-alg-none"] = (HS_TOKEN, jwt_hs256(ok, {"alg": "none"}).rsplit(b".", 1)[0] + b".")
    s["hs-alg-hs384"] = (HS_TOKEN, jwt_hs256(ok, {"alg": "HS384"}))
    s["hs-bad-sig"] = (HS_TOKEN, good[:-3] + (b"AAA" if good[-3:] != b"AAA" else b"BAA"))
    s["hs-two-parts"] = (HS_TOKEN, good.rsplit(b".", 1)[0])
    s["hs-four-parts"] = (HS_TOKEN, good + b".AAAA")
    s["hs-padding"] = (HS_TOKEN, good + b"=")
    s["hs-bad-char"] = (HS_TOKEN, good[:5] + b"!" + good[6:])
    s["hs-empty"] = (HS_TOKEN, b"")
    s["hs-dots"] = (HS_TOKEN, b"..")
    s["hs-4097"] = (HS_TOKEN, b"A" * 4097)
    s["hs-5k"] = (HS_TOKEN, jwt_hs256(dict(ok, x="x" * 3800)))
    es_body = b64u(b'{"alg":"ES256","typ":"JWT"}') + b"." + b64u(json.dumps(ok).encode())
    s["es-sig-64"] = (ES_TOKEN, es_body + b"." + b64u(bytes(range(1, 65))))
    s["es-sig-zero"] = (ES_TOKEN, es_body + b"." + b64u(bytes(64)))
    s["es-sig-63"] = (ES_TOKEN, es_body + b"." + b64u(bytes(range(1, 64))))
    s["es-sig-der"] = (ES_TOKEN, es_body + b"." + b64u(bytes.fromhex("3044022001") + bytes(67)))
    s["es-alg-hs256"] = (ES_TOKEN, good)
    s["sign-header"] = (SIGN_HEADER, b'{"alg":"HS256","kid":"k1"}\n' + json.dumps(ok).encode())
    s["sign-header-none"] = (SIGN_HEADER, b'{"alg":"none"}\n' + json.dumps(ok).encode())
    s["sign-header-bad"] = (SIGN_HEADER, b'{"alg":\n{}')
    claims = {
        "ok": ok, "full": full, "channels-9": dict(ok, channels=["c%d" % i for i in range(9)]),
        "channels-mixed": dict(ok, channels=["a", 1, None]), "channels-empty": dict(ok, channels=[]),
        "aud-array-number": dict(full, aud=["wspush", 7]), "iss-number": dict(full, iss=1),
        "exp-huge": dict(ok, exp=2 ** 63 - 1), "exp-negative": dict(ok, exp=-2 ** 63 + 1),
        "exp-1e300": dict(ok, exp=1e300), "nbf-null": dict(ok, nbf=None),
        "sub-utf8": dict(ok, sub="\u00fc" * 32), "sub-number": dict(ok, sub=7),
    }
    for name, c in claims.items():
        s["sign-claims-" + name] = (SIGN_CLAIMS | POLICY | 5 << 3, json.dumps(c).encode())
    s["sign-claims-bad-json"] = (SIGN_CLAIMS, b'{"sub":"u","exp":')
    s["sign-claims-nul"] = (SIGN_CLAIMS, b'{"sub":"a\\u0000b","exp":1700003600}')
    for name, (ctl, data) in s.items():
        write("jwt", name, bytes([ctl]) + data)
AUTH_SECRET = b"fuzz-only-auth-hs256-secret-not-for-production!!"  # fuzz_auth.c's secret
AUTH_REQUEST, AUTH_REFRESH, AUTH_SIGN_QUERY, AUTH_SIGN_REFRESH = 0, 1, 2, 3


def auth_token(claims):
    h = b64u(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64u(json.dumps(claims).encode())
    return h + b"." + b64u(hmac.new(AUTH_SECRET, h, hashlib.sha256).digest())


def auth_seeds():
    now = JWT_NOW
    ok = {"sub": "user-1", "exp": now + 3600}
    news = dict(ok, channels=["news", "time"])
    tok, tnews = auth_token(ok), auth_token(news)
    s = {}
    s["bearer"] = (AUTH_REQUEST, request(headers=std_headers(extra=[(b"Authorization", b"Bearer " + tok)])))
    s["bearer-other-scheme"] = (AUTH_REQUEST, request(
        target=b"/?token=" + tok, headers=std_headers(extra=[(b"Authorization", b"Basic eDp5")])))
    s["query"] = (AUTH_REQUEST, request(target=b"/?channels=news&token=" + tnews))
    s["query-forbidden"] = (AUTH_REQUEST, request(target=b"/?channels=sport&token=" + tnews))
    s["query-twice"] = (AUTH_REQUEST, request(target=b"/?token=a&token=" + tok))
    s["cookie"] = (AUTH_REQUEST, request(headers=std_headers(
        extra=[(b"Cookie", b"a=1; wspush_token=\"" + tok + b"\"; b=2")])))
    s["cookie-twice"] = (AUTH_REQUEST, request(headers=std_headers(
        extra=[(b"Cookie", b"wspush_token=x"), (b"Cookie", b"wspush_token=" + tok)])))
    s["missing"] = (AUTH_REQUEST, request())
    s["refresh"] = (AUTH_REFRESH, b'{"refresh":"' + tok + b'"}')
    s["refresh-other-sub"] = (AUTH_REFRESH, b'{"refresh":"' + auth_token(dict(ok, sub="x")) + b'"}')
    s["refresh-dup"] = (AUTH_REFRESH, b'{"refresh":"a","refresh":"b"}')
    s["refresh-not"] = (AUTH_REFRESH, b'{"refresh":1}')
    s["refresh-text"] = (AUTH_REFRESH, b"hello")
    s["sign-query-subset"] = (AUTH_SIGN_QUERY, b"channels=news\n" + json.dumps(news).encode())
    s["sign-query-outside"] = (AUTH_SIGN_QUERY, b"channels=news,x\n" + json.dumps(news).encode())
    s["sign-query-no-claim"] = (AUTH_SIGN_QUERY, b"channels=a,b\n" + json.dumps(ok).encode())
    s["sign-query-empty-claim"] = (AUTH_SIGN_QUERY, b"a=1\n" + json.dumps(dict(ok, channels=[])).encode())
    s["sign-query-bad-claim"] = (AUTH_SIGN_QUERY, b"\n" + json.dumps(dict(ok, channels=["a b"])).encode())
    s["sign-refresh"] = (AUTH_SIGN_REFRESH, json.dumps(ok).encode())
    s["sign-refresh-expired"] = (AUTH_SIGN_REFRESH, json.dumps(dict(ok, exp=now - 6)).encode())
    s["sign-refresh-other"] = (AUTH_SIGN_REFRESH, json.dumps(dict(ok, sub="user-2")).encode())
    for name, (mode, data) in s.items():
        write("auth", name, bytes([mode]) + data)


def tls_ext(t, body):
    return struct.pack(">HH", t, len(body)) + body


def tls_list16(values):
    return b"".join(struct.pack(">H", v) for v in values)


X25519_PUB = bytes.fromhex("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
ALL_SUITES = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)


def client_hello(versions=(0x0304, 0x0303), suites=ALL_SUITES, alpn=(b"http/1.1",),
                 legacy=0x0303, groups=(0x001D, 0x0017, 0x0018), share=0x001D):
    """A ClientHello handshake message with fixed random, session id and key share."""
    exts = tls_ext(0, struct.pack(">HBH", 12, 0, 9) + b"localhost")
    exts += tls_ext(10, struct.pack(">H", 2 * len(groups)) + tls_list16(groups))
    exts += tls_ext(11, b"\x01\x00")
    exts += tls_ext(35, b"")
    if alpn:
        lst = b"".join(bytes([len(a)]) + a for a in alpn)
        exts += tls_ext(16, struct.pack(">H", len(lst)) + lst)
    exts += tls_ext(23, b"")
    sigs = (0x0403, 0x0503, 0x0603, 0x0807, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601)
    exts += tls_ext(13, struct.pack(">H", 2 * len(sigs)) + tls_list16(sigs))
    if versions:
        exts += tls_ext(43, bytes([2 * len(versions)]) + tls_list16(versions))
        if 0x0304 in versions:
            exts += tls_ext(45, b"\x01\x01")
            ks = struct.pack(">HH", share, 32) + X25519_PUB
            exts += tls_ext(51, struct.pack(">H", len(ks)) + ks)
    body = (struct.pack(">H", legacy) + bytes(range(32)) + bytes([32]) + bytes(range(32, 64)) +
            struct.pack(">H", 2 * len(suites)) + tls_list16(suites) + b"\x01\x00" +
            struct.pack(">H", len(exts)) + exts)
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def tls_record(ct, payload, version=0x0301):
    return bytes([ct]) + struct.pack(">HH", version, len(payload)) + payload


def lcg_bytes(n, seed):
    """Deterministic noise."""
    out, x = bytearray(), seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(x >> 16 & 0xFF)
    return bytes(out)


def tlshs_seeds():
    ch = client_hello()
    s = {
        "tls13": tls_record(22, ch),
        "tls12-only": tls_record(22, client_hello(versions=None)),
        "tls13-only": tls_record(22, client_hello(versions=(0x0304,))),
        "alpn-h2-only": tls_record(22, client_hello(alpn=(b"h2",))),
        "no-alpn": tls_record(22, client_hello(alpn=())),
        "tls11-only": tls_record(22, client_hello(versions=None, legacy=0x0302,
                                                  suites=(0xC013, 0x002F))),
        "no-shared-suite": tls_record(22, client_hello(suites=(0x002F, 0x1304))),
        "hello-retry": tls_record(22, client_hello(groups=(0x001E, 0x001D), share=0x001E)),
        "p256-only": tls_record(22, client_hello(groups=(0x0017,), share=0x0017)),
        "two-records": tls_record(22, ch[:100]) + tls_record(22, ch[100:]),
        "then-ccs-and-noise": tls_record(22, ch) + tls_record(20, b"\x01", 0x0303) +
        tls_record(23, lcg_bytes(53, 7), 0x0303),
        "then-alert": tls_record(22, ch) + tls_record(21, b"\x02\x28", 0x0303),
        "truncated": tls_record(22, ch)[:150],
        "record-version-0303": tls_record(22, ch, 0x0303),
        "alert-first": tls_record(21, b"\x02\x28"),
        "empty-record": tls_record(22, b""),
        "huge-header": b"\x16\x03\x01\xff\xff" + b"\x01" * 64,
        "http-get": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "sslv2-hello": bytes.fromhex("802e0103010015000000100000390000380000350000330000320000"
                                     "2f0000070500800300800100800080") + bytes(16),
        "noise": lcg_bytes(300, 1),
        "noise-16-03": b"\x16\x03" + lcg_bytes(300, 2),
    }
    for name, data in s.items():
        for sp in (0x00, 0x03):
            write("tlshs", "%s-s%02x" % (name, sp), bytes([sp]) + data)


def tls_item(op, payload=b""):
    return bytes([op]) + struct.pack(">H", len(payload)) + payload


def tlsrec_seeds():
    s = {}
    for i, suite in enumerate(ALL_SUITES):
        t13 = suite >> 8 == 0x13
        s["%04x-data" % suite] = (i, tls_item(1, b"hello") + tls_item(1, b"x" * 30))
        s["%04x-two-records" % suite] = (i, tls_item(1, lcg_bytes(16385, 3)))
        s["%04x-close" % suite] = (i, tls_item(1, b"bye") +
                                   (tls_item(2, b"\x01\x00\x15") if t13 else tls_item(2, b"\x00")))
        s["%04x-bad-mac" % suite] = (i, tls_item(0, b"\x17\x03\x03\x00\x20" + bytes(32)))
    for i in (0, 2):  # TLS 1.3 only: KeyUpdate and odd inner plaintexts
        suite = ALL_SUITES[i]
        s["%04x-keyupdate" % suite] = (i, tls_item(1, b"a") + tls_item(3) + tls_item(1, b"b") +
                                       tls_item(7) + tls_item(1, b"c") + tls_item(3))
        s["%04x-inner-padding" % suite] = (i, tls_item(2, b"hi\x17" + bytes(40)))
        s["%04x-inner-zeros" % suite] = (i, tls_item(2, bytes(20)))
        s["%04x-inner-ccs" % suite] = (i, tls_item(2, b"\x01\x14"))
        s["%04x-inner-nst" % suite] = (i, tls_item(2, b"\x04\x00\x00\x00\x16"))
        s["%04x-inner-kup-bad" % suite] = (i, tls_item(2, b"\x18\x00\x00\x01\x02\x16"))
        s["%04x-inner-alert" % suite] = (i, tls_item(2, b"\x02\x28\x15"))
        s["%04x-inner-too-long" % suite] = (i, tls_item(2, b"a" * 16385 + b"\x17"))
    s["ccs"] = (3, tls_item(1, b"a") + tls_item(0, b"\x14\x03\x03\x00\x01\x01"))
    s["bad-version"] = (0, tls_item(0, b"\x17\x03\x01\x00\x20" + bytes(32)))
    s["oversize"] = (0, tls_item(0, b"\x17\x03\x03\x41\x01"))
    s["oversize-12"] = (3, tls_item(0, b"\x17\x03\x03\x48\x01"))
    s["short"] = (4, tls_item(0, b"\x17\x03\x03\x00\x05abcde"))
    s["truncated"] = (1, tls_item(1, b"z" * 100) + tls_item(0, b"\x17\x03\x03\x01\x00"))
    for name, (suite, data) in s.items():
        for sp in (0x00, 0x05):
            write("tlsrec", "%s-s%02x" % (name, sp), bytes([sp, suite]) + data)
    # tlsconn reads the same streams through a connection: one byte at a time too (0x10),
    # and records whose 5-byte header arrives in two reads.
    for name, (suite, data) in s.items():
        for sp in (0x00, 0x03, 0x10):
            write("tlsconn", "%s-s%02x" % (name, sp), bytes([sp, suite]) + data)


def framed_seeds():
    q = {
        "query-plain": b"channels=a,b&since=a:41,b:7&epoch=E",
        "query-epoch-first": b"epoch=0123456789abcdef&since=time:0",
        "query-colon-names": b"since=a:b:c:19,x:1&epoch=e_1-2",
        "query-max-seq": b"since=a:9999999999999999999&epoch=e",
        "query-eight": b"since=" + b",".join(b"c%d:%d" % (i, i) for i in range(8)) + b"&epoch=e",
        "query-no-epoch": b"since=a:1",
        "query-repeated": b"since=a:1&since=a:2&epoch=e",
        "query-twice": b"since=a:1,a:2&epoch=e",
        "query-bad-seq": b"since=a:1x&epoch=e",
    }
    for name, v in q.items():
        write("framed", name, b"\x00" + v)
    payloads = {
        "data-tick": b'{"time":1795755922337,"seq":1}',
        "data-escapes": b'quote " backslash \\ \t\n\r\x01\x1f\x7f',
        "data-utf8": "caf\u00e9 \u20ac \U0001F600 \u2028".encode(),
        "data-invalid-utf8": b"\xff\xfe\xc3",
        "data-empty": b"",
    }
    for name, v in payloads.items():
        write("framed", name, b"\x01" + v)
    envs = {
        "env-ok": b"\xffwsp1;0123456789abcdef;42;hello",
        "env-semicolon": b"\xffwsp1;e;7;a;b;c",
        "env-zero": b"\xffwsp1;e;0;x",
        "env-short": b"\xffwsp1;e",
        "env-raw": b"just a message",
    }
    for name, v in envs.items():
        write("framed", name, b"\x02" + v)
    write("framed", "hello-epoch", b"\x03" + b"0123456789abcdef")
    write("framed", "hello-bad-epoch", b"\x03" + b"a b")


if __name__ == "__main__":
    framed_seeds()
    channels_seeds()
    upgrade_seeds()
    frame_seeds()
    ipc_seeds()
    handover_seeds()
    utf8_seeds()
    admin_seeds()
    pmd_seeds()
    inflate_seeds()
    jwt_seeds()
    tlshs_seeds()
    tlsrec_seeds()
    auth_seeds()
