"""A signed update command end to end into a vendor API: controller → Mosquitto → agent →
the Webex source (``[[sources]]``, loaded from the registry as in production) → the Webex fake of
the lab, which follows the documented xAPI upgrade flow. The device ends on the target as the
source itself reports it in the next poll."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from agent.service import AgentService
from agent.settings import AgentSettings
from collector.actions import ActionKind, ActionRequest, ActionState
from collector.webex.devices import device_id
from collector.wire import commands as c
from lab.fakes.webex import FakeWebex
from lab.fakes.webex_org import make_org
from tests.agent.receiver import receiving
from tests.agent.test_commands import KEY, SITE, _channel, running_channel
from tests.agent.test_service import agent_settings
from tests.fixtures.mqtt import MosquittoBroker

TARGET = "RoomOS 11.22.1.4"


@pytest.fixture
async def webex() -> AsyncIterator[tuple[FakeWebex, TestServer]]:
    fake = FakeWebex(make_org(2, 1))
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, server
    await server.close()


def _settings(
    broker: MosquittoBroker, prefix: str, tmp_path: Path, fake: FakeWebex, port: int
) -> AgentSettings:
    raw = agent_settings(broker, prefix, tmp_path, devices=0).model_dump(mode="json")
    raw["devices"] = []
    raw["sources"] = [
        {
            "id": "acme-webex",
            "kind": "webex",
            "interval_s": 0.5,
            "timeout_s": 5,
            "options": {
                "base_url": f"http://127.0.0.1:{port}/v1",
                "client_id": fake.client[0],
                "client_secret": fake.client[1],
                "refresh_token": fake.refresh_token,
                "retry_min_s": 0.01,
                "follow_interval_s": 0,
            },
        }
    ]
    raw["controller"] = {"command_key": c.public_key_text(KEY.public_key())}
    raw["shutdown"] = {"drain_s": 0}
    return AgentSettings.model_validate(raw)


async def test_a_signed_update_reaches_the_device_through_its_vendor_api(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path, webex: tuple[FakeWebex, TestServer]
) -> None:
    fake, server = webex
    room = next(d.id for d in fake.devices.values() if d.has_xapi)
    fake.devices[room].next_software = f"{TARGET} 77aa00bb11c"
    device = device_id(room)
    service = AgentService(_settings(mosquitto, topic_prefix, tmp_path, fake, server.port))
    channel = _channel(mosquitto, topic_prefix)
    stop = asyncio.Event()
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        running_channel(channel) as results,
        asyncio.TaskGroup() as tg,
    ):
        tg.create_task(service.run(stop))
        async with asyncio.timeout(15):
            await service.ready.wait()
            assert service.commands is not None
            await service.commands.subscribed.wait()
        request = ActionRequest(
            device_id=device,
            action=ActionKind.UPDATE,
            target_version=TARGET,
            deadline=datetime.now(UTC) + timedelta(minutes=2),
        )
        job = f"job-{uuid.uuid4().hex[:6]}"
        await channel.send(SITE, request, expires_at=datetime.now(UTC) + timedelta(minutes=5), job_id=job)
        async with asyncio.timeout(30):
            got_job, result = await results.get()

        def reported_target() -> bool:
            return any(
                o.device_id == device and o.firmware_version() == TARGET
                for batch in rx.batches()
                for o in batch.observations
            )

        await rx.wait_for(reported_target)
        stop.set()
    assert (got_job, result.state, result.device_id) == (job, ActionState.SUCCEEDED, device)
    assert "Succeeded" in result.history
