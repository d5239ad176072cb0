"""The runner through the signed command channel of ``controller.commands`` and a real Mosquitto:
the command arrives signed for the site and verifies with the controller's public key, the
agent's result moves the job, and the device's reported version verifies it.

``controller.commands`` comes from branch ``commands``; until both are merged this module is
skipped (it passed on a merge of the two, with revision 0009 after 0008).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.wire import ActionKind, ActionResult, ActionState, CommandResult, encode
from controller.campaigns.runner import CampaignRunner
from controller.settings import settings_from_dict
from controller.storage import contracts
from tests.controller.conftest import BrokerInfo, controller_config, open_store, wait_until
from tests.controller.test_campaigns_runner import NEW, OLD, POLICY, WINDOWS, Env, campaign, states

channel_module = pytest.importorskip("controller.commands.channel")
wire_commands = pytest.importorskip("collector.wire.commands")


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_job_through_signed_mqtt_commands(
    broker: BrokerInfo, database_url: str, topic_prefix: str
) -> None:
    key = Ed25519PrivateKey.generate()
    settings = settings_from_dict(controller_config(broker, database_url, topic_prefix))
    channel = channel_module.CommandChannel(settings.mqtt, key, publish_timeout_s=10)
    stop = asyncio.Event()
    now = datetime.now(UTC)
    async with open_store(database_url, tenant_of=lambda _site: "acme") as store:
        env = Env(store, now=now)
        await env.report("d1", OLD)
        await contracts.import_contracts(store, POLICY, WINDOWS, actor="test")
        cid = await campaign(env, {"d1": 1}, (now - timedelta(minutes=1), now + timedelta(hours=2)))
        runner = CampaignRunner(store, channel)
        channel.on_result(runner.on_result)
        task = asyncio.create_task(channel.run(stop))
        try:
            agent_id = f"agent-{uuid.uuid4().hex[:6]}"
            async with aiomqtt.Client(
                broker.host, broker.port, identifier=agent_id, username=broker.username
            ) as agent:
                await agent.subscribe(f"{topic_prefix}/site-1/cmd", qos=1)
                async with asyncio.timeout(10):
                    await channel.connected.wait()
                await runner.step()
                async with asyncio.timeout(10):
                    message = await anext(aiter(agent.messages))
                envelope = wire_commands.verify_command(
                    str(message.topic),
                    bytes(message.payload),
                    key=key.public_key(),
                    site_id="site-1",
                    now=datetime.now(UTC),
                    prefix=topic_prefix,
                )
                assert (envelope.device_id, envelope.target_version) == ("d1", "26.2.2.2")
                done = ActionResult(device_id="d1", action=ActionKind.UPDATE, state=ActionState.SUCCEEDED)
                result = CommandResult(
                    site_id="site-1",
                    agent_id=agent_id,
                    sent_at=datetime.now(UTC),
                    command_id=envelope.command_id,
                    device_id="d1",
                    ok=True,
                    job_id=envelope.job_id,
                    result=done,
                )
                await agent.publish(f"{topic_prefix}/site-1/cmd_result", encode(result), qos=1)

                async def succeeded() -> bool:
                    return (await states(env, cid))["d1"] == "succeeded"

                await wait_until(succeeded, 10, "the agent's result through the channel")
            await env.report("d1", NEW)
            await runner.step()
            assert (await states(env, cid))["d1"] == "verified"
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await task
