"""Webex cloud poll benchmark: 5,000 devices across 20 fake Webex orgs, one WebexSource each.

    .venv/bin/python bench/webex_poll.py [--orgs 20] [--devices 250] [--rate 50] [--rounds 2]

The fake orgs (lab/fakes/webex.py) run in a child process on loopback, so the figures below are the
polling side only: wall time per round (all orgs polled concurrently), requests made beside the
minimum the API needs (one token, ceil(devices / 100) listing pages, one xAPI status per RoomOS
device), CPU seconds of this process (user + system) and its peak RSS. A reference round with
``read_xapi_status = false`` (listing only) runs in the same run. Each org's request budget is
``--rate`` requests/s (the default 5/s of a real org would make a round take ~40 s by design).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import resource
import socket
import subprocess
import sys
import time

from collector.model import Observation
from collector.webex import WebexOptions, WebexSource

ROOM_SHARE = 0.8


class CountingSink:
    def __init__(self) -> None:
        self.observed = 0
        self.errors = 0

    def observe(self, observation: Observation) -> None:  # noqa: ARG002 - counting only
        self.observed += 1

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:  # noqa: ARG002
        self.errors += 1


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


SERVER = """
import asyncio, sys
from aiohttp import web
from lab.fakes.webex import FakeWebex
from lab.fakes.webex_org import make_org

async def main(ports, rooms, phones):
    runners = []
    for n, port in enumerate(ports):
        runner = web.AppRunner(FakeWebex(make_org(rooms, phones, prefix=f"org{n}")).app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    print("ready", flush=True)
    await asyncio.Event().wait()

ports = [int(p) for p in sys.argv[1].split(",")]
asyncio.run(main(ports, int(sys.argv[2]), int(sys.argv[3])))
"""


async def poll_round(ports: list[int], rate: float, *, xapi: bool) -> tuple[float, int, int, int]:
    sources = [
        WebexSource(
            f"org{n}",
            WebexOptions(
                base_url=f"http://127.0.0.1:{port}/v1",
                client_id="fake-client",
                client_secret="fake-client-secret",  # the fake's fixed credential
                refresh_token="fake-webex-refresh",
                rate_per_s=rate,
                burst=int(rate),
                read_xapi_status=xapi,
            ),
        )
        for n, port in enumerate(ports)
    ]
    sink = CountingSink()
    started = time.perf_counter()
    await asyncio.gather(*(s.collect(sink) for s in sources))
    wall = time.perf_counter() - started
    requests = sum(s.api.requests_made for s in sources)
    for source in sources:
        await source.aclose()
    return wall, requests, sink.observed, sink.errors


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--devices", type=int, default=250, help="per org")
    parser.add_argument("--rate", type=float, default=50.0, help="request budget per org, req/s")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rooms = int(args.devices * ROOM_SHARE)
    phones = args.devices - rooms
    ports = free_ports(args.orgs)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, ",".join(map(str, ports)), str(rooms), str(phones)],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"ready":
            print("fake orgs did not start", file=sys.stderr)
            return 1
        pages = math.ceil(args.devices / 100)
        # API requests; the one token fetch per org goes through the token client and is not counted.
        minimum = {True: args.orgs * (pages + rooms), False: args.orgs * pages}
        print(
            f"{args.orgs} orgs x {args.devices} devices ({rooms} RoomOS, {phones} phones),"
            f" budget {args.rate}/s per org"
        )
        for xapi in (False, True, *([True] * (args.rounds - 1))):
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            wall, requests, observed, errors = asyncio.run(poll_round(ports, args.rate, xapi=xapi))
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
            label = "listing + xAPI status" if xapi else "listing only (reference)"
            print(
                f"{label:26s} wall {wall:6.2f} s  devices {observed} (errors {errors})  requests {requests}"
                f" (minimum {minimum[xapi]})  cpu {cpu:5.2f} s"
            )
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the polling process: {peak_mib:.0f} MiB")
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
