"""How the controller's CommandChannel takes results: once per command id, reason-coded.

Results are fed to ``handle_result`` as the broker would deliver them (topic, payload); the
sending path and the real broker are covered by tests/agent/test_commands.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.wire import ActionKind, ActionRequest, ActionResult, ActionState, CommandResult, encode
from collector.wire import commands as c
from controller.commands import ChannelUnavailable, CommandChannel
from controller.commands.channel import _Sent
from controller.settings import MqttSettings
from tests.fixtures.net import free_port

PREFIX = "fernwart/v1"
NOW = datetime.now(UTC)
REQUEST = ActionRequest(device_id="dev-1", action=ActionKind.UPDATE, target_version="2.0", deadline=NOW)


def _channel(**kwargs: object) -> tuple[CommandChannel, list[tuple[str, ActionResult]]]:
    mqtt = MqttSettings(host="127.0.0.1", port=free_port(), client_id="ctl-test")
    channel = CommandChannel(mqtt, Ed25519PrivateKey.generate(), publish_timeout_s=0.5, **kwargs)  # type: ignore[arg-type]
    seen: list[tuple[str, ActionResult]] = []
    channel.on_result(lambda job, result, **_origin: seen.append((job, result)))
    return channel, seen


def _sent(
    channel: CommandChannel, site: str = "site-1", job: str = "job-1", expires_at: datetime = NOW
) -> uuid.UUID:
    """A command as ``send`` records it (sending itself needs a broker)."""
    command_id = c.new_command_id()
    channel._sent[command_id] = _Sent(site, job, REQUEST, expires_at)
    return command_id


def _result(command_id: uuid.UUID, site: str = "site-1", **fields: object) -> tuple[str, bytes]:
    doc: dict[str, object] = {
        "site_id": site,
        "agent_id": "agent-1",
        "sent_at": NOW,
        "command_id": command_id,
        "device_id": "dev-1",
        "ok": True,
        "job_id": "job-1",
        "result": ActionResult(device_id="dev-1", action=ActionKind.UPDATE, state=ActionState.SUCCEEDED),
        **fields,
    }
    return f"{PREFIX}/{site}/cmd_result", encode(CommandResult.model_validate(doc))


async def test_a_result_is_handed_on_once_per_command_id() -> None:
    channel, seen = _channel()
    command_id = _sent(channel)
    assert await channel.handle_result(*_result(command_id)) == "executed"
    assert await channel.handle_result(*_result(command_id)) == "duplicate"
    assert [(job, r.state) for job, r in seen] == [("job-1", ActionState.SUCCEEDED)]


async def test_an_authenticated_refusal_fails_the_job_with_its_code() -> None:
    channel, seen = _channel()
    command_id = _sent(channel)
    refused = _result(command_id, ok=False, result=None, refusal=c.EXPIRED, detail="expired at …")
    assert await channel.handle_result(*refused) == "refused"
    ((job, result),) = seen
    assert (job, result.state, result.action) == ("job-1", ActionState.FAILED, ActionKind.UPDATE)
    assert result.detail.startswith("refused: expired")


@pytest.mark.parametrize("code", [c.UNSIGNED, c.BAD_SIGNATURE, c.MALFORMED])
async def test_a_refusal_before_the_signature_never_ends_a_job(code: str) -> None:
    channel, seen = _channel()
    command_id = _sent(channel)
    assert (
        await channel.handle_result(*_result(command_id, ok=False, result=None, refusal=code))
        == "unauthenticated"
    )
    assert seen == []
    assert await channel.handle_result(*_result(command_id)) == "executed"  # the real result still counts


async def test_a_replay_refusal_carries_the_first_result_or_waits_for_it() -> None:
    channel, seen = _channel()
    command_id = _sent(channel)
    assert (
        await channel.handle_result(*_result(command_id, result=None, ok=False, refusal=c.REPLAYED))
        == "pending"
    )
    assert seen == []
    assert await channel.handle_result(*_result(command_id, refusal=c.REPLAYED)) == "executed"
    assert len(seen) == 1


async def test_a_result_from_another_site_or_for_an_unknown_command_is_not_used() -> None:
    channel, seen = _channel()
    command_id = _sent(channel, site="site-1")
    assert await channel.handle_result(*_result(command_id, site="site-2")) == "wrong_site"
    refusal = _result(uuid.uuid4(), ok=False, result=None, refusal=c.EXPIRED)
    assert await channel.handle_result(*refusal) == "unknown_command"
    assert await channel.handle_result(f"{PREFIX}/site-1/cmd_result", b"{not json") == "rejected"
    other_device = ActionResult(device_id="dev-9", action=ActionKind.UPDATE, state=ActionState.SUCCEEDED)
    assert await channel.handle_result(*_result(command_id, result=other_device)) == "rejected"
    assert seen == []
    sample = channel.metrics.registry.get_sample_value
    assert sample("fernwart_command_results_total", {"outcome": "rejected"}) == 2
    assert sample("fernwart_command_refusals_total", {"reason": c.EXPIRED}) == 1


async def test_a_result_for_a_command_sent_before_a_restart_is_used_by_its_job_id() -> None:
    channel, seen = _channel()
    assert await channel.handle_result(*_result(uuid.uuid4(), job_id="job-old")) == "executed"
    assert [job for job, _ in seen] == ["job-old"]


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    channel, seen = _channel()

    def broken(job: str, result: ActionResult) -> None:
        raise RuntimeError("campaign store down")

    channel._callbacks.insert(0, broken)
    assert await channel.handle_result(*_result(_sent(channel))) == "executed"
    assert len(seen) == 1


async def test_finished_ids_are_bounded() -> None:
    channel, _seen = _channel(remember_results=100)
    for _ in range(150):
        await channel.handle_result(*_result(_sent(channel)))
    assert len(channel._finished) == 100


async def test_send_without_a_broker_says_so_and_forgets_the_command() -> None:
    channel, _seen = _channel(clock=lambda: NOW)  # NOW is taken at import, minutes ago in a full run
    with pytest.raises(ChannelUnavailable, match="site-1/dev-1 not sent"):
        await channel.send("site-1", REQUEST, expires_at=NOW + timedelta(minutes=5), job_id="job-1")
    assert channel._sent == {}
    with pytest.raises(ValueError, match="expires_at"):
        await channel.send("site-1", REQUEST, expires_at=NOW - timedelta(minutes=5), job_id="job-1")


async def test_unanswered_commands_are_forgotten_a_day_after_their_expiry() -> None:
    clock = [NOW]
    channel, _seen = _channel(clock=lambda: clock[0])
    old = _sent(channel, expires_at=NOW - timedelta(days=2))
    recent = _sent(channel, expires_at=NOW - timedelta(hours=1))
    # The next send prunes (it fails here, with no broker, and forgets its own command too).
    with pytest.raises(ChannelUnavailable):
        await channel.send("site-1", REQUEST, expires_at=NOW + timedelta(minutes=5), job_id="job-2")
    assert set(channel._sent) == {recent}
    assert old not in channel._sent
    assert channel.metrics.registry.get_sample_value("fernwart_commands_forgotten_total") == 1
