#!/usr/bin/env python3
"""The bench's scripts, run for real at small N against the binaries under test:
  run_local       bench/run-local.sh -n 200 -b 2 --plot passes: the summary says every
                  connection got both broadcasts once, and the plots are PNGs
  run_local_fail  the same against a server that drops broadcast 2 (badserver.py serve): exit 1,
                  FAIL naming seq 2, the summary counts 200 missing
  run_local_publish  run-local.sh -n 200 -b 2 --prefork -s 2 --publish (the 2 KiB payload)
                  --bench-args --deflate: every message arrives compressed, the server's
                  /metrics agree, and the summary carries both
  plot            bench/plot.sh on a report of a direct bench run, and on one without messages
  demo            `make demo` with DEMO_CONNS=200 DEMO_BROADCASTS=2 (no release build)
run-local.sh needs root (ip netns) and gnuplot, which `make test` provides: without them the
test fails, naming what is missing. Each run-local.sh gets a namespace of its own name.
Usage: scripts_test.py SRC_DIR WSPUSH WSPUSH_BENCH CASE"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

from benchutil import read_status, start_server, wait_for

BOUND = 50  # seconds for one script; ctest's TIMEOUT is 60


def run(cmd, **kw):
    """Runs a script with a bound; on the bound, SIGTERM lets it clean up (its trap)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, **kw)
    try:
        out, _ = p.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        sys.stdout.write(out.decode(errors="replace"))
        raise AssertionError(f"{cmd[0]} still running after {BOUND} s")
    text = out.decode(errors="replace")
    sys.stdout.write(text)
    return p.returncode, text


def netns_name(case):
    return f"wsp_bench_t_{case}_{os.getpid()}"


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout


def assert_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert os.path.getsize(path) > 2000, f"{path}: {os.path.getsize(path)} bytes"


def check_summary(out, conns, bcasts, text):
    """A passing run-local.sh: its summary and the namespace gone."""
    with open(os.path.join(out, "summary.json")) as f:
        j = json.load(f)
    n = conns * bcasts
    assert j["ok"] is True and j["fail"] is None, j
    assert (j["active"], j["broadcasts"], j["expected"], j["delivered"]) == (conns, bcasts, n, n), j
    assert (j["missing"], j["duplicates"], j["unexpected"], j["errors"]) == (0, 0, 0, 0), j
    assert j["missing_seqs"] == [] and j["bench_exit"] == 0 and "retries" in j, j
    assert re.search(r"^result +ok: every connection got all %d broadcasts once$" % bcasts, text,
                     re.M), text[-800:]
    assert "wspush-bench: ok: " in text


def case_run_local(src, server, bench, tmp):
    out, ns = os.path.join(tmp, "run"), netns_name("rl")
    rc, text = run([f"{src}/bench/run-local.sh", "-n", "200", "-b", "2", "-g", "0.2", "--plot",
                    "--server", server, "--bench", bench, "-o", out, "--netns", ns])
    assert rc == 0, f"run-local.sh exit {rc}"
    check_summary(out, 200, 2, text)
    for name in ("report-latency-cdf.png", "report-ramp.png"):
        assert_png(os.path.join(out, name))
    assert ns not in namespaces(), f"{ns} left behind"


def case_run_local_fail(src, server, bench, tmp):
    out, ns = os.path.join(tmp, "run"), netns_name("rlf")
    drop = f"{sys.executable} {src}/test/bench/badserver.py serve --drop 2"
    rc, text = run([f"{src}/bench/run-local.sh", "-n", "200", "-b", "3", "-g", "0.2",
                    "--wait", "2", "--server-cmd", drop, "--bench", bench, "-o", out,
                    "--netns", ns])
    assert rc == 1, f"run-local.sh exit {rc}, want 1"
    assert re.search(r"^run-local: FAIL: .*200 missing \(seqs 2\)", text, re.M), text[-800:]
    assert "wspush-bench: FAIL: 200 missing (seqs 2)" in text, text[-800:]
    with open(os.path.join(out, "summary.json")) as f:
        j = json.load(f)
    assert j["ok"] is False and j["bench_exit"] == 1, j
    assert (j["expected"], j["delivered"], j["missing"], j["missing_seqs"]) == (600, 400, 200, [2])
    assert ns not in namespaces(), f"{ns} left behind"


def case_run_local_publish(src, server, bench, tmp):
    out, ns = os.path.join(tmp, "run"), netns_name("rlp")
    payload = f"{src}/bench/payloads/notifications-2k.json"
    rc, text = run([f"{src}/bench/run-local.sh", "-n", "200", "-b", "2", "-g", "0.2", "-s", "2",
                    "--prefork", "--publish", payload, "--bench-args", "--deflate", "--server",
                    server, "--bench", bench, "-o", out, "--netns", ns])
    assert rc == 0, f"run-local.sh exit {rc}"
    check_summary(out, 200, 2, text)
    with open(os.path.join(out, "summary.json")) as f:
        j = json.load(f)
    m, z = j["server_metrics"], j["deflate"]
    size = os.path.getsize(payload)
    assert j["publish"] == payload, j["publish"]
    assert m["wspush_messages_written_total"] == 400, m
    assert m["wspush_deflate_messages_written_total"] == 400, m
    assert m["wspush_deflate_broadcasts_total"] == 4, m  # once per broadcast and process
    assert m["wspush_deflate_input_bytes_total"] == 4 * size, m
    assert m["wspush_bytes_written_total"] < 400 * size / 2, m
    assert z["accepted"] == 200 and z["compressed_messages"] == 400, z
    assert z["inflated_bytes"] == 400 * size, z
    assert re.search(r"^server wrote +\d+\.\d bytes per message \(400 of 400 compressed\)", text,
                     re.M), text[-800:]
    assert ns not in namespaces(), f"{ns} left behind"


def bench_report(server, bench, tmp):
    """A report.json from the real server and bench on loopback: 100 connections, 1 broadcast."""
    log, status, report = (os.path.join(tmp, x) for x in ("server.log", "status", "r.json"))
    started = []
    with open(log, "w+") as lf:
        try:
            srv, p = start_server([server, "--port", "0", "--bind", "127.0.0.1", "--interval",
                                   "0", "--admin", "off", "--threads", "1"], lf)
            started.append(srv)
            b = subprocess.Popen([bench, "--url", f"ws://127.0.0.1:{p}/", "--conns", "100",
                                  "--duration", "30", "--json", report, "--status-file", status,
                                  "--expect-broadcasts", "1", "--quiet"],
                                 stdout=subprocess.DEVNULL)
            started.append(b)
            wait_for("the ramp", lambda: read_status(status).get("ramp_done") == 1, 20)
            srv.send_signal(signal.SIGUSR1)
            wait_for("the broadcast", lambda: read_status(status).get("messages") == 100, 20)
            b.send_signal(signal.SIGINT)
            assert b.wait(timeout=20) == 0, "the bench failed"
        finally:
            for proc in reversed(started):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=10)
    return report


def case_plot(src, server, bench, tmp):
    report = bench_report(server, bench, tmp)
    plot = f"{src}/bench/plot.sh"
    rc, text = run([plot, report, os.path.join(tmp, "img"), "small"])
    assert rc == 0, f"plot.sh exit {rc}"
    for name in ("small-latency-cdf.png", "small-ramp.png"):
        path = os.path.join(tmp, "img", name)
        assert path in text.split(), text
        assert_png(path)
    # A run without messages still plots (the CDF says so).
    with open(report) as f:
        r = json.load(f)
    r["latency_cdf"], r["messages"]["count"] = [], 0
    empty = os.path.join(tmp, "empty.json")
    with open(empty, "w") as f:
        json.dump(r, f)
    rc, _ = run([plot, empty, os.path.join(tmp, "img")])
    assert rc == 0, f"plot.sh exit {rc} without messages"
    assert_png(os.path.join(tmp, "img", "empty-latency-cdf.png"))
    rc, _ = run([plot, os.path.join(tmp, "no-such.json")])
    assert rc == 2, f"plot.sh exit {rc} for a missing report, want 2"


def case_demo(src, server, bench, tmp):
    out, ns = os.path.join(tmp, "demo"), netns_name("demo")
    rc, text = run(["make", "--no-print-directory", "-C", src, "demo", "DEMO_BUILD=",
                    "DEMO_CONNS=200", "DEMO_BROADCASTS=2", f"DEMO_SERVER={server}",
                    f"DEMO_BENCH={bench}", f"DEMO_ARGS=-o {out} --netns {ns}"])
    assert rc == 0, f"make demo exit {rc}"
    check_summary(out, 200, 2, text)
    assert ns not in namespaces(), f"{ns} left behind"


def main():
    src, server, bench, case = sys.argv[1:5]
    if case != "plot":
        assert os.geteuid() == 0, "run-local.sh needs root (ip netns): run the tests as root"
    with tempfile.TemporaryDirectory(prefix=f"wsp-script-{case}-") as tmp:
        globals()[f"case_{case}"](src, server, bench, tmp)
    print(f"ok: {case}")


if __name__ == "__main__":
    main()
