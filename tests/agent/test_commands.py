"""Signed commands end to end on a real Mosquitto: the controller's CommandChannel signs and
sends, the agent verifies, executes through an Acts driver registered only here, and reports.

Forged commands (unsigned, another key, expired, another site's, from the future) are published
straight to the agent's command topic, as an attacker with broker access would."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from agent.service import AgentService
from agent.settings import AgentSettings
from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.base import Sink
from collector.model import Identity, Observation, utcnow
from collector.wire import CommandResult, decode, encode
from collector.wire import commands as c
from controller.commands import CommandChannel
from controller.settings import MqttSettings
from tests.agent.drivers import DriverPool
from tests.agent.receiver import Receiver, receiving
from tests.agent.test_service import agent_settings
from tests.fixtures.mqtt import MosquittoBroker

SITE = "site-1"
DEVICE = "dev-0"


class ActingDriver:
    """A source of one device with the Acts capability that counts what it was asked to do."""

    kind: ClassVar[str] = "acting"
    options_model: ClassVar[type[BaseModel]] = BaseModel
    example_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, device_id: str, gate: asyncio.Event | None = None) -> None:
        self.device_id = device_id
        self.requests: list[ActionRequest] = []
        self.gate = gate  # when given, act waits for it (the vendor's operation takes a while)

    async def collect(self, sink: Sink) -> None:
        observation = Observation(
            device_id=self.device_id,
            driver=self.kind,
            observed_at=utcnow(),
            identity=Identity(vendor="test", model="acting"),
        )
        sink.observe(observation)

    async def aclose(self) -> None:
        pass

    def capabilities(self, device_id: str) -> frozenset[str]:
        assert device_id == self.device_id
        return frozenset({"update", "restart"})

    async def act(self, request: ActionRequest) -> ActionResult:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if request.target_version == "crash":
            raise RuntimeError("driver bug")
        return ActionResult(
            device_id=request.device_id,
            action=request.action,
            state=ActionState.SUCCEEDED,
            operation_id=f"op-{len(self.requests)}",
            detail=f"now on {request.target_version}",
            history=["pending", "done"],
        )


class ActingPool:
    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.drivers: list[ActingDriver] = []
        self.gate = gate

    def __call__(self, device: Any) -> ActingDriver:
        driver = ActingDriver(device.id, self.gate)
        self.drivers.append(driver)
        return driver

    @property
    def calls(self) -> int:
        return sum(len(d.requests) for d in self.drivers)


KEY = Ed25519PrivateKey.generate()


def _settings(broker: MosquittoBroker, prefix: str, tmp_path: Path) -> AgentSettings:
    base = agent_settings(broker, prefix, tmp_path, devices=1).model_dump(mode="json")
    base["controller"] = {"command_key": c.public_key_text(KEY.public_key())}
    base["shutdown"] = {"drain_s": 0}  # no controller confirms observations here: do not wait for one
    return AgentSettings.model_validate(base)


def _channel(broker: MosquittoBroker, prefix: str, clock: Any = None) -> CommandChannel:
    mqtt = MqttSettings(
        host=broker.host,
        port=broker.port,
        prefix=prefix,
        client_id=f"ctl-{uuid.uuid4().hex[:8]}",
        reconnect_max_s=1.0,
    )
    if clock is None:
        return CommandChannel(mqtt, KEY, publish_timeout_s=5)
    return CommandChannel(mqtt, KEY, publish_timeout_s=5, clock=clock)


@contextlib.asynccontextmanager
async def running_agent(settings: AgentSettings, pool: ActingPool) -> AsyncIterator[AgentService]:
    service = AgentService(settings, driver_factory=pool)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(service.run(stop))
        async with asyncio.timeout(15):
            await service.ready.wait()
            assert service.commands is not None
            await service.commands.subscribed.wait()
            while service.sources.source_of(DEVICE) is None:  # a source is known from its first poll
                await asyncio.sleep(0.05)
        try:
            yield service
        finally:
            stop.set()


@contextlib.asynccontextmanager
async def running_channel(channel: CommandChannel) -> AsyncIterator[asyncio.Queue[tuple[str, ActionResult]]]:
    results: asyncio.Queue[tuple[str, ActionResult]] = asyncio.Queue()
    channel.on_result(lambda job, result, **_origin: results.put_nowait((job, result)))
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(channel.run(stop))
        async with asyncio.timeout(10):
            await channel.connected.wait()
        try:
            yield results
        finally:
            stop.set()


def _reports(rx: Receiver) -> list[CommandResult]:
    out = []
    for m in rx.messages:
        if m.topic.endswith("/cmd_result"):
            _, message = decode(m.topic, m.payload, prefix=rx.prefix)
            assert isinstance(message, CommandResult)
            out.append(message)
    return out


def _commands(rx: Receiver) -> list[bytes]:
    return [m.payload for m in rx.messages if m.topic.endswith(f"/{SITE}/cmd")]


def _request(**changes: Any) -> ActionRequest:
    fields: dict[str, Any] = {
        "device_id": DEVICE,
        "action": ActionKind.UPDATE,
        "target_version": "RoomOS 11.14.2.3",
        "deadline": datetime.now(UTC) + timedelta(minutes=30),
        **changes,
    }
    return ActionRequest(**fields)


async def test_a_valid_command_runs_once_even_when_delivered_twice(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    pool = ActingPool()
    channel = _channel(mosquitto, topic_prefix)
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        running_agent(_settings(mosquitto, topic_prefix, tmp_path), pool) as service,
        running_channel(channel) as results,
    ):
        expires = datetime.now(UTC) + timedelta(minutes=10)
        command_id = await channel.send(SITE, _request(), expires_at=expires, job_id="job-1")
        async with asyncio.timeout(15):
            job, result = await results.get()
        assert (job, result.state, result.operation_id) == ("job-1", ActionState.SUCCEEDED, "op-1")
        assert pool.drivers[0].requests[0].target_version == "RoomOS 11.14.2.3"
        # The same signed bytes again, as a QoS 1 redelivery (or a replay) would bring them.
        await rx.wait_for(lambda: len(_commands(rx)) == 1)
        original = _commands(rx)[0]
        await _publish(rx, original)
        await rx.wait_for(lambda: any(r.refusal == c.REPLAYED for r in _reports(rx)))
        replayed = next(r for r in _reports(rx) if r.refusal == c.REPLAYED)
        assert str(replayed.command_id) == command_id
        assert replayed.result is not None  # the first run's result travels with the refusal
        assert replayed.result.operation_id == "op-1"
        assert pool.calls == 1
        assert service.metrics.value("fernwart_commands_refused_total", reason=c.REPLAYED) == 1
        assert service.metrics.value("fernwart_commands_executed_total", state="succeeded") == 1
        assert _outcomes(channel, "duplicate") == 1
        assert results.empty()  # the controller handed the result on once


async def test_a_replay_after_the_agent_restarted_is_refused(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(mosquitto, topic_prefix, tmp_path)
    first, second = ActingPool(), ActingPool()
    channel = _channel(mosquitto, topic_prefix)
    async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx:
        async with running_agent(settings, first), running_channel(channel) as results:
            expires = datetime.now(UTC) + timedelta(minutes=10)
            await channel.send(SITE, _request(action=ActionKind.RESTART), expires_at=expires, job_id="job-2")
            async with asyncio.timeout(15):
                await results.get()
        assert first.calls == 1
        await rx.wait_for(lambda: len(_commands(rx)) == 1)
        async with running_agent(settings, second) as service:
            await _publish(rx, _commands(rx)[0])
            await rx.wait_for(lambda: any(r.refusal == c.REPLAYED for r in _reports(rx)))
            assert service.metrics.value("fernwart_commands_refused_total", reason=c.REPLAYED) == 1
        assert second.calls == 0


def _forged(code: str) -> tuple[str, bytes]:
    """(refusal code expected, payload) for one kind of forgery."""
    now = datetime.now(UTC)
    request = _request()

    def envelope(site: str = SITE, issued: datetime = now, lifetime: timedelta = timedelta(hours=1)) -> Any:
        return c.envelope_for(site, request, issued_at=issued, expires_at=issued + lifetime, job_id="job-x")

    match code:
        case c.UNSIGNED:
            return code, encode(c.sign(envelope(), KEY).model_copy(update={"signature": ""}))
        case c.BAD_SIGNATURE:
            return code, encode(c.sign(envelope(), Ed25519PrivateKey.generate()))
        case c.EXPIRED:
            return code, encode(c.sign(envelope(issued=now - timedelta(hours=2)), KEY))
        case c.NOT_YET_VALID:
            return code, encode(c.sign(envelope(issued=now + timedelta(hours=1)), KEY))
        case c.WRONG_SITE:  # a command for site-2, replayed onto site-1's topic
            return code, encode(c.sign(envelope(site="site-2"), KEY).model_copy(update={"site_id": SITE}))
    raise AssertionError(code)


@pytest.mark.parametrize("code", [c.UNSIGNED, c.BAD_SIGNATURE, c.EXPIRED, c.NOT_YET_VALID, c.WRONG_SITE])
async def test_forged_commands_are_refused_and_reported_with_the_reason(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path, code: str
) -> None:
    pool = ActingPool()
    expected, payload = _forged(code)
    with structlog.testing.capture_logs() as logs:
        async with (
            receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
            running_agent(_settings(mosquitto, topic_prefix, tmp_path), pool) as service,
        ):
            await _publish(rx, payload)
            await rx.wait_for(lambda: len(_reports(rx)) == 1)
            report = _reports(rx)[0]
            assert service.metrics.value("fernwart_commands_refused_total", reason=expected) == 1
    assert (report.refusal, report.ok, report.result) == (expected, False, None)
    assert report.device_id == DEVICE
    assert report.detail
    assert pool.calls == 0
    refusals = [e for e in logs if e["event"] == "command_refused"]
    assert [e["reason_code"] for e in refusals] == [expected]  # logged once, with the reason
    sent = decode_command(payload)
    for secret in (sent.signature, c.public_key_text(KEY.public_key())):
        if secret:
            assert secret not in repr(logs)
            assert secret.encode() not in b"".join(
                m.payload for m in rx.messages if m.topic.endswith("_result")
            )


async def test_a_refusal_after_the_signature_ends_the_job_at_the_controller(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """A controller whose clock runs two hours behind sends commands that arrive expired: the
    agent refuses them and the campaign's callback gets a failed result saying why."""
    pool = ActingPool()
    channel = _channel(mosquitto, topic_prefix, clock=lambda: datetime.now(UTC) - timedelta(hours=2))
    async with (
        running_agent(_settings(mosquitto, topic_prefix, tmp_path), pool),
        running_channel(channel) as results,
    ):
        expires = datetime.now(UTC) - timedelta(hours=1)
        await channel.send(SITE, _request(), expires_at=expires, job_id="job-3")
        async with asyncio.timeout(15):
            job, result = await results.get()
    assert (job, result.state) == ("job-3", ActionState.FAILED)
    assert result.detail.startswith("refused: expired")
    assert pool.calls == 0


async def test_an_unauthenticated_refusal_never_ends_a_job(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """A command is on its way (sent before the agent was up, so it waits in no queue); someone
    publishes a forgery claiming its id: the agent refuses that as bad_signature, and the
    controller does not let the refusal end the real job."""
    pool = ActingPool()
    channel = _channel(mosquitto, topic_prefix)
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        running_channel(channel) as results,
    ):
        expires = datetime.now(UTC) + timedelta(minutes=10)
        command_id = await channel.send(SITE, _request(), expires_at=expires, job_id="job-4")
        async with running_agent(_settings(mosquitto, topic_prefix, tmp_path), pool):
            now = datetime.now(UTC)
            forged = c.envelope_for(
                SITE,
                _request(),
                issued_at=now,
                expires_at=expires,
                job_id="job-4",
                command_id=uuid.UUID(command_id),
            )
            await _publish(rx, encode(c.sign(forged, Ed25519PrivateKey.generate())))
            await _eventually(lambda: _outcomes(channel, "unauthenticated") == 1)
    assert [(str(r.command_id), r.refusal) for r in _reports(rx)] == [(command_id, c.BAD_SIGNATURE)]
    assert results.empty()
    assert pool.calls == 0


def decode_command(payload: bytes) -> Any:
    from collector.wire.messages import Command  # noqa: PLC0415 - only this helper needs it

    return Command.model_validate_json(payload)


async def _publish(rx: Receiver, payload: bytes) -> None:
    import aiomqtt  # noqa: PLC0415 - the attacker's (or the broker's redelivery's) own client

    async with aiomqtt.Client(
        rx.host, rx.port, identifier=f"pub-{uuid.uuid4().hex[:8]}", timeout=5
    ) as client:
        await client.publish(f"{rx.prefix}/{SITE}/cmd", payload, qos=1)


async def _eventually(predicate: Any, timeout_s: float = 15) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("pool_kind", "device", "version", "state", "detail"),
    [
        ("counting", DEVICE, "1.2", ActionState.MANUAL, "has no vendor API to update"),
        ("acting", "dev-elsewhere", "1.2", ActionState.FAILED, "is not served by agent agent-1"),
        ("acting", DEVICE, "crash", ActionState.FAILED, "driver error: RuntimeError: driver bug"),
    ],
)
async def test_what_cannot_be_done_is_reported_never_pretended(
    mosquitto: MosquittoBroker,
    topic_prefix: str,
    tmp_path: Path,
    pool_kind: str,
    device: str,
    version: str,
    state: ActionState,
    detail: str,
) -> None:
    pool: Any = DriverPool() if pool_kind == "counting" else ActingPool()
    channel = _channel(mosquitto, topic_prefix)
    async with (
        running_agent(_settings(mosquitto, topic_prefix, tmp_path), pool) as service,
        running_channel(channel) as results,
    ):
        expires = datetime.now(UTC) + timedelta(minutes=10)
        request = _request(device_id=device, target_version=version)
        await channel.send(SITE, request, expires_at=expires, job_id="job-5")
        async with asyncio.timeout(15):
            job, result = await results.get()
        assert service.metrics.value("fernwart_commands_executed_total", state=state.value) == 1
    assert (job, result.state, result.device_id) == ("job-5", state, device)
    assert detail in result.detail
    if state is ActionState.MANUAL:
        assert result.manual_steps


async def test_without_its_state_file_the_agent_executes_nothing_but_keeps_polling(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    raw = _settings(mosquitto, topic_prefix, tmp_path).model_dump(mode="json")
    raw["controller"]["state_path"] = str(blocker / "commands.db")
    pool = ActingPool()
    service = AgentService(AgentSettings.model_validate(raw), driver_factory=pool)
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx, asyncio.TaskGroup() as tg:
            tg.create_task(service.run(stop))
            await rx.wait_for(lambda: len(rx.batches()) >= 2)  # polls go on
            stop.set()
    assert [e["path"] for e in logs if e["event"] == "commands_unavailable"] == [str(blocker / "commands.db")]


def _outcomes(channel: CommandChannel, outcome: str) -> float:
    found = channel.metrics.registry.get_sample_value("fernwart_command_results_total", {"outcome": outcome})
    return found or 0.0


async def test_a_command_sent_while_the_agent_was_away_runs_when_it_is_back(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(mosquitto, topic_prefix, tmp_path)
    first, second = ActingPool(), ActingPool()
    channel = _channel(mosquitto, topic_prefix)
    async with running_channel(channel) as results:
        async with running_agent(settings, first):
            pass  # the broker now keeps the agent's command session
        expires = datetime.now(UTC) + timedelta(minutes=10)
        await channel.send(SITE, _request(), expires_at=expires, job_id="job-6")
        async with running_agent(settings, second):
            async with asyncio.timeout(15):
                job, result = await results.get()
    assert (job, result.state) == ("job-6", ActionState.SUCCEEDED)
    assert (first.calls, second.calls) == (0, 1)


async def test_a_result_finished_while_the_broker_was_down_goes_out_when_it_is_back(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    pool = ActingPool(gate)
    channel = _channel(mosquitto, topic_prefix)
    async with (
        running_agent(_settings(mosquitto, topic_prefix, tmp_path), pool) as service,
        running_channel(channel) as results,
    ):
        expires = datetime.now(UTC) + timedelta(minutes=10)
        await channel.send(SITE, _request(), expires_at=expires, job_id="job-7")
        await _eventually(lambda: pool.calls == 1)
        mosquitto.stop()
        gate.set()  # the update finishes while nobody can hear it
        await _eventually(
            lambda: service.metrics.value("fernwart_commands_executed_total", state="succeeded") == 1
        )
        mosquitto.start()
        async with asyncio.timeout(30):
            job, result = await results.get()
    assert (job, result.state, pool.calls) == ("job-7", ActionState.SUCCEEDED, 1)
