"""What the bench harnesses of test/bench share: bounded polling and the bench's status file."""
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
