"""Benchmark: /healthz latency and log volume while 20,000 idle connections are held.

    .venv/bin/python bench/http_flood.py [--connections 20000] [--sources 100] [--seconds 30]
                                         [--nofile 1024] [--tree DIR]

Starts Mosquitto and a controller subprocess (SQLite in a temporary directory), has two child
processes hold --connections idle TCP connections from --sources loopback addresses, then asks
/healthz every 0.5 s (fresh connection each, 10 s timeout) for --seconds. Prints the latencies
(median, max, failures) and the bytes the controller logged meanwhile. The controller starts with
a soft RLIMIT_NOFILE of --nofile (systemd's default soft limit is 1024) from --tree (another
checkout, to compare; the holder and broker always come from this tree's tests/).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.mqtt import MosquittoBroker  # noqa: E402
from tests.fixtures.net import free_port, terminate  # noqa: E402


def _soft_nofile(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))


async def probe(url: str, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=10)
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url + "/healthz") as resp,
            ):
                await resp.read()
                latencies.append(time.monotonic() - started)
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
        await asyncio.sleep(0.5)
    return latencies, failures


def main(connections: int, sources: int, seconds: float, nofile: int, tree: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp))
        broker.start()
        port = free_port()
        config = Path(tmp) / "c.toml"
        config.write_text(
            f'[database]\nurl = "sqlite+aiosqlite:///{tmp}/f.db"\n'
            f"[mqtt]\nport = {broker.port}\n[http]\nport = {port}\n"
        )
        log_path = Path(tmp) / "c.log"
        with log_path.open("wb") as log:
            ctl = subprocess.Popen(
                [sys.executable, "-m", "controller", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tree)},
                cwd=tree,
                preexec_fn=lambda: _soft_nofile(nofile),  # noqa: PLW1509 (no threads yet)
            )
        holders: list[subprocess.Popen[bytes]] = []
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(probe(url, 3))  # until it answers
            addresses = [f"127.0.0.{n}" for n in range(2, 2 + sources)]
            half = len(addresses) // 2
            command = [sys.executable, "-m", "tests.controller.hold_connections", "127.0.0.1", str(port)]
            holders = [
                subprocess.Popen(
                    [*command, str(connections // 2), *part],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                for part in (addresses[:half], addresses[half:])
            ]
            before = log_path.stat().st_size
            started = time.monotonic()
            reports = [h.stdout.readline().decode().strip() for h in holders if h.stdout is not None]
            latencies, failures = asyncio.run(probe(url, seconds))
            logged = log_path.stat().st_size - before
            elapsed = time.monotonic() - started
            print(f"holders: {reports}")
            if latencies:
                print(
                    f"/healthz: {len(latencies)} answered, "
                    f"median {statistics.median(latencies) * 1000:.0f} ms, "
                    f"max {max(latencies) * 1000:.0f} ms; {failures} failed (10 s timeout)"
                )
            else:
                print(f"/healthz: none answered; {failures} failed (10 s timeout)")
            print(f"log: {logged} bytes in {elapsed:.0f} s")
        finally:
            for holder in holders:
                if holder.stdin is not None:
                    holder.stdin.close()
                holder.wait(30)
            terminate(ctl)
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--tree", type=Path, default=ROOT)
    args = parser.parse_args()
    main(args.connections, args.sources, args.seconds, args.nofile, args.tree.resolve())
