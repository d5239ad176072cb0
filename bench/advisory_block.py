"""Benchmark: how long one large CSAF advisory stops the controller's event loop.

    .venv/bin/python bench/advisory_block.py [--mb 15] [--database sqlite+aiosqlite:///PATH]

Serves the REST app (SQLite in a temporary directory unless --database), posts one advisory of
about --mb megabytes (a real Cisco advisory with its product tree repeated), and meanwhile
measures the event loop's longest stall (a 5 ms ticker's worst lateness) and the slowest of
/healthz requests sent every 20 ms. Prints the post's duration and both figures, then the same
for a small advisory as the reference run.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from controller.gc_tuning import tune_gc
from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.storage import Store
from controller.web import AppState, make_app

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "catalog" / "csaf"
BASE = "cisco-sa-voip-phones-rce-dos-rB6EeRXs"


def large_advisory(megabytes: float, tracking_id: str) -> bytes:
    """The real advisory with its product tree repeated (new product ids) to about ``megabytes``."""
    document: dict[str, Any] = json.loads((SHARED / f"{BASE}.json").read_text(encoding="utf-8"))
    document["document"]["tracking"]["id"] = tracking_id
    vendor = document["product_tree"]["branches"][0]
    template = copy.deepcopy(vendor["branches"])
    status = document["vulnerabilities"][0]["product_status"]
    one = len(json.dumps(template))
    copies = max(0, int(megabytes * 1024 * 1024 / (one * 1.15)))  # the status lists add ~15%
    for n in range(1, copies + 1):
        for branch in copy.deepcopy(template):
            branch["name"] = f"{branch['name']} R{n}"
            for product in _products(branch):
                product["product_id"] = f"{product['product_id']}-R{n}"
                product["name"] = f"{product['name']} R{n}"
                status["known_affected"].append(product["product_id"])
            vendor["branches"].append(branch)
    return json.dumps(document).encode()


def _products(branch: dict[str, Any]) -> list[dict[str, Any]]:
    found = [branch["product"]] if "product" in branch else []
    for child in branch.get("branches", []):
        found.extend(_products(child))
    return found


async def _ticker(stop: asyncio.Event, worst: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.005)
        worst[0] = max(worst[0], loop.time() - before - 0.005)


async def _healthz(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        async with session.get(url + "/healthz") as resp:
            await resp.read()
        worst[0] = max(worst[0], time.monotonic() - started)
        await asyncio.sleep(0.02)


async def measure(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, float, float, int]:
    stop = asyncio.Event()
    stall, slowest = [0.0], [0.0]
    tasks = [
        asyncio.create_task(_ticker(stop, stall)),
        asyncio.create_task(_healthz(session, url, stop, slowest)),
    ]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    async with session.post(url + "/api/v1/advisories", data=body) as resp:
        await resp.read()
        status = resp.status
    took = time.monotonic() - started
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)
    return took, stall[0], slowest[0], status


async def main(megabytes: float, database: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url_db = database or f"sqlite+aiosqlite:///{tmp}/bench.db"
        async with Store.open(url_db) as store:
            metrics = Metrics()
            matching = MatchingService(store, metrics.registry)
            await matching.start()
            tune_gc()  # as the daemon does
            runner = web.AppRunner(make_app(AppState(store, metrics, lambda: True, matching)))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
            url = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession() as session:
                    for name, body in (
                        ("small", large_advisory(0, "bench-small")),
                        (f"{megabytes:g} MB", large_advisory(megabytes, "bench-large")),
                    ):
                        took, stall, slowest, status = await measure(session, url, body)
                        print(
                            f"{name:>6} advisory ({len(body) / 1e6:.1f} MB): POST {status} in {took:.2f} s, "
                            f"longest event-loop stall {stall * 1000:.0f} ms, "
                            f"slowest /healthz {slowest * 1000:.0f} ms"
                        )
            finally:
                await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=15.0)
    parser.add_argument("--database")
    args = parser.parse_args()
    asyncio.run(main(args.mb, args.database))
