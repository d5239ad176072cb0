"""``python -m lab.fakes.graph_main``: serve fake Microsoft tenants until interrupted (the demo,
the bench). Prints one JSON line first: the URL and each tenant's id, client id and secret (all
fake); at the end, the requests served per route."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import fixture_tenant, generated_tenant


def _write_private(path: str, text: str) -> None:
    """Written whole, then renamed: a reader never sees half a file."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    Path(tmp).replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.fakes.graph_main", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--tenants", type=int, default=0, help="generated tenants (besides the fixture tenant)"
    )
    parser.add_argument("--rooms", type=int, default=150, help="Teams Rooms on Windows per generated tenant")
    parser.add_argument("--android", type=int, default=100, help="Teams Android devices per generated tenant")
    parser.add_argument("--beta-status", type=int, choices=(404, 410), help="answer the beta tree like this")
    parser.add_argument("--no-fixture", action="store_true", help="leave out the fixture tenant")
    parser.add_argument("--info-file", help="also write the first JSON line to this file (mode 0600)")
    args = parser.parse_args(argv)
    tenants = [] if args.no_fixture else [fixture_tenant()]
    tenants += [
        generated_tenant(f"tenant{n:02d}.example", rooms=args.rooms, android=args.android)
        for n in range(args.tenants)
    ]
    fake = FakeGraph(tenants)
    fake.faults.beta_status = args.beta_status

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with fake.running(args.host, args.port):
            info = {
                "url": fake.url,
                "tenants": [
                    {"tenant_id": t.tenant_id, "client_id": t.client_id, "client_secret": t.client_secret}
                    for t in tenants
                ],
            }
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()
            if args.info_file:
                _write_private(args.info_file, json.dumps(info))
            await stop.wait()
        sys.stdout.write(json.dumps({"requests": dict(fake.requests)}) + "\n")

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
