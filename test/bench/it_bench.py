#!/usr/bin/env python3
"""End to end: the real server on loopback, wspush-bench --conns 2000 --procs 2
--expect-broadcasts 3, three broadcasts once every connection is up. Asserts counts from the
JSON and the exit status, never timings.
Usage: it_bench.py WSPUSH WSPUSH_BENCH [BENCH_OPTION...]; WSP_IT_IO_URING=on|off picks the
server's send path; WSP_IT_TLS=1 runs it over wss:// (a CA made now by
test/common/mkcerts.sh), and then also checks the TLS handshake figures. With --deflate among
the bench's options every connection offers permessage-deflate and each broadcast is
bench/payloads/notifications-2k.json published through the admin API (a time tick is too
short to compress): every message must arrive compressed and inflate to the payload's
length."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchutil import read_status, start_server, stop_all, wait_for

CONNS = 2000
BCASTS = 3
PAYLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "../../bench/payloads/notifications-2k.json")


def publish(log, seq):
    """POSTs the 2 KiB payload, numbered seq and stamped now, to the admin API (port in log)."""
    log.seek(0)
    port = re.search(r"admin_port=(\d+)", log.read()).group(1)
    with open(PAYLOAD, "rb") as f:
        body = re.sub(rb'"time":\d+,"seq":\d+', b'"time":%d,"seq":%d' %
                      (int(time.time() * 1000), seq), f.read().rstrip(b"\n"), count=1)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/publish", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202, r.status
    return len(body)


def main():
    server_bin, bench_bin, bench_extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    uring = ["--io-uring", os.environ["WSP_IT_IO_URING"]] if os.environ.get("WSP_IT_IO_URING") \
        else []
    started = []
    tmp = tempfile.mkdtemp(prefix="wsp-it-bench-")
    tls = os.environ.get("WSP_IT_TLS") == "1"
    srv_tls, bench_tls, scheme = [], [], "ws"
    if tls:
        mkcerts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../common/mkcerts.sh")
        subprocess.run(["/bin/sh", mkcerts, tmp], check=True, timeout=60, capture_output=True)
        srv_tls = ["--tls-cert", os.path.join(tmp, "ec.pem"), "--tls-key",
                   os.path.join(tmp, "ec.key")]
        bench_tls, scheme = ["--tls-ca", os.path.join(tmp, "ca.pem")], "wss"
    try:
        # O_APPEND: the server's stderr shares this file's offset, which the seek(0) before
        # each read moves; without it a line written meanwhile lands over the log's start.
        srv_log = open(os.path.join(tmp, "server.log"), "a+")
        srv, p = start_server([server_bin, "--threads", "2", "--port", "0", "--interval", "0",
                               "--admin", "127.0.0.1:0", "--bind", "127.0.0.1"] + uring + srv_tls,
                              srv_log)
        started.append(srv)

        status, report = os.path.join(tmp, "status"), os.path.join(tmp, "report.json")
        bench = subprocess.Popen([bench_bin, "--url", f"{scheme}://127.0.0.1:{p}/", "--conns",
                                  str(CONNS), "--procs", "2", "--duration", "60", "--json",
                                  report, "--status-file", status, "--report-interval", "60",
                                  "--expect-broadcasts", str(BCASTS)]
                                 + bench_tls + bench_extra,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(bench)
        # A hang bound, not a speed check: 2,000 TLS handshakes under ASan, beside other
        # tests on two cores, took 40 s.
        st = wait_for("every connection up",
                      lambda: (s := read_status(status)).get("ramp_done") == 1 and s,
                      100 if tls else 30)
        assert int(st["active"]) == CONNS, st
        # A duplicate of one broadcast would arrive before the next (TCP keeps order): each
        # broadcast is the marker for the one before it.
        deflate = "--deflate" in bench_extra
        size = 0
        for n in range(1, BCASTS + 1):
            if deflate:
                size = publish(srv_log, n)
            else:
                srv.send_signal(signal.SIGUSR1)
            wait_for(f"broadcast {n} everywhere",
                     lambda: read_status(status).get("messages", 0) >= n * CONNS, 30)
        bench.send_signal(signal.SIGINT)
        out, _ = bench.communicate(timeout=30)
        sys.stdout.write(out.decode(errors="replace"))
        assert bench.returncode == 0, f"bench exit {bench.returncode}"
        with open(report) as f:
            r = json.load(f)
    finally:
        stop_all(started)

    # every field a consumer of the JSON relies on
    for k in ("tool", "version", "config", "start_epoch_ms", "elapsed_s", "stopped_by", "active",
              "setups", "retries", "ramp", "errors", "messages", "latency_ms", "message_rate",
              "setup_rate", "bench_cpu", "broadcasts", "latency_cdf", "series", "expected",
              "delivered", "missing", "duplicates", "unexpected", "missing_seqs", "ok",
              "expect_broadcasts", "seq_first", "seq_last", "dead_worker_conns"):
        assert k in r, f"JSON lacks {k}"
    for k in ("url", "conns", "duration_s", "procs", "sources", "per_source", "concurrency",
              "rate", "report_interval_s", "handshake_timeout_s", "retries"):
        assert k in r["config"], f"config lacks {k}"
    for k in ("count", "min", "max", "mean", "stddev", "p50", "p75", "p95", "p98", "p99", "p999"):
        assert k in r["latency_ms"], f"latency_ms lacks {k}"
    for m in ("message_rate", "setup_rate"):
        for k in ("count", "mean_rate", "m1_rate", "m5_rate", "m15_rate"):
            assert k in r[m], f"{m} lacks {k}"
    for k in ("total", "connect", "handshake_status", "handshake_invalid", "closed", "protocol",
              "timeout", "bad_message", "worker_died", "closed_codes", "handshake_statuses"):
        assert k in r["errors"], f"errors lacks {k}"
    for k in ("target", "done", "connected", "seconds", "rate_per_s"):
        assert k in r["ramp"], f"ramp lacks {k}"

    assert r["config"]["conns"] == CONNS and r["config"]["procs"] == 2
    assert r["stopped_by"] == "signal"
    assert r["errors"]["total"] == 0, r["errors"]
    assert r["active"] == CONNS and r["setups"] == CONNS, (r["active"], r["setups"])
    assert r["ramp"]["done"] is True and r["ramp"]["connected"] == CONNS
    n = BCASTS * CONNS
    assert r["messages"]["count"] == n and r["messages"]["max_seq"] == BCASTS, r["messages"]
    assert r["latency_ms"]["count"] == n
    assert r["message_rate"]["count"] == n and r["setup_rate"]["count"] == CONNS
    # every connection received every broadcast exactly once, and the bench says so
    assert (r["expected"], r["delivered"], r["missing"], r["duplicates"]) == (n, n, 0, 0), r
    assert r["unexpected"] == 0 and r["missing_seqs"] == [] and r["ok"] is True
    assert r["expect_broadcasts"] == BCASTS and r["dead_worker_conns"] == 0
    assert "wspush-bench: ok: " in out.decode(), out.decode()[-300:]
    b = {x["seq"]: x for x in r["broadcasts"]}
    assert sorted(b) == list(range(1, BCASTS + 1)), r["broadcasts"]
    for seq in b:
        assert b[seq]["got"] == CONNS, b[seq]
        assert b[seq]["missing"] == 0 and b[seq]["duplicates"] == 0, b[seq]
        assert b[seq]["last_ms"] >= b[seq]["first_ms"], b[seq]
    assert abs(r["latency_cdf"][-1][1] - 1.0) < 1e-9
    assert len(r["series"]) > 0
    t = r["tls"]
    if tls:
        # Each of the 2 processes starts 256 handshakes before any ticket can have arrived;
        # every later one offers the latest ticket and resumes.
        assert r["config"]["tls"] is True and r["config"]["tls_verify"] is True, r["config"]
        assert t["full"] + t["resumed"] == CONNS and t["handshake_ms"]["count"] == CONNS, t
        assert 1 <= t["full"] <= 2 * 256 and t["resumed"] >= CONNS - 2 * 256, t
        assert 0 < t["handshake_ms"]["min"] <= t["handshake_ms"]["p50"] <= t["handshake_ms"]["max"]
        assert "TLS handshakes (ms)" in out.decode()
    else:
        assert t["full"] == t["resumed"] == t["handshake_ms"]["count"] == 0, t
    z = r["deflate"]
    if deflate:
        assert r["config"]["deflate"] is True
        assert z["offered"] == CONNS and z["accepted"] == CONNS, z
        assert z["compressed_messages"] == n and z["uncompressed_messages"] == 0, z
        assert z["inflated_bytes"] == n * size, (z, size)
        assert 0 < z["compressed_bytes"] < z["inflated_bytes"] / 2, z
        print(f"ok: deflate: {z['compressed_bytes']} bytes received for {z['inflated_bytes']}")
    else:
        assert z is None and r["config"]["deflate"] is False, z
    print(f"ok: {CONNS} connections, {BCASTS} broadcasts, each received exactly once, 0 errors")


if __name__ == "__main__":
    main()
