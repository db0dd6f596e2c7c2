#!/usr/bin/python3
"""wspush against a third-party client: Debian's python3-websockets (10.4).

usage: /usr/bin/python3 test_python_client.py PATH_TO_WSPUSH

Starts the server on 127.0.0.1 with an ephemeral port; 20 clients connect and ping;
SIGUSR1 must give each the same {"time":..,"seq":1} text message; SIGTERM must close each
with 1001 and the server must exit 0. Every wait is bounded; a missing websockets module is a
failure that names it.
"""

import asyncio
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import wsptest as wt  # noqa: E402

NCLIENTS = 20
STEP_TIMEOUT = 10  # seconds for any one wait; a hang bound, not a speed check


async def run(ck, binary):
    with wt.Server(binary) as server:
        clients = [await wt.connect(server.url(), close_timeout=STEP_TIMEOUT, max_size=4096)
                   for _ in range(NCLIENTS)]

        # websockets matches each pong to its ping by payload.
        async def ping(i, ws):
            await asyncio.wait_for(await ws.ping(f"py-{i}".encode()), STEP_TIMEOUT)
            return True

        pongs = await asyncio.gather(*(ping(i, ws) for i, ws in enumerate(clients)),
                                     return_exceptions=True)
        ck.check("every client's ping got its pong", all(r is True for r in pongs),
                 str([r for r in pongs if r is not True][:3]))

        t0 = int(time.time() * 1000)
        server.signal(signal.SIGUSR1)
        msgs = await wt.recv_all(clients, STEP_TIMEOUT)
        t1 = int(time.time() * 1000)
        ck.check("every client got the same text message", isinstance(msgs[0], str) and
                 all(m == msgs[0] for m in msgs), str(set(msgs)))
        try:
            obj = json.loads(msgs[0])
        except (TypeError, ValueError) as e:
            obj = {}
            ck.check("the message is JSON", False, f"{msgs[0]!r}: {e}")
        ck.check("message keys time and seq", sorted(obj) == ["seq", "time"], repr(obj))
        ck.check("seq 1", obj.get("seq") == 1, repr(obj))
        # Causality with a second of slack for a wall-clock step: stamped after the signal,
        # before we read it.
        tm = obj.get("time")
        ck.check("time plausible", isinstance(tm, int) and t0 - 1000 <= tm <= t1 + 1000,
                 f"{tm} not in [{t0}, {t1}]")

        server.signal(signal.SIGTERM)

        async def closed(ws):
            await asyncio.wait_for(ws.wait_closed(), STEP_TIMEOUT)
            return ws.close_code

        codes = await asyncio.gather(*(closed(ws) for ws in clients), return_exceptions=True)
        ck.check("every client closed with 1001", all(c == 1001 for c in codes), str(codes))
        ck.check("server exit 0", server.wait(15) == 0, str(server.proc.returncode))


if __name__ == "__main__":
    sys.exit(wt.main(run, timeout=90))
