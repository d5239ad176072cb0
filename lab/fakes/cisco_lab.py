"""The Cisco part of ``make demo``: a simulated Webex org and an on-premises codec on loopback.

``python -m lab.fakes.cisco_lab --webex-port P --codec-port Q [--info-file F]`` serves, until
SIGTERM/SIGINT,

- a Webex org (``http://127.0.0.1:P/v1``) of ``--rooms`` RoomOS devices and ``--phones`` Webex
  Calling phones, four to a listing page, whose rooms upgrade to RoomOS 11.22 when an upgrade
  is triggered (the first room's upgrade fails, to show a failure);
- one on-premises Room Kit Pro (``http://127.0.0.1:Q``, HTTP XML API, one request per second)
  that installs what ``SystemUnit SoftwareUpgrade URL:`` points at.

:func:`agent_sources` is the ``[[sources]]`` text the demo agent polls them with; the secrets are
``{env = …}`` references whose values :data:`DEMO_ENV` holds (the demo exports them to the agent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from aiohttp import web

from lab.fakes.webex import FakeWebex
from lab.fakes.webex_org import make_org
from lab.fakes.xapi import FakeCodec, XapiFaults

NEXT_ROOMOS = "RoomOS 11.22.1.4 77aa00bb11c"
# The fakes' fixed credentials, handed to the demo agent through its environment.
DEMO_ENV = {
    "FERNWART_DEMO_WEBEX_CLIENT_SECRET": "fake-client-secret",
    "FERNWART_DEMO_WEBEX_REFRESH_TOKEN": "fake-webex-refresh",
    "FERNWART_DEMO_CODEC_PASSWORD": "fake-codec-password",
}
# An access token the org accepts as is: what `fernwart probe webex --token-env` reads.
DEMO_ACCESS_TOKEN_ENV = "FERNWART_DEMO_WEBEX_TOKEN"  # noqa: S105 - a variable's name
DEMO_ACCESS_TOKEN = "fake-webex-access"  # noqa: S105 - the fake's fixed credential


def demo_org(rooms: int, phones: int) -> FakeWebex:
    devices = make_org(rooms, phones, prefix="demo")
    for n, device in enumerate(d for d in devices if d.has_xapi):
        device.next_software = NEXT_ROOMOS
        device.upgrade_fails = n == 0
    fake = FakeWebex(devices, access_token=DEMO_ACCESS_TOKEN)
    fake.faults.page_max = 4
    return fake


def agent_sources(webex_port: int, codec_port: int, interval_s: float) -> str:
    """The demo agent's ``[[sources]]`` for the two fakes (TOML text)."""
    return "\n".join(
        [
            "",
            "[[sources]]",
            'id = "demo-webex"',
            'kind = "webex"',
            f"interval_s = {max(interval_s, 30.0)}",
            "",
            "[sources.options]",
            f'base_url = "http://127.0.0.1:{webex_port}/v1"',
            'client_id = "fake-client"',
            'client_secret = { env = "FERNWART_DEMO_WEBEX_CLIENT_SECRET" }',
            'refresh_token = { env = "FERNWART_DEMO_WEBEX_REFRESH_TOKEN" }',
            "follow_interval_s = 2.0",
            "",
            "[[sources]]",
            'id = "ber-konf-2-14"',
            'kind = "xapi"',
            f"interval_s = {max(interval_s, 30.0)}",
            "",
            "[sources.options]",
            'host = "127.0.0.1"',
            f"port = {codec_port}",
            'scheme = "http"',
            'user = "admin"',
            'password = { env = "FERNWART_DEMO_CODEC_PASSWORD" }',
            f'package_base_url = "http://127.0.0.1:{codec_port}/packages"',
            "follow_interval_s = 2.0",
            "",
        ]
    )


def _bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


def _write_info(path: Path, info: dict[str, int]) -> None:
    """Written whole, then renamed: the demo never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
    tmp.replace(path)


async def serve(
    webex_port: int, codec_port: int, rooms: int, phones: int, info_file: Path | None = None
) -> None:
    """Port 0 binds a port of the OS's choosing, written to ``info_file``: a port chosen first and
    bound later can be taken in between on a shared machine (the demo then failed to start)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    codec = FakeCodec(faults=XapiFaults(interval_s=1.0))
    runners = [web.AppRunner(demo_org(rooms, phones).app()), web.AppRunner(codec.app())]
    async with contextlib.AsyncExitStack() as stack:
        for runner, port in zip(runners, (webex_port, codec_port), strict=True):
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, "127.0.0.1", port).start()
        webex_port, codec_port = (_bound_port(runner) for runner in runners)
        sys.stdout.write(
            f"cisco lab: Webex org ({rooms} rooms, {phones} phones) on http://127.0.0.1:{webex_port}/v1,"
            f" on-prem codec on http://127.0.0.1:{codec_port}\n"
        )
        if info_file is not None:
            _write_info(info_file, {"webex_port": webex_port, "codec_port": codec_port})
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.fakes.cisco_lab", description=__doc__)
    parser.add_argument("--webex-port", type=int, default=0, help="0 (default): one the OS chooses")
    parser.add_argument("--codec-port", type=int, default=0, help="0 (default): one the OS chooses")
    parser.add_argument("--info-file", type=Path, help="write the bound ports here as JSON once listening")
    parser.add_argument("--rooms", type=int, default=6)
    parser.add_argument("--phones", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.webex_port, args.codec_port, args.rooms, args.phones, args.info_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
