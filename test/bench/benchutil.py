"""What the bench harnesses of test/bench share: bounded polling and the bench's status file."""
import re
import signal
import subprocess
import time


def wait_for(what, pred, timeout, step=0.02):
    """Polls pred until it returns something true (returned), at most timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_status(path):
    """wspush-bench --status-file as a dict, integers as int; {} until it exists."""
    try:
        with open(path) as f:
            pairs = [line.strip().split("=", 1) for line in f if "=" in line]
    except FileNotFoundError:
        return {}
    return {k: int(v) if v.lstrip("-").isdigit() else v for k, v in pairs}


def start_server(argv, log):
    """Starts a server that logs event=listening ... port=N on stderr (wspush with --port 0)
    into the open file log; returns the process and its port."""
    proc = subprocess.Popen(argv, stderr=log)

    def port():
        log.seek(0)
        m = re.search(r"event=listening.* port=(\d+)", log.read())
        return m and int(m.group(1))
    try:
        return proc, wait_for("the server's listening line", port, 10)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise


def stop_all(procs):
    """SIGTERM to each process still running (last started first), a bounded wait, SIGKILL."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
