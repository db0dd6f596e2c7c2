#!/usr/bin/python3
"""ctest with skips accounted for: `make test` installs everything its tests need, so a test
that skips (exit 77, SKIP_RETURN_CODE) fails the run unless test/SKIPS lists it with the
reason `make test` cannot provide what it needs.

  ctest_skips.py --skips test/SKIPS --record FILE -- CTEST_ARGS...
      runs ctest CTEST_ARGS in the current directory, output as it comes; then prints the
      skipped tests and writes their names to FILE. Exit: ctest's when it failed, else 1 if
      a skipped test is not in SKIPS, else 0.
  ctest_skips.py --summary FILE...
      one line for the end of `make test`: the skipped tests of each run (FILEs written by
      --record), counted.
"""
import argparse
import fnmatch
import os
import re
import subprocess
import sys

# "  12/140 Test  #12: hostile.half_open ........***Skipped   0.10 sec" as each test ends, and
# "\t 12 - hostile.half_open (Skipped)" under "The following tests did not run:".
PROGRESS = re.compile(r"Test\s+#\d+: (\S+) \.*\s*\*\*\*Skipped\b")
SUMMARY = re.compile(r"^\s*\d+ - (\S+) \((?:Skipped|Disabled)\)\s*$")


def read_list(path):
    """[(pattern, reason)] from SKIPS: NAME-OR-GLOB, whitespace, reason; # comments."""
    out = []
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, reason = line.partition(" ")
            if not reason.strip():
                sys.exit(f"{path}:{no}: '{name}' has no reason")
            out.append((name, reason.strip()))
    return out


def run(skips_path, record, args):
    allowed = read_list(skips_path)
    proc = subprocess.Popen(["ctest", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    skipped = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        m = PROGRESS.search(line) or SUMMARY.match(line)
        if m and m.group(1) not in skipped:
            skipped.append(m.group(1))
    rc = proc.wait()
    with open(record, "w") as f:
        f.write("".join(name + "\n" for name in skipped))
    unlisted = []
    print(f"skipped: {len(skipped)} test(s) in {os.getcwd()}")
    for name in skipped:
        why = next((r for p, r in allowed if fnmatch.fnmatchcase(name, p)), None)
        print(f"  {name}: " + (f"listed in {skips_path}: {why}" if why else
                               f"NOT listed in {skips_path}: a skip is a failure here"))
        if why is None:
            unlisted.append(name)
    if rc != 0:
        return rc
    return 1 if unlisted else 0


def summary(records):
    parts, total = [], 0
    for path in records:
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
        total += len(names)
        run_name = os.path.basename(os.path.dirname(os.path.abspath(path)))
        parts.append(f"{run_name} {len(names)}" + (f" ({', '.join(names)})" if names else ""))
    print(f"skipped tests: {total} in all: {'; '.join(parts)} (each listed in test/SKIPS)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skips")
    ap.add_argument("--record")
    ap.add_argument("--summary", nargs="+")
    ap.add_argument("ctest_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.summary:
        return summary(a.summary)
    if not a.skips or not a.record:
        ap.error("--skips and --record, or --summary")
    args = a.ctest_args[1:] if a.ctest_args[:1] == ["--"] else a.ctest_args
    return run(a.skips, a.record, args)


if __name__ == "__main__":
    sys.exit(main())
