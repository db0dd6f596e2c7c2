#!/usr/bin/env python3
"""What --sndbuf does (#20 item 2), measured inside a network namespace of its own (run by
bench/slow-consumers.sh, which creates it): for each --sndbuf value asked for,

  memory   N clients that never read (4 KiB receive buffers, so that the figure is the
           server's side) while broadcasts of SIZE bytes go out one at a time, until
           --max-pending has cut every one of them, or the host's TCP memory reaches the
           guard (tcp_mem's pressure threshold, so that a run never starves the host): TCP
           memory (/proc/net/sockstat, the whole host), the server's send queues (ss -tm, the
           sum of wmem_queued over its sockets) and Slab, after every broadcast;
  fast     F clients that read everything (wspush-bench): one 64 KiB message to idle readers
           (it must leave in one pass: no short send), then SEQ more, each once the last
           reached every reader: the last receive per message (is anything slowed?), short
           sends, clients cut as slow consumers (must be none). ROUNDS rounds, the values
           interleaved (A, B, A, B, ...);
  burst    the same readers, the 64 KiB message, then K more back to back, for each K of
           --bursts: delivered to all, or how many readers --max-pending cut (the burst a
           socket's buffer plus --max-pending absorbs while its reader catches up).

Writes OUT/summary.json (with provenance) and prints a table.
usage: ip netns exec NS bench/slow-consumers.py --server BIN --bench BIN --out DIR
           --guard-kib KIB [--sndbuf "0 65536"] [-n 10000] [--small 100] [--size 16384]
           [--fast 1000] [--seq 10] [--bursts "2 4 8 16"] [--rounds 3]
           [--phases memory,fast,burst]
"""
import argparse
import json
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "../test/lib"))
import provenance  # noqa: E402
import wsptest as wt  # noqa: E402

MAX_PUBLISH = 65536  # the largest message the server accepts: a 65,546-byte frame


def tcp_mem_pages():
    """The host's TCP memory in pages (shared by every namespace)."""
    with open("/proc/net/sockstat") as f:
        return int(re.search(r"^TCP:.* mem (\d+)", f.read(), re.M).group(1))


def slab_kib():
    with open("/proc/meminfo") as f:
        return int(re.search(r"^Slab:\s+(\d+)", f.read(), re.M).group(1))


def skmem(port):
    """(sockets, sum of wmem_queued, sum of rmem) over the established sockets of port on
    the server side (sport) and on the clients' side (dport)."""
    out = {}
    for side in ("sport", "dport"):
        text = subprocess.run(["ss", "-tmnH", "state", "established", f"( {side} = :{port} )"],
                              capture_output=True, text=True, timeout=60).stdout
        ws = [int(m.group(1)) for m in re.finditer(r"skmem:\([^)]*\bw(\d+)", text)]
        rs = [int(m.group(1)) for m in re.finditer(r"skmem:\(r(\d+)", text)]
        out[side] = (len(ws), sum(ws), sum(rs))
    return out


def sample(port):
    sk = skmem(port)
    return {"tcp_mem_kib": tcp_mem_pages() * 4, "slab_kib": slab_kib(),
            "server_socks": sk["sport"][0], "server_wmem_queued": sk["sport"][1],
            "client_rmem": sk["dport"][2]}


def payload(seq, size):
    """{"time":<now ms>,"seq":<seq>,"pad":"x..."} of exactly size bytes: what wspush-bench
    reads time and seq from."""
    head = b'{"time":%d,"seq":%d,"pad":"' % (int(time.time() * 1000), seq)
    return head + b"x" * (size - len(head) - 2) + b'"}'


def nonreaders(port, n, rcvbuf, batch=500):
    """n upgraded clients that will never read again; their sockets."""
    socks = []
    req = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    while len(socks) < n:
        sel, heads = selectors.DefaultSelector(), {}
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before the window
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
            heads[s] = b""
        deadline = time.time() + 30
        while heads and time.time() < deadline:
            for key, ev in sel.select(1):
                s = key.fileobj
                if ev & selectors.EVENT_WRITE:
                    s.send(req)  # ~150 bytes into an empty socket: whole
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                heads[s] += s.recv(4096)
                if b"\r\n\r\n" in heads[s]:
                    if not heads[s].startswith(b"HTTP/1.1 101 "):
                        raise RuntimeError(f"upgrade refused: {heads[s][:40]!r}")
                    sel.unregister(s)
                    del heads[s]
                    socks.append(s)
        sel.close()
        if heads:
            raise RuntimeError(f"{len(heads)} upgrades did not complete in 30 s")
    return socks


def memory_run(args, sndbuf, n):
    """N non-readers and broadcasts of args.size bytes until all are cut or the guard."""
    guard_kib = args.guard_kib
    srv = wt.Server(args.server, "--sndbuf", str(sndbuf), threads=2)
    try:
        base = sample(srv.port)
        socks = nonreaders(srv.port, n, args.rcvbuf)
        if not wt.poll(lambda: srv.metric("wspush_connections{") == n, 30, 0.2):
            raise RuntimeError("the server does not count every client")
        connected = sample(srv.port)
        series, stopped_by, seq, t0 = [], "max_broadcasts", 0, time.time()
        while seq < args.max_broadcasts:
            seq += 1
            st, _ = srv.publish(payload(seq, args.size))
            if st != 202 or not srv.wait_log(f"event=broadcast seq={seq} ", timeout=120):
                raise RuntimeError(f"broadcast {seq} failed: {st}")
            s = sample(srv.port)
            s["broadcast"], s["cut"] = seq, int(srv.metric("wspush_slow_consumer_closes_total"))
            series.append(s)
            if s["cut"] >= n:
                stopped_by = "all_cut"
                break
            if s["tcp_mem_kib"] >= guard_kib:
                stopped_by = "guard"
                break
        peak = max(series, key=lambda s: s["tcp_mem_kib"])
        for s in socks:
            s.close()
        return {"sndbuf": sndbuf, "nonreaders": n, "message_bytes": args.size,
                "stopped_by": stopped_by, "guard_tcp_mem_kib": guard_kib,
                "broadcasts": seq, "seconds": round(time.time() - t0, 1),
                "before": base, "connected": connected, "peak": peak,
                "peak_tcp_mem_per_conn_kib": round(
                    (peak["tcp_mem_kib"] - connected["tcp_mem_kib"]) / n, 1),
                "peak_server_queued_per_conn_kib": round(
                    (peak["server_wmem_queued"] - connected["server_wmem_queued"]) / n / 1024, 1),
                "sndbuf_effective": int(re.search(r"sndbuf_effective=(-?\d+)",
                                                  srv.log()).group(1)),
                "series": series}
    finally:
        srv.stop()
        srv.close()


def bench_status(path):
    try:
        with open(path) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}


def fast_run(args, sndbuf, out, burst):
    """F readers (wspush-bench): one 64 KiB message to them idle, then either (burst 0) SEQ
    more, each published once the previous one reached every reader, or `burst` more back to
    back. Returns what happened to them."""
    srv = wt.Server(args.server, "--sndbuf", str(sndbuf), threads=2)
    tag = f"{out}/fast-{sndbuf}-{burst}-{time.time():.0f}"
    more = burst or args.seq
    bench = subprocess.Popen(
        [args.bench, "--url", f"ws://127.0.0.1:{srv.port}/", "--conns", str(args.fast),
         "--duration", "300", "--expect-broadcasts", str(1 + more), "--json", tag + ".json",
         "--status-file", tag + ".status", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=wt.die_with_parent)
    try:
        def messages():
            st = bench_status(tag + ".status")
            return int(st.get("messages", 0)) if st.get("ramp_done") == "1" else -1

        def delivered(want, timeout):
            """Waits until the readers hold `want` messages; False early once some reader
            was cut (it will never get them) and the count stops moving."""
            last = [None, 0.0]

            def done():
                m = messages()
                if m >= want:
                    return True
                if m != last[0]:
                    last[:] = [m, time.time()]
                cut = srv.metric("wspush_slow_consumer_closes_total") > 0
                return "cut" if cut and time.time() - last[1] > 2 else False
            return wt.poll(done, timeout, 0.05) is True

        if not wt.poll(lambda: messages() == 0 and bench_status(tag + ".status").get(
                "active") == str(args.fast), 60, 0.1):
            raise RuntimeError(f"ramp incomplete: {bench_status(tag + '.status')}")
        short0 = srv.metric("wspush_uring_short_sends_total")
        srv.publish(payload(1, MAX_PUBLISH))
        if not delivered(args.fast, 60):
            raise RuntimeError("the 64 KiB message did not reach every reader")
        one_pass_short = srv.metric("wspush_uring_short_sends_total") - short0
        ok = True
        for seq in range(2, 2 + more):
            st, _ = srv.publish(payload(seq, MAX_PUBLISH))
            if st != 202:
                raise RuntimeError(f"publish {seq}: {st}")
            if not burst and not delivered(args.fast * seq, 60):
                ok = False
                break
        ok = ok and delivered(args.fast * (1 + more), 120)
        short = srv.metric("wspush_uring_short_sends_total") - short0 - one_pass_short
        cut = srv.metric("wspush_slow_consumer_closes_total")
        bench.send_signal(signal.SIGINT)
        bench.wait(60)
        with open(tag + ".json") as f:
            rep = json.load(f)
        rows = {b["seq"]: b for b in rep["broadcasts"]}
        res = {"sndbuf": sndbuf, "readers": args.fast, "one_pass_short_sends": int(one_pass_short),
               "one_pass_last_ms": rows.get(1, {}).get("last_ms"),
               "delivered": bool(ok), "short_sends": int(short), "slow_consumer_closes": int(cut),
               "bench_ok": rep.get("ok"), "missing": rep.get("missing"),
               "errors": rep["errors"]["total"]}
        later = [rows[k] for k in range(2, 2 + more) if k in rows]
        if burst:
            res["burst"] = burst
            res["burst_ms"] = (max(b["time_ms"] + b["last_ms"] for b in later) -
                               min(b["time_ms"] for b in later)) if ok else None
        else:
            res["sequential"] = more
            res["last_ms"] = [b["last_ms"] for b in later]
            res["median_last_ms"] = statistics.median(res["last_ms"]) if later else None
        return res
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
        srv.stop()
        srv.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sndbuf", default="0 65536")
    ap.add_argument("-n", type=int, default=10000, help="non-readers in the big memory run")
    ap.add_argument("--small", type=int, default=100, help="non-readers in the small one")
    ap.add_argument("--size", type=int, default=16384, help="message bytes, memory runs")
    ap.add_argument("--rcvbuf", type=int, default=4096, help="non-readers' SO_RCVBUF")
    ap.add_argument("--max-broadcasts", type=int, default=400)
    ap.add_argument("--guard-kib", type=int, required=True,
                    help="stop a memory run at this much TCP memory (the host's tcp_mem[1])")
    ap.add_argument("--fast", type=int, default=1000)
    ap.add_argument("--seq", type=int, default=10, help="64 KiB messages, one at a time")
    ap.add_argument("--bursts", default="2 4 8 16", help="back-to-back 64 KiB messages")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phases", default="memory,fast,burst")
    ap.add_argument("--command", default=" ".join(sys.argv))
    args = ap.parse_args()
    wt.raise_nofile()
    values = [int(v) for v in args.sndbuf.split()]
    res = {"provenance": provenance.provenance(args.command, [args.server, args.bench]),
           "config": {k: v for k, v in vars(args).items() if k != "command"},
           "memory": [], "fast": [], "bursts": []}
    for n in sorted({args.small, args.n}) if "memory" in args.phases else ():
        for v in values:
            print(f"memory: --sndbuf {v}, {n} non-readers", flush=True)
            res["memory"].append(memory_run(args, v, n))
    for r in range(args.rounds if "fast" in args.phases else 0):
        for v in values:
            print(f"fast: round {r + 1}, --sndbuf {v}", flush=True)
            res["fast"].append(fast_run(args, v, args.out, 0))
    for k in [int(b) for b in args.bursts.split()] if "burst" in args.phases else ():
        for v in values:
            print(f"burst of {k}: --sndbuf {v}", flush=True)
            res["bursts"].append(fast_run(args, v, args.out, k))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(f"{'sndbuf':>8} {'non-readers':>11} {'stopped':>10} {'bcasts':>6} "
          f"{'TCP mem peak MiB':>16} {'per conn KiB':>12} {'server queue/conn KiB':>21}")
    for m in res["memory"]:
        print(f"{m['sndbuf']:>8} {m['nonreaders']:>11} {m['stopped_by']:>10} {m['broadcasts']:>6} "
              f"{(m['peak']['tcp_mem_kib'] - m['connected']['tcp_mem_kib']) / 1024:>16.1f} "
              f"{m['peak_tcp_mem_per_conn_kib']:>12} {m['peak_server_queued_per_conn_kib']:>21}")
    for v in values:
        runs = [f for f in res["fast"] if f["sndbuf"] == v]
        meds = [f["median_last_ms"] for f in runs]
        print(f"sndbuf {v}: 64 KiB to {args.fast} idle readers, short sends "
              f"{[f['one_pass_short_sends'] for f in runs]}; {args.seq} more one at a time: "
              f"median last receive ms by round {meds}, all delivered "
              f"{[f['delivered'] for f in runs]}, cut {[f['slow_consumer_closes'] for f in runs]}")
        for b in (b for b in res["bursts"] if b["sndbuf"] == v):
            print(f"sndbuf {v}: burst of {b['burst']}: delivered {b['delivered']} in "
                  f"{b['burst_ms']} ms, short sends {b['short_sends']}, cut "
                  f"{b['slow_consumer_closes']}")


if __name__ == "__main__":
    main()
