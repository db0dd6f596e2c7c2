#!/usr/bin/env python3
"""End to end for wspush-bench --recover (issue #17): the real server with --history-size,
1,000 wspush.v1 connections that drop after broadcast 2; 10 broadcasts while they are gone;
SIGHUP brings them back with since=time:2; one more broadcast live. With a history that holds
the 10, every connection recovers and the bench sees 1..13 once each (exit 0); with one that
holds 5, every resume says recovered:false, nothing is replayed and the bench FAILs (exit 1)
with broadcasts 3..12 missing. Asserts counts from the JSON and the exit status, never timings.
Usage: it_recover.py WSPUSH WSPUSH_BENCH covered|too_short"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

from benchutil import read_status, start_server, stop_all, wait_for

CONNS = 1000
DROP_AT = 2
MISSED = 10


def main():
    server_bin, bench_bin, case = sys.argv[1], sys.argv[2], sys.argv[3]
    size = {"covered": 64, "too_short": 5}[case]
    started = []
    tmp = tempfile.mkdtemp(prefix="wsp-it-recover-")
    try:
        # O_APPEND: the server's stderr shares this file's offset, which the seek(0) before
        # each read moves; without it a line written meanwhile lands over the log's start.
        srv_log = open(os.path.join(tmp, "server.log"), "a+")
        srv, p = start_server([server_bin, "--threads", "2", "--port", "0", "--interval", "0",
                               "--admin", "off", "--bind", "127.0.0.1", "--history-size",
                               str(size)], srv_log)
        started.append(srv)

        def logged():
            srv_log.seek(0)
            return len(re.findall(r"event=broadcast seq=\d+ ", srv_log.read()))

        status, report = os.path.join(tmp, "status"), os.path.join(tmp, "report.json")
        total = DROP_AT + MISSED + 1
        bench = subprocess.Popen([bench_bin, "--url", f"ws://127.0.0.1:{p}/", "--conns",
                                  str(CONNS), "--procs", "2", "--duration", "60", "--json",
                                  report, "--status-file", status, "--report-interval", "60",
                                  "--recover", str(DROP_AT), "--expect-broadcasts", str(total)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(bench)
        wait_for("every connection up", lambda: read_status(status).get("active") == CONNS, 30)
        for n in range(1, DROP_AT + 1):
            srv.send_signal(signal.SIGUSR1)
            wait_for(f"broadcast {n} everywhere",
                     lambda: read_status(status).get("messages", 0) >= n * CONNS, 30)
        wait_for("every connection dropped", lambda: read_status(status).get("dropped") == CONNS
                 and read_status(status).get("active") == 0, 30)
        for n in range(DROP_AT + 1, DROP_AT + MISSED + 1):  # nobody is there to get these
            srv.send_signal(signal.SIGUSR1)
            wait_for(f"broadcast {n} done", lambda: logged() >= n, 30)
        bench.send_signal(signal.SIGHUP)
        wait_for("every connection back", lambda: read_status(status).get("resumed") == CONNS
                 and read_status(status).get("active") == CONNS, 30)
        if case == "covered":
            wait_for("the replay", lambda: read_status(status).get("replayed") == CONNS * MISSED,
                     30)
        srv.send_signal(signal.SIGUSR1)
        wait_for("the live broadcast",
                 lambda: read_status(status).get("max_seq", 0) >= total and
                 read_status(status).get("messages", 0) >= (total if case == "covered"
                                                            else DROP_AT + 1) * CONNS, 30)
        bench.send_signal(signal.SIGINT)
        out, _ = bench.communicate(timeout=30)
        sys.stdout.write(out.decode(errors="replace"))
        with open(report) as f:
            r = json.load(f)
    finally:
        stop_all(started)
    rec = r["recovery"]
    assert rec["dropped"] == rec["resumed"] == CONNS, rec
    assert rec["hellos"] == 2 * CONNS, rec
    assert r["duplicates"] == 0 and r["errors"]["total"] == 0, (r["duplicates"], r["errors"])
    if case == "covered":
        assert bench.returncode == 0, f"bench exit {bench.returncode}"
        assert rec["recovered"] == CONNS and rec["not_recovered"] == 0, rec
        assert rec["replayed"] == CONNS * MISSED, rec
        assert r["ok"] and r["missing"] == 0 and r["delivered"] == CONNS * total, r["missing"]
    else:  # the history holds 8..12: resuming after 2 is refused: nothing is replayed
        assert bench.returncode == 1, f"bench exit {bench.returncode}: must FAIL"
        assert rec["recovered"] == 0 and rec["not_recovered"] == CONNS, rec
        assert rec["replayed"] == 0, rec
        assert not r["ok"] and r["missing_seqs"] == list(range(DROP_AT + 1, DROP_AT + MISSED + 1)), \
            r["missing_seqs"]
    print(f"it_recover {case}: ok")


if __name__ == "__main__":
    main()
