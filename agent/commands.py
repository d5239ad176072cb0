"""Signed commands: verify, remember, execute once through the device's source, report.

The agent takes commands on ``{prefix}/{site}/cmd`` in a session of its own (client id
``…-cmd``, persistent, QoS 1), so a long update never holds up observations and commands
published while the agent was away are delivered when it is back. Each command is checked by
:func:`collector.wire.commands.verify_command` (signature with the controller's key from
``[controller]``, site, clock skew, expiry); then its id is recorded in SQLite (``commands.db``
beside the outbox, synchronous=FULL) *before* the driver is called, so a command delivered twice,
or replayed after a restart, is refused as ``replayed`` and never executed twice. Ids are kept
until the command expires; after that the expiry check refuses it anyway.

The action runs through the source serving the device (:class:`SourceLookup`:
:class:`agent.sources.SourceSet`): a source with the :class:`~collector.base.Acts` capability
acts, any other gets a ``manual`` result, never a pretended success; a device no source reports
(yet: a tenant's devices are known from its first listing) gets a ``failed`` one. The
:class:`~collector.actions.ActionResult` is stored, then published on ``{site}/cmd_result``; a
result not yet published (the broker was away) goes out at the next connection. A refusal is
published with its code, counted in ``fernwart_commands_refused_total`` and logged once, with
the reason and the claimed command id, never the signature or a key.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import aiomqtt
import structlog

from agent.command_state import SeenCommands
from collector.actions import ActionResult, ActionState
from collector.base import Acts
from collector.model import IDENT_PATTERN
from collector.wire.codec import encode
from collector.wire.commands import REPLAYED, CommandEnvelope, CommandRefused, verify_command
from collector.wire.messages import CommandResult
from collector.wire.topics import TopicKind, topic
from runtime.backoff import Backoff
from runtime.config import tls_context
from runtime.mqtt import retrieve_connection_errors, set_connect_timeout, without_cycles

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from agent.metrics import AgentMetrics
    from agent.settings import AgentSettings

log = structlog.get_logger(__name__)

_IDENT = re.compile(IDENT_PATTERN)
_NIL = uuid.UUID(int=0)
_GRACE_S = 5.0  # past the request's deadline before the agent stops waiting for the driver itself


class SourceLookup(Protocol):
    """Which source serves a device: :class:`agent.sources.SourceSet` has this shape."""

    def source_of(self, device_id: str) -> str | None:
        """The id of the source reporting ``device_id``, or None: not a device of this agent."""
        ...

    def for_device(self, device_id: str) -> Acts | None:
        """The source that can act on ``device_id``; None also when its driver cannot act."""
        ...


class CommandExecutor:
    """The agent's command session. ``run`` returns once ``stop`` is set."""

    def __init__(
        self,
        settings: AgentSettings,
        key: Ed25519PublicKey,
        sources: SourceLookup,
        metrics: AgentMetrics,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        assert settings.controller is not None
        self._settings = settings
        self._mqtt = settings.mqtt
        self._key = key
        self._sources = sources
        self._metrics = metrics
        self._clock = clock
        self._skew = timedelta(seconds=settings.controller.max_clock_skew_s)
        self._cmd_topic = topic(settings.site_id, TopicKind.CMD, settings.mqtt.prefix)
        self._result_topic = topic(settings.site_id, TopicKind.CMD_RESULT, settings.mqtt.prefix)
        self._client: aiomqtt.Client | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.seen: SeenCommands | None = None
        self.subscribed = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Take commands until ``stop``. Without its state file the agent executes no command
        (it could not refuse a replay), but polling goes on: logged once, then it waits."""
        path = self._settings.commands_path
        try:
            self.seen = await asyncio.to_thread(SeenCommands, path)
        except (sqlite3.Error, OSError) as err:
            log.error(  # noqa: TRY400 - the cause is logged; a traceback says nothing here
                "commands_unavailable", path=str(path), error=f"{type(err).__name__}: {err}"
            )
            await stop.wait()
            return
        try:
            async with asyncio.TaskGroup() as tg:
                session = tg.create_task(self._session_loop(tg), name="commands")
                await stop.wait()
                session.cancel()
                for task in self._running:  # the vendor's operation goes on; we stop following it
                    task.cancel()
        finally:
            self.seen.close()

    def _make_client(self) -> aiomqtt.Client:
        m = self._mqtt
        client = aiomqtt.Client(
            m.host,
            m.port,
            username=m.username,
            password=m.password.get_secret_value() if m.password else None,
            identifier=f"{self._settings.client_id}-cmd"[:128],
            clean_session=False,  # commands published while the agent is away wait at the broker
            keepalive=m.keepalive_s,
            timeout=m.connect_timeout_s,
            tls_context=tls_context(m.tls),
        )
        set_connect_timeout(client, m.connect_timeout_s)
        return without_cycles(client)

    async def _session_loop(self, tg: asyncio.TaskGroup) -> None:
        backoff = Backoff(self._mqtt.backoff.min_s, self._mqtt.backoff.max_s)
        while True:
            client = self._make_client()
            try:
                async with client:
                    await client.subscribe(self._cmd_topic, qos=1, timeout=self._mqtt.publish_timeout_s)
                    backoff.reset()
                    self._client = client
                    self.subscribed.set()
                    await self._flush_unreported()
                    try:
                        async for message in client.messages:
                            payload = message.payload
                            data = payload if isinstance(payload, bytes | bytearray | str) else b""
                            await self.received(message.topic.value, data, tg)
                    finally:
                        self._client = None
                        self.subscribed.clear()
            except aiomqtt.MqttError as err:
                delay = backoff.next_delay()
                log.debug("command_session_lost", error=str(err), retry_in_s=round(delay, 2))
            else:
                delay = backoff.next_delay()
            finally:
                retrieve_connection_errors(client)
            await asyncio.sleep(delay)

    async def received(
        self, topic_name: str, payload: bytes | bytearray | str, tg: asyncio.TaskGroup
    ) -> None:
        """Check one command; start its execution in ``tg`` or publish its refusal."""
        assert self.seen is not None
        try:
            envelope = verify_command(
                topic_name,
                payload,
                key=self._key,
                site_id=self._settings.site_id,
                now=self._clock(),
                max_skew=self._skew,
                prefix=self._mqtt.prefix,
            )
            try:
                fresh = await asyncio.to_thread(self.seen.claim, envelope)
            except sqlite3.Error as err:  # not recorded, so not executed: exactly once over all else
                log.error(  # noqa: TRY400 - as above
                    "command_not_recorded",
                    command_id=str(envelope.command_id),
                    error=f"{type(err).__name__}: {err}",
                )
                return
            if not fresh:
                raise CommandRefused(  # noqa: TRY301 - one refusal path for every code
                    REPLAYED,
                    "this command id was received before",
                    command_id=envelope.command_id,
                    device_id=envelope.device_id,
                    job_id=envelope.job_id,
                )
        except CommandRefused as refused:
            await self._refuse(refused)
            return
        task = tg.create_task(self._execute(envelope), name=f"command:{envelope.command_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _refuse(self, refused: CommandRefused) -> None:
        assert self.seen is not None
        self._metrics.commands_refused[refused.code].inc()
        command_id = refused.command_id or _NIL
        log.warning(
            "command_refused",
            reason_code=refused.code,
            reason=refused.reason[:300],
            command_id=str(command_id) if refused.command_id else None,
            device=refused.device_id,
            job_id=refused.job_id,
        )
        earlier = await asyncio.to_thread(self.seen.result, command_id) if refused.code == REPLAYED else None
        device = refused.device_id if refused.device_id and _IDENT.match(refused.device_id) else "unknown"
        job = refused.job_id[:128] if refused.job_id else None
        message = self._message(command_id, device, job, refusal=refused.code, detail=refused.reason)
        if earlier is not None:
            message = message.model_copy(
                update={"result": earlier, "ok": earlier.state is ActionState.SUCCEEDED}
            )
        await self._publish(message)

    async def _execute(self, envelope: CommandEnvelope) -> None:
        """Run one command; whatever fails here is logged, never allowed to stop the agent."""
        try:
            await self._execute_once(envelope)
        except (sqlite3.Error, OSError, ValueError) as err:
            log.error(  # noqa: TRY400 - as above
                "command_failed",
                command_id=str(envelope.command_id),
                error=f"{type(err).__name__}: {err}"[:500],
            )

    async def _execute_once(self, envelope: CommandEnvelope) -> None:
        assert self.seen is not None
        request = envelope.request()
        await self._settle(envelope)
        source = self._sources.for_device(envelope.device_id)
        log.info(
            "command_accepted",
            command_id=str(envelope.command_id),
            device=envelope.device_id,
            action=envelope.action.value,
            target_version=envelope.target_version,
            job_id=envelope.job_id,
        )
        if source is None and self._sources.source_of(envelope.device_id) is None:
            result = ActionResult(
                device_id=request.device_id,
                action=request.action,
                state=ActionState.FAILED,
                detail=f"device {request.device_id} is not served by agent {self._settings.agent_id}",
            )
        elif source is None:
            result = ActionResult(
                device_id=request.device_id,
                action=request.action,
                state=ActionState.MANUAL,
                detail=f"the driver of {request.device_id} has no vendor API to {request.action.value}",
                manual_steps=[f"{request.action.value} {request.device_id} by hand: its driver cannot"],
            )
        else:
            result = await self._act(source, envelope)
        await asyncio.to_thread(self.seen.store_result, envelope.command_id, result)
        self._metrics.commands_executed[result.state].inc()
        log.info(
            "command_executed",
            command_id=str(envelope.command_id),
            device=envelope.device_id,
            state=result.state.value,
            operation_id=result.operation_id,
        )
        await self._report(envelope.command_id, envelope.job_id, result)

    async def _settle(self, envelope: CommandEnvelope) -> None:
        """Wait until some source reports the device, for at most one poll of every source (a
        tenant's devices are known from its first listing; a command queued while the agent was
        away arrives before that) and never past the command's expiry."""
        s = self._settings
        polled = s.polled()
        settle_s = max((s.interval_for(e) + s.timeout_for(e) for e in polled), default=0.0)
        until = min(self._clock() + timedelta(seconds=settle_s), envelope.expires_at)
        while self._sources.source_of(envelope.device_id) is None and self._clock() < until:  # noqa: ASYNC110 - SourceSet has no event to wait on
            await asyncio.sleep(0.2)

    async def _act(self, source: Acts, envelope: CommandEnvelope) -> ActionResult:
        request = envelope.request()
        budget = max(0.0, (envelope.deadline - self._clock()).total_seconds()) + _GRACE_S
        try:
            async with asyncio.timeout(budget):
                return await source.act(request)
        except TimeoutError:
            state, detail = (
                ActionState.TIMED_OUT,
                f"no end state by the deadline {envelope.deadline.isoformat()}",
            )
        except Exception as err:  # a driver bug must end in a reported failure, not a lost command
            state, detail = ActionState.FAILED, f"driver error: {type(err).__name__}: {err}"[:1024]
        return ActionResult(device_id=request.device_id, action=request.action, state=state, detail=detail)

    def _message(
        self,
        command_id: uuid.UUID,
        device_id: str,
        job_id: str | None,
        *,
        result: ActionResult | None = None,
        refusal: str | None = None,
        detail: str = "",
    ) -> CommandResult:
        return CommandResult(
            site_id=self._settings.site_id,
            agent_id=self._settings.agent_id,
            sent_at=self._clock(),
            command_id=command_id,
            device_id=device_id,
            ok=result is not None and result.state is ActionState.SUCCEEDED,
            detail=(result.detail if result is not None else detail)[:1024],
            job_id=job_id,
            refusal=refusal,
            result=result,
        )

    async def _report(self, command_id: uuid.UUID, job_id: str, result: ActionResult) -> None:
        assert self.seen is not None
        if await self._publish(self._message(command_id, result.device_id, job_id, result=result)):
            await asyncio.to_thread(self.seen.mark_reported, command_id)

    async def _flush_unreported(self) -> None:
        assert self.seen is not None
        try:
            for command_id, job_id, result in await asyncio.to_thread(self.seen.unreported):
                await self._report(command_id, job_id, result)
            await asyncio.to_thread(self.seen.prune, self._clock())
        except sqlite3.Error as err:
            log.error(  # noqa: TRY400 - as above
                "command_results_unreadable", error=f"{type(err).__name__}: {err}"
            )

    async def _publish(self, message: CommandResult) -> bool:
        """True once the broker has it (PUBACK); False when not connected (sent at reconnect)."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(
                self._result_topic, encode(message), qos=1, timeout=self._mqtt.publish_timeout_s
            )
        except aiomqtt.MqttError as err:
            log.warning("command_result_not_sent", command_id=str(message.command_id), error=str(err))
            return False
        return True
