"""Cloud API poll benchmark: 5,000 Teams devices across 20 fake Microsoft tenants, one GraphSource each.

    .venv/bin/python bench/api_poll.py [--tenants 20] [--rooms 150] [--android 100] [--rounds 2]

The fake Graph (``python -m lab.fakes.graph_main``) runs in its own process, so the figures are the
client's alone: wall time, CPU seconds (this process), peak RSS (this process), and the requests
made beside the minimum that paging needs. Two scenarios, each a warm-up round then ``--rounds``
measured rounds of all tenants polled concurrently:

- ``beta retired``: the beta teamwork tree answers 404 (the state of most tenants since the
  retirement): Intune listings only.
- ``beta answers``: the beta tree answers, so each device also costs one ``health`` read.

Minimum per tenant and round: managedDevices ⌈n/page⌉, detectedApps ⌈apps/100⌉ (one page with
$filter), per Teams Rooms app version ⌈devices/100⌉, teamwork devices ⌈n/50⌉ + one health per device
(or 1 refused probe when retired, asked once per day). Tokens: 1 per tenant, warm-up only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import resource
import subprocess
import sys
import time
from collections import Counter

import structlog
from pydantic import SecretStr

from collector.graph import GraphOptions, GraphSource
from collector.model import Observation

VERSIONS_PER_NAME = 3  # lab.fakes.graph_data._room: 3 app versions under 2 display names


class CountingSink:
    def __init__(self) -> None:
        self.observed = 0
        self.errors = 0

    def observe(self, observation: Observation) -> None:
        del observation
        self.observed += 1

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        del device_id, message, reachable
        self.errors += 1


def start_fake(args: argparse.Namespace, beta_status: int | None) -> tuple[subprocess.Popen[str], dict]:
    cmd = [
        sys.executable,
        "-m",
        "lab.fakes.graph_main",
        "--no-fixture",
        "--tenants",
        str(args.tenants),
        "--rooms",
        str(args.rooms),
        "--android",
        str(args.android),
    ]
    if beta_status:
        cmd += ["--beta-status", str(beta_status)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def minimum(args: argparse.Namespace, page: int, *, beta: bool) -> int:
    rooms, android = args.rooms, args.android
    per_version = [len(range(v, rooms, 6)) for v in range(6)]  # (name, version) pairs cycle with period 6
    intune = math.ceil((rooms + android) / page) + 1 + sum(math.ceil(n / 100) for n in per_version if n)
    teamwork = math.ceil((rooms + android) / 50) + rooms + android if beta else 0
    return args.tenants * (intune + teamwork)


async def rounds(args: argparse.Namespace, info: dict, label: str, beta: bool) -> None:
    sources = [
        GraphSource(
            t["tenant_id"],
            GraphOptions(
                tenant_id=t["tenant_id"],
                client_id=t["client_id"],
                client_secret=SecretStr(t["client_secret"]),
                graph_url=info["url"],
                login_url=info["url"],
                page_size=args.page_size,
                rate_per_s=args.rate,
                burst=args.burst,
                concurrency=args.concurrency,
            ),
        )
        for t in info["tenants"]
    ]
    try:
        sinks = [CountingSink() for _ in sources]
        await asyncio.gather(*(s.collect(k) for s, k in zip(sources, sinks, strict=True)))  # warm-up
        before = sum(s.api.requests_made for s in sources)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.rounds):
            sinks = [CountingSink() for _ in sources]
            await asyncio.gather(*(s.collect(k) for s, k in zip(sources, sinks, strict=True)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        made = (sum(s.api.requests_made for s in sources) - before) / args.rounds
        observed = sum(k.observed for k in sinks)
        errors = sum(k.errors for k in sinks)
        retries = sum(s.api.v1.retries_made + s.api.beta.retries_made for s in sources)
        retry_waits = sum(s.api.v1.waited_s + s.api.beta.waited_s for s in sources)
        budget_waits = sum(s.api.budget.waited_s for s in sources) / len(sources)
        need = minimum(args, args.page_size, beta=beta)
        print(
            f"{label:<13} devices/round {observed:>5}  errors {errors}  "
            f"wall/round {wall / args.rounds:6.2f} s  cpu/round {cpu / args.rounds:5.2f} s\n{'':<13} "
            f"requests/round {made:>6.0f} (minimum {need})  retries {retries} (waits {retry_waits:.1f} s)  "
            f"budget waits per tenant {budget_waits:.1f} s (all rounds)"
        )
    finally:
        for s in sources:
            await s.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=150)
    parser.add_argument("--android", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="request budget per tenant, per second")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    total = args.tenants * (args.rooms + args.android)
    print(
        f"{total} devices in {args.tenants} tenants; page size {args.page_size}, budget {args.rate}/s burst "
        f"{args.burst} per tenant; {args.rounds} measured rounds after a warm-up"
    )
    for label, beta_status in (("beta retired", 404), ("beta answers", None)):
        proc, info = start_fake(args, beta_status)
        try:
            asyncio.run(rounds(args, info, label, beta=beta_status is None))
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
            served = (
                Counter(json.loads(out.strip().splitlines()[-1])["requests"]) if out.strip() else Counter()
            )
            print(f"{'':<13} fake served {sum(served.values())} requests in all: {dict(served)}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
