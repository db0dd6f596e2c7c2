#!/usr/bin/env python3
"""Where a benchmark figure comes from: the commit it was built from, when, on what machine and
with which command. Every summary.json the bench scripts write carries this object, and
docs/results/ keeps those files beside the tables that quote them.

    python3 bench/provenance.py [COMMAND...]   # prints the object as JSON
"""
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    """CPU model, cores, kernel and memory, read off this machine."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "mem_total_kib": mem_kib}


def binary(path):
    """A binary a run used: its path and the SHA-256 of its bytes (the commit says what the tree
    was; this says which build of it ran)."""
    try:
        with open(path, "rb") as f:
            return {"path": path, "sha256": hashlib.sha256(f.read()).hexdigest()}
    except OSError:
        return {"path": path, "sha256": None}


def provenance(command=None, binaries=()):
    """The provenance object: commit (and whether the tree had uncommitted changes), UTC date,
    machine, command and the binaries it ran."""
    return {
        "commit": _git("rev-parse", "HEAD") or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "command": command,
        "binaries": [binary(b) for b in binaries if b],
    }


if __name__ == "__main__":
    print(json.dumps(provenance(" ".join(sys.argv[1:]) or None), indent=1))
