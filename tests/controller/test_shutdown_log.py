"""Stopping the controller leaves nothing in its log but its own lines: no "Future exception was
never retrieved … Unexpected disconnection" from aiomqtt's disconnect future."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.controller.conftest import BrokerInfo, Harness, controller_config, wait_until
from tests.controller.test_sigkill import ControllerProcess, to_toml


async def _mqtt_lost(ctl: ControllerProcess) -> bool:
    async with aiohttp.ClientSession() as session, session.get(ctl.http_url + "/healthz") as resp:
        return bool((await resp.json()).get("mqtt") != "connected")


UNRETRIEVED = ("never retrieved", "Unexpected disconnection", "Traceback")


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["controller-stops", "broker-stops-first", "both-at-once"])
async def test_a_stopping_controller_logs_no_unretrieved_future(
    broker: BrokerInfo, database_url: str, topic_prefix: str, tmp_path: Path, how: str
) -> None:
    config = controller_config(broker, database_url, topic_prefix)
    (tmp_path / "c.toml").write_text(to_toml(config))
    ctl = ControllerProcess(
        tmp_path / "c.toml", tmp_path / "c.log", f"http://127.0.0.1:{config['http']['port']}"
    )
    ctl.start()
    assert ctl.proc is not None
    try:
        await ctl.wait_connected()
        if how == "broker-stops-first":
            broker.server.stop()
            await wait_until(lambda: _mqtt_lost(ctl), timeout_s=60, what="the controller noticed")
        elif how == "both-at-once":
            # Ctrl-C in `make demo` signals broker and controller together: the connection drops
            # while the controller is stopping. Paused, the controller sees both on waking up.
            ctl.proc.send_signal(signal.SIGSTOP)
            broker.server.stop()
            ctl.proc.send_signal(signal.SIGTERM)
            ctl.proc.send_signal(signal.SIGCONT)
            ctl.proc.wait(30)  # a second SIGTERM (terminate) would mean "exit now"
    finally:
        code = ctl.terminate()
    log = ctl.log_path.read_text()
    assert code == 0, log[-3000:]
    for text in UNRETRIEVED:
        assert text not in log, log[-3000:]


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_stopping_as_the_broker_goes_away_leaves_no_unretrieved_future(
    make_harness: Callable[..., Awaitable[Harness]], caplog: pytest.LogCaptureFixture
) -> None:
    # Debug mode records where each future was created: earlier tests' garbage (their own
    # clients' futures, collected now) is told apart from the controller's by that stack.
    asyncio.get_running_loop().set_debug(True)
    h = await make_harness()
    # Stopping mosquitto blocks this event loop until it is gone, and stop is set before the loop
    # runs again: the controller learns of both in one turn, stop first (as on Ctrl-C in the demo).
    h.broker.server.stop()
    h.stop.set()
    async with asyncio.timeout(30):
        await h.task
    publisher = h.publisher._disconnected  # the test's own client: not what is tested
    await wait_until(_done(publisher), what="the test's publisher noticed")
    if not publisher.cancelled():
        publisher.exception()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    unretrieved = [
        text
        for text in (r.getMessage() + str(getattr(r, "exc_text", "")) for r in caplog.records)
        if "never retrieved" in text and "controller/ingest/session.py" in text
    ]
    assert not unretrieved


def _done(future: asyncio.Future[None]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return future.done()

    return check
