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

  check_syscalls.py UNIT_FILE WSPUSH WSPUSH_BENCH    exit 77 = strace, systemd-analyze or
                                                     redis-server missing
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


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
        sys.exit(f"FAIL: {unit} has no SystemCallFilter=")
    return mode, allow, deny


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, pattern, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        time.sleep(0.1)
    with open(path, errors="replace") as f:
        print(f.read())
    sys.exit(f"FAIL: no '{pattern}' in the server's log within {seconds} s")


def main():
    unit, server, bench = sys.argv[1:4]
    for tool in ("strace", "systemd-analyze", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            skip(f"no {tool}")
    mode, allow, deny = allowed_by(unit)
    tmp = tempfile.mkdtemp(prefix="wsp-syscalls-")
    log, trace = os.path.join(tmp, "log"), os.path.join(tmp, "trace")
    started = []
    try:
        rport = free_port()
        redis = subprocess.Popen(
            ["timeout", "60", "redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        started.append(redis)
        # LeakSanitizer stops the world with ptrace, which fails under strace: leaks are
        # checked by every other test of a sanitizer build, not by this one.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        with open(log, "w") as lf:
            srv = subprocess.Popen(
                ["timeout", "60", "strace", "-f", "-qq", "-o", trace, server, "--procs", "2",
                 "--threads", "2", "--bind", "127.0.0.1", "--port", "0", "--interval", "0",
                 "--redis", f"redis://localhost:{rport}", "--channel", "syscalls",
                 "--admin", "127.0.0.1:0", "--drain-seconds", "2"],
                stderr=lf, stdout=subprocess.DEVNULL, env=env)
        started.append(srv)
        m = wait_for(log, r"supervisor pid=(\d+) event=supervisor_listening .*? port=(\d+) .*"
                     r"admin_port=(\d+)", 15)
        sup, port, admin = int(m.group(1)), int(m.group(2)), int(m.group(3))
        wait_for(log, r"worker=1 .*event=redis_subscribed", 15)
        wait_for(log, r"worker=0 .*event=redis_subscribed", 15)
        # The clients are still connected at SIGTERM, so the drain (close 1001, shutdown,
        # lingering reads) is traced too; the bench then counts those closes.
        b = subprocess.Popen(["timeout", "30", bench, "--url", f"ws://127.0.0.1:{port}/",
                              "--conns", "200", "--duration", "8", "--quiet"],
                             stdout=subprocess.DEVNULL)
        started.append(b)
        time.sleep(1.5)
        os.kill(sup, signal.SIGUSR1)
        subprocess.run(["redis-cli", "-p", str(rport), "PUBLISH", "syscalls",
                        '{"time":%d,"seq":1000}' % int(time.time() * 1000)],
                       check=True, capture_output=True, timeout=10)
        for method, path, body in (("POST", "/publish", b"syscalls"), ("GET", "/metrics", None)):
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
            c.request(method, path, body=body)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status not in (200, 202):
                sys.exit(f"FAIL: admin {method} {path}: {r.status}")
        wait_for(log, r"worker=\d+ .*event=broadcast .*written=[1-9]", 10)
        time.sleep(1)
        os.kill(sup, signal.SIGTERM)
        if srv.wait(timeout=40) != 0:
            with open(log, errors="replace") as f:
                print(f.read()[-3000:])
            sys.exit(f"FAIL: wspush (under strace) exited {srv.returncode}")
        b.wait(timeout=40)
    finally:
        for p in started:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    used = {}
    with open(trace, errors="replace") as f:
        for line in f:
            m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z_][a-z0-9_]*)(?:\(| resumed>)", line)
            if m:
                used[m.group(1)] = used.get(m.group(1), 0) + 1
    shutil.rmtree(tmp, ignore_errors=True)
    if len(used) < 20:
        sys.exit(f"FAIL: only {len(used)} distinct calls traced: strace did not follow the server")
    bad = sorted(n for n in used if (n not in allow if mode == "allow" else n in deny))
    print(f"traced {len(used)} distinct system calls: {' '.join(sorted(used))}")
    if bad:
        print("FAIL: outside SystemCallFilter= of %s: %s" % (unit, " ".join(bad)))
        sys.exit(1)
    print(f"ok: all allowed by {os.path.basename(unit)}")


if __name__ == "__main__":
    main()
