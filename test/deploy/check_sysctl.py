#!/usr/bin/python3
"""Checks deploy/sysctl.d/99-wspush.conf without changing the host.

- Parses it as systemd-sysctl does: '#' and ';' comments, KEY = VALUE, '/' or '.' separators,
  a leading '-' meaning "ignore failure". Every key must exist under /proc/sys, except keys of
  modules that may be absent (nf_conntrack), which must carry the '-'. No key twice.
- Every setting has a comment right above it (the why and the measurement).
- A value has as many fields as the kernel's current one (tcp_mem has three), all integers.
- Keys private to a network namespace are written for real in a throwaway namespace
  (unshare --net, root only), so the kernel itself accepts the values.
- Cross-checks with the rest of the kit: LimitNOFILE in the systemd unit fits both the
  default fs.nr_open (so the unit works without this file) and ours; fs.file-max is at least
  fs.nr_open; somaxconn is at least the backlog wspush asks for (server/shard.c); the
  reserved ports are wspush's default port and Redis', inside the local port range.

  check_sysctl.py SYSCTL_CONF UNIT_FILE SHARD_C
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402

MODULE_KEYS = ("net.netfilter.nf_conntrack_", "net.nf_conntrack_")  # absent without the module
NETNS_KEYS = {  # per network namespace: safe to write in a throwaway one
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
}
DEFAULT_NR_OPEN = 1048576  # the kernel's built-in fs.nr_open
WSPUSH_PORT = 8080
REDIS_PORT = 6379

CK = wt.Checks("check_sysctl")  # replaced by the run's own in run()


def fail(msg):
    CK.check(msg, False)


def ok(msg):
    CK.check(msg, True)


def parse(path):
    settings = {}
    prev_comment = False
    with open(path) as f:
        for no, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                prev_comment = False
                continue
            if line[0] in "#;":
                prev_comment = True
                continue
            optional = line.startswith("-")
            if optional:
                line = line[1:]
            if "=" not in line:
                fail(f"{path}:{no}: not KEY = VALUE: {raw.rstrip()}")
                continue
            key, value = (s.strip() for s in line.split("=", 1))
            key = key.replace("/", ".")
            if key in settings:
                fail(f"{path}:{no}: {key} set twice")
            if not prev_comment:
                fail(f"{path}:{no}: {key} has no comment above it saying why")
            settings[key] = (value, optional, no)
            prev_comment = False
    return settings


def proc_path(key):
    return "/proc/sys/" + key.replace(".", "/")


def check_key(key, value, optional, no):
    path = proc_path(key)
    if not os.path.exists(path):
        if key.startswith(MODULE_KEYS):
            if not optional:
                fail(f"line {no}: {key} exists only with its module loaded: prefix it with '-'")
            else:
                ok(f"{key} (module not loaded here: skipped, as systemd-sysctl would)")
            return
        fail(f"line {no}: unknown key {key} (no {path})")
        return
    with open(path) as f:
        current = f.read().split()
    fields = value.split()
    if key == "net.ipv4.ip_local_reserved_ports":
        fields = [p for part in value.split(",") for p in part.split("-")]
        current = None  # a list of any length
    if current is not None and len(fields) != len(current):
        fail(f"line {no}: {key} wants {len(current)} field(s) like '{' '.join(current)}', got '{value}'")
    if not all(re.fullmatch(r"\d+", x) for x in fields):
        fail(f"line {no}: {key} = '{value}' is not made of integers")
    ok(f"{key} = {value} (now: {' '.join(current) if current else open(path).read().strip()})")


def check_in_netns(settings):
    """False when it could not run here (not root)."""
    keys = [k for k in settings if k in NETNS_KEYS]
    wt.need("unshare", "util-linux")
    if os.geteuid() != 0:
        return False
    script = "set -e\n"
    for k in keys:
        script += f"echo '{settings[k][0]}' > {proc_path(k)}\nprintf '%s=' {k}; cat {proc_path(k)}\n"
    r = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True,
                       timeout=20)
    if r.returncode != 0:
        fail(f"the kernel refused a value in a throwaway network namespace: {r.stderr.strip()}")
        return True
    for line in r.stdout.splitlines():
        k, got = line.split("=", 1)
        want = settings[k][0]
        norm = lambda s: " ".join(s.replace(",", " ").split())
        if norm(got) != norm(want):
            fail(f"{k}: wrote '{want}', the kernel kept '{got.strip()}'")
        else:
            ok(f"{k} accepted by the kernel (throwaway network namespace)")
    return True


def run(ck, conf, unit, shard_c):
    global CK
    CK = ck
    settings = parse(conf)
    for key, (value, optional, no) in settings.items():
        check_key(key, value, optional, no)
    in_netns = check_in_netns(settings)

    def num(key):
        return int(settings[key][0].split()[0]) if key in settings else None

    with open(unit) as f:
        m = re.search(r"^LimitNOFILE=(\d+)$", f.read(), re.M)
    nofile = int(m.group(1)) if m else None
    nr_open, file_max = num("fs.nr_open"), num("fs.file-max")
    if nofile is None:
        fail(f"{unit}: no numeric LimitNOFILE=")
    else:
        if nofile > DEFAULT_NR_OPEN:
            fail(f"LimitNOFILE={nofile} needs fs.nr_open raised: the unit would not start without it")
        if nr_open is not None and nofile > nr_open:
            fail(f"LimitNOFILE={nofile} > fs.nr_open {nr_open}")
    if nr_open is not None and file_max is not None and file_max < nr_open:
        fail(f"fs.file-max {file_max} < fs.nr_open {nr_open}: one process could exhaust the system")
    with open(shard_c) as f:
        m = re.search(r"#define\s+WSP_SHARD_BACKLOG\s+(\d+)", f.read())
    if m and num("net.core.somaxconn") is not None and num("net.core.somaxconn") < int(m.group(1)):
        fail(f"net.core.somaxconn {num('net.core.somaxconn')} truncates wspush's backlog {m.group(1)}")
    if "net.ipv4.ip_local_port_range" in settings:
        lo, hi = (int(x) for x in settings["net.ipv4.ip_local_port_range"][0].split())
        reserved = settings.get("net.ipv4.ip_local_reserved_ports", ("",))[0]
        ports = {int(p) for p in re.split(r"[,\s]+", reserved) if p.isdigit()}
        for p in (WSPUSH_PORT, REDIS_PORT):
            if lo <= p <= hi and p not in ports:
                fail(f"port {p} is inside ip_local_port_range {lo}-{hi} but not reserved")
    ok(f"{conf}: {len(settings)} settings read")
    if not in_netns:
        raise wt.Skip("not root: the values were not written in a throwaway network namespace")


if __name__ == "__main__":
    sys.exit(wt.main(run, binary=False))
