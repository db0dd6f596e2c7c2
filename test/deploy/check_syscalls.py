#!/usr/bin/python3
"""Every system call wspush makes is allowed by the SystemCallFilter= of
deploy/systemd/wspush.service.

systemd is not PID 1 where the tests run, so the unit cannot simply be started. Instead this
runs the real server under strace -f through the paths a service goes through: --procs 2
(supervisor, socketpair, execve of /proc/self/exe, the metrics memfd), Redis (name lookup,
connect, SUBSCRIBE, a PUBLISH), the admin API (POST /publish, GET /metrics), clients
connecting and upgrading (wspush-bench), SIGUSR1 broadcasts, SIGTERM and the drain. It expands the unit's filter with `systemd-analyze syscall-filter` and fails on
any call outside it: under the unit, such a call would fail with EPERM
(SystemCallErrorNumber=).

  check_syscalls.py WSPUSH UNIT_FILE WSPUSH_BENCH    a missing tool (strace, systemd-analyze,
                                                     redis-server) fails the test
"""
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402


def expand(group, seen=None):
    """The system call names of a @group (or a plain name), recursively."""
    seen = seen if seen is not None else set()
    if not group.startswith("@"):
        return {group}
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                         text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:  # the first line repeats the group's name
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names |= expand(line.split()[0], seen)
    return names


def allowed_by(unit):
    """Applies the unit's SystemCallFilter= lines in order, as systemd does: the first line
    decides allow-list or deny-list; later '~' lines remove, others add."""
    allow, deny, mode = set(), set(), None
    with open(unit) as f:
        for line in f:
            m = re.match(r"^SystemCallFilter=(~?)(.*)$", line.strip())
            if not m:
                continue
            names = set()
            for item in m.group(2).split():
                names |= expand(item.split(":")[0])
            neg = m.group(1) == "~"
            if mode is None:
                mode = "deny" if neg else "allow"
            if mode == "allow":
                allow = allow - names if neg else allow | names
            else:
                deny = deny | names if neg else deny - names
    if mode is None:
        raise RuntimeError(f"{unit} has no SystemCallFilter=")
    return mode, allow, deny


def bench_active(path):
    """The active= count of wspush-bench's --status-file (0 before it writes one)."""
    try:
        with open(path) as f:
            return int(dict(line.strip().split("=", 1) for line in f if "=" in line)
                       .get("active", 0))
    except (OSError, ValueError):
        return 0


def trace_run(ck, server, bench, trace):
    """The server under strace -f through every path a service takes."""
    conns = 200
    status = trace + ".status"
    # LeakSanitizer stops the world with ptrace, which fails under strace: leaks are
    # checked by every other test of a sanitizer build, not by this one.
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    with wt.Redis() as redis, wt.Server(
            server, "--channel", "syscalls", "--drain-seconds", "2", threads=2, procs=2,
            redis=f"redis://localhost:{redis.port}", env=env,
            prefix=["timeout", "60", wt.need("strace"), "-f", "-qq", "-o", trace]) as srv:
        sup = int(srv.wait_re(r"supervisor pid=(\d+) event=supervisor_listening").group(1))
        try:
            ck.check("both workers subscribed", redis.wait_subscribers("syscalls", 2))
            # The clients are still connected at SIGTERM, so the drain (close 1001, shutdown,
            # lingering reads) is traced too; the bench then counts those closes.
            b = subprocess.Popen(["timeout", "30", bench, "--url", srv.url(), "--conns",
                                  str(conns), "--duration", "8", "--quiet", "--status-file",
                                  status], stdout=subprocess.DEVNULL,
                                 preexec_fn=wt.die_with_parent)
            ck.check(f"{conns} clients connected", wt.poll(
                lambda: bench_active(status) == conns, 15, 0.1), str(bench_active(status)))
            os.kill(sup, signal.SIGUSR1)
            ck.check("a PUBLISH on Redis reached both workers",
                     redis.publish("syscalls", '{"time":0,"seq":1000}') == 2)
            ck.check("admin POST /publish", srv.publish(b"syscalls")[0] == 202)
            ck.check("admin GET /metrics", srv.http("GET", "/metrics")[0] == 200)
            ck.check("both workers broadcast all three (SIGUSR1, Redis, admin via Redis)",
                     all(wt.poll(lambda: srv.count(f"worker={w} ", "event=broadcast ") >= 3, 10)
                         for w in (0, 1)))
            os.kill(sup, signal.SIGTERM)
            ck.check("wspush (under strace) exited 0", srv.wait(40) == 0,
                     str(srv.proc.returncode))
            b.wait(timeout=40)
        finally:
            if srv.alive():
                os.kill(sup, signal.SIGKILL)  # strace does not pass a kill of its own on


def run(ck, server, unit, bench):
    for tool in ("systemd-analyze", "redis-server"):
        wt.need(tool, "systemd" if tool == "systemd-analyze" else None)
    mode, allow, deny = allowed_by(unit)
    with tempfile.TemporaryDirectory(prefix="wsp-syscalls-") as tmp:
        trace = os.path.join(tmp, "trace")
        trace_run(ck, server, bench, trace)
        used = {}
        with open(trace, errors="replace") as f:
            for line in f:
                m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z_][a-z0-9_]*)(?:\(| resumed>)", line)
                if m:
                    used[m.group(1)] = used.get(m.group(1), 0) + 1
    ck.check("strace followed the server (20 or more distinct calls)", len(used) >= 20,
             f"only {len(used)}")
    print(f"traced {len(used)} distinct system calls: {' '.join(sorted(used))}")
    bad = sorted(n for n in used if (n not in allow if mode == "allow" else n in deny))
    ck.check(f"every call allowed by {os.path.basename(unit)}'s SystemCallFilter=", not bad,
             "outside it: " + " ".join(bad))


if __name__ == "__main__":
    sys.exit(wt.main(run, timeout=120))
