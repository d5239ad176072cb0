"""Signed commands through a Mosquitto configured by ``fernwart controller broker-config``: the
controller (its own credentials) sends, the enrolled agent of the site (its own broker password,
its own ``…-cmd`` session) executes and answers; the ACL lets each do exactly that."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.settings import AgentSettings
from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.wire.commands import public_key_text
from controller.commands import CommandChannel
from controller.settings import load_settings
from tests.agent.test_commands import ActingPool, running_agent
from tests.agent.test_service import agent_settings
from tests.controller.test_broker_acl import Deployment, deployment  # noqa: F401 - the fixture


async def test_a_command_flows_under_the_generated_acl(
    deployment: Deployment,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    d = deployment
    key = Ed25519PrivateKey.generate()
    raw = agent_settings(d.broker, d.prefix, tmp_path, devices=1).model_dump(mode="json")
    raw |= {"site_id": "site-a", "agent_id": "agent-a"}
    raw["mqtt"] |= {"username": "agent-a", "password": d.passwords["agent-a"]}
    raw["controller"] = {"command_key": public_key_text(key.public_key())}
    settings = AgentSettings.model_validate(raw)
    channel = CommandChannel(load_settings(d.config).mqtt, key, publish_timeout_s=10)
    results: asyncio.Queue[tuple[str, ActionResult]] = asyncio.Queue()
    channel.on_result(lambda job, result, **_origin: results.put_nowait((job, result)))
    pool = ActingPool()
    stop = asyncio.Event()
    async with running_agent(settings, pool), asyncio.TaskGroup() as tg:
        tg.create_task(channel.run(stop))
        async with asyncio.timeout(10):
            await channel.connected.wait()
        now = datetime.now(UTC)
        request = ActionRequest(
            device_id="dev-0", action=ActionKind.RESTART, deadline=now + timedelta(minutes=5)
        )
        await channel.send("site-a", request, expires_at=now + timedelta(minutes=5), job_id="job-acl")
        async with asyncio.timeout(30):
            job, result = await results.get()
        stop.set()
    assert (job, result.state, pool.calls) == ("job-acl", ActionState.SUCCEEDED, 1)
