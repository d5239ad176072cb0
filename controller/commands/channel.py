"""The controller's command channel: sign, publish at QoS 1, and take the agents' results.

:meth:`CommandChannel.send` is what the campaign runner calls (controller/campaigns): it signs an
``ActionRequest`` for one site (:mod:`collector.wire.commands`) and publishes it on
``{prefix}/{site}/cmd``; agents answer on ``{prefix}/{site}/cmd_result``. Each result is handled
once per command id (a QoS 1 redelivery or an agent's re-send is counted as ``duplicate``) and
handed to the registered ``on_result(job_id, ActionResult)``. An agent's refusal becomes a
``failed`` ActionResult whose detail starts with ``refused: <code>`` — but only for the codes an
agent raises after the signature verified (``expired``, ``not_yet_valid``, ``wrong_site``,
``replayed``): an ``unsigned`` or ``bad_signature`` refusal names a command id someone else
claimed, so it is counted and logged, never allowed to end a real job.

Results are also stored by the ingest stage (``command_results``); this channel is the live
path the campaign runner waits on. Outcome codes are metric labels: ``executed``, ``refused``,
``duplicate``, ``unknown_command``, ``wrong_site``, ``rejected`` (undecodable), ``unauthenticated``,
``pending`` (a refused replay of a command still running).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import aiomqtt
import structlog
from prometheus_client import CollectorRegistry, Counter

from collector.wire import ActionResult, ActionState, CommandResult, DecodeError, decode, encode
from collector.wire.commands import AUTHENTICATED_CODES, REFUSAL_CODES, REPLAYED, envelope_for, sign
from collector.wire.topics import TopicKind, subscription, topic
from runtime.backoff import Backoff
from runtime.config import tls_context
from runtime.mqtt import retrieve_connection_errors, set_connect_timeout, without_cycles

if TYPE_CHECKING:
    import uuid
    from collections.abc import Awaitable, Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from collector.wire import ActionRequest
    from controller.settings import MqttSettings

    ResultCallback = Callable[..., Awaitable[None] | None]

log = structlog.get_logger(__name__)

OUTCOMES: Final = (
    "executed",
    "refused",
    "duplicate",
    "unknown_command",
    "wrong_site",
    "rejected",
    "unauthenticated",
    "pending",
)


class ChannelUnavailable(Exception):
    """The command could not be handed to the broker (not connected, or no PUBACK in time)."""


@dataclass(frozen=True, slots=True)
class _Sent:
    site_id: str
    job_id: str
    request: ActionRequest
    expires_at: datetime


# A command nobody answered is forgotten this long after its expiry: an agent verifies expiry
# before it executes, so a result can only come from a run that started before it, delivered late
# (the broker kept it while the controller was away). A result after that still reaches the
# consumer by its job id, which checks site, device and command id itself.
_FORGET_AFTER = timedelta(days=1)


class CommandMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sent = Counter(
            "fernwart_commands_sent", "Signed commands the broker accepted", registry=self.registry
        )
        results = Counter(
            "fernwart_command_results", "Agent results by outcome", ["outcome"], registry=self.registry
        )
        self.results = {outcome: results.labels(outcome=outcome) for outcome in OUTCOMES}
        refusals = Counter(
            "fernwart_command_refusals",
            "Commands agents refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.refusals = {code: refusals.labels(reason=code) for code in REFUSAL_CODES}
        self.forgotten = Counter(
            "fernwart_commands_forgotten",
            "Commands never answered, forgotten a day after their expiry",
            registry=self.registry,
        )


class CommandChannel:
    """One MQTT session for commands and their results; ``run`` keeps it connected."""

    def __init__(
        self,
        mqtt: MqttSettings,
        key: Ed25519PrivateKey,
        *,
        publish_timeout_s: float = 10.0,
        remember_results: int = 100_000,
        metrics: CommandMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._mqtt = mqtt
        self._key = key
        self._publish_timeout_s = publish_timeout_s
        self._remember = remember_results
        self.metrics = metrics if metrics is not None else CommandMetrics()
        self._clock = clock
        self._callbacks: list[ResultCallback] = []
        self._sent: dict[uuid.UUID, _Sent] = {}
        self._finished: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._next_forget = datetime.min.replace(tzinfo=UTC)
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()

    def on_result(self, callback: ResultCallback) -> None:
        """Register ``callback(job_id, ActionResult, site_id=…, command_id=…)``; called once per
        command id. The job id is the agent's claim: the site (from the topic, which the broker's
        ACL ties to the agent) and the command id let the consumer check the result belongs."""
        self._callbacks.append(callback)

    async def send(self, site_id: str, request: ActionRequest, *, expires_at: datetime, job_id: str) -> str:
        """Sign ``request`` for ``site_id`` and publish it (QoS 1); returns the command id (the
        shape of ``controller.campaigns.channel.CommandChannel``).

        Raises :class:`ValueError` for an expiry not after now (or beyond the agents' lifetime
        bound) and :class:`ChannelUnavailable` when the broker did not take it in time.
        """
        envelope = envelope_for(
            site_id, request, issued_at=self._clock(), expires_at=expires_at, job_id=job_id
        )
        name = topic(site_id, TopicKind.CMD, self._mqtt.prefix)
        self._forget_unanswered(envelope.issued_at)
        self._sent[envelope.command_id] = _Sent(site_id, job_id, request, envelope.expires_at)
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self.connected.wait()
                client = self._client
                if client is None:
                    raise ChannelUnavailable("not connected to the broker")
                await client.publish(name, encode(sign(envelope, self._key)), qos=1)
        except (TimeoutError, aiomqtt.MqttError) as err:
            self._sent.pop(envelope.command_id, None)
            why = "no broker connection or PUBACK" if isinstance(err, TimeoutError) else str(err)
            raise ChannelUnavailable(f"command for {site_id}/{request.device_id} not sent: {why}") from None
        self.metrics.sent.inc()
        log.info(
            "command_sent",
            command_id=str(envelope.command_id),
            site=site_id,
            device=request.device_id,
            action=request.action.value,
            job_id=job_id,
            expires_at=envelope.expires_at.isoformat(),
        )
        return str(envelope.command_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected (capped, jittered backoff) and take results until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            session = tg.create_task(self._session_loop(), name="command-session")
            await stop.wait()
            session.cancel()

    def _make_client(self) -> aiomqtt.Client:
        m = self._mqtt
        client = aiomqtt.Client(
            m.host,
            m.port,
            username=m.username,
            password=m.password.get_secret_value() if m.password else None,
            identifier=f"{m.client_id}-commands"[:128],
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,  # results published while the controller is away are queued
            keepalive=m.keepalive_s,
            timeout=self._publish_timeout_s,
            tls_context=tls_context(m.tls),
        )
        set_connect_timeout(client, min(self._publish_timeout_s, 5.0))
        return without_cycles(client)

    async def _session_loop(self) -> None:
        backoff = Backoff(0.5, self._mqtt.reconnect_max_s)
        while True:
            client = self._make_client()
            try:
                async with client:
                    await client.subscribe(subscription(TopicKind.CMD_RESULT, self._mqtt.prefix), qos=1)
                    backoff.reset()
                    self._client = client
                    self.connected.set()
                    log.info("command_channel_connected", host=self._mqtt.host, port=self._mqtt.port)
                    try:
                        async for message in client.messages:
                            payload = message.payload
                            data = payload if isinstance(payload, bytes | bytearray | str) else b""
                            await self.handle_result(message.topic.value, data)
                    finally:
                        self._client = None
                        self.connected.clear()
            except aiomqtt.MqttError as err:
                delay = backoff.next_delay()
                log.warning("command_channel_unavailable", error=str(err), retry_in_s=round(delay, 2))
            else:
                delay = backoff.next_delay()  # the broker ended the session without an error
            finally:
                retrieve_connection_errors(client)
            await asyncio.sleep(delay)

    async def handle_result(self, topic_name: str, payload: bytes | bytearray | str) -> str:
        """Take one message from a result topic; returns its outcome code (a metric label)."""
        outcome, detail = self._classify(topic_name, payload)
        self.metrics.results[outcome].inc()
        if isinstance(detail, tuple):
            await self._deliver(*detail)
        elif outcome not in {"duplicate", "executed", "refused"}:
            log.warning("command_result_not_used", outcome=outcome, reason=detail[:300])
        return outcome

    def _classify(  # noqa: PLR0911 - one return per outcome, in the order the checks run
        self, topic_name: str, payload: bytes | bytearray | str
    ) -> tuple[str, str | tuple[str, ActionResult, str, str]]:
        try:
            where, message = decode(topic_name, payload, prefix=self._mqtt.prefix)
        except DecodeError as err:
            return "rejected", f"{err.code}: {err.reason}"
        if not isinstance(message, CommandResult):
            return "rejected", f"{topic_name}: not a command result"
        if message.command_id in self._finished:
            return "duplicate", str(message.command_id)
        if message.refusal is not None:
            self.metrics.refusals.get(message.refusal, self.metrics.refusals["malformed"]).inc()
        sent = self._sent.get(message.command_id)
        if sent is not None and sent.site_id != where.site_id:
            return (
                "wrong_site",
                f"command {message.command_id} was sent to {sent.site_id}, not {where.site_id}",
            )
        if message.refusal is not None and message.refusal not in AUTHENTICATED_CODES:
            log.warning(
                "command_refused_unauthenticated",
                site=where.site_id,
                claimed_command_id=str(message.command_id),
                reason_code=message.refusal,
                reason=message.detail[:300],
            )
            return "unauthenticated", message.refusal
        job_id = sent.job_id if sent is not None else message.job_id
        found = self._result_of(message, sent)
        if isinstance(found, tuple):
            return found
        outcome, result = ("executed" if message.result is not None else "refused"), found
        if job_id is None:
            return "unknown_command", f"command {message.command_id}: no job id"
        self._finish(message.command_id)
        log.info(
            "command_result",
            command_id=str(message.command_id),
            site=where.site_id,
            device=message.device_id,
            job_id=job_id,
            state=result.state.value,
            refusal=message.refusal,
        )
        return outcome, (job_id, result, where.site_id, str(message.command_id))

    @staticmethod
    def _result_of(message: CommandResult, sent: _Sent | None) -> ActionResult | tuple[str, str]:
        """The ActionResult a result message stands for, or (outcome, why) when there is none."""
        if message.result is not None:
            if message.result.device_id != message.device_id:
                why = f"result for device {message.result.device_id}, command for {message.device_id}"
                return "rejected", why
            return message.result
        if message.refusal == REPLAYED:
            return "pending", f"command {message.command_id} replayed while its first run has no result"
        if sent is None or message.refusal is None:
            return "unknown_command", f"command {message.command_id}: not sent by this controller"
        return ActionResult(
            device_id=message.device_id,
            action=sent.request.action,
            state=ActionState.FAILED,
            detail=f"refused: {message.refusal}: {message.detail}"[:1024],
        )

    def _forget_unanswered(self, now: datetime) -> None:
        """Drop commands whose expiry is more than :data:`_FORGET_AFTER` past (memory stays bounded
        by what was sent in the last day or so, not by everything ever sent without an answer)."""
        if now < self._next_forget:
            return
        self._next_forget = now + timedelta(minutes=1)
        stale = [cid for cid, sent in self._sent.items() if sent.expires_at + _FORGET_AFTER < now]
        for command_id in stale:
            del self._sent[command_id]
        if stale:
            self.metrics.forgotten.inc(len(stale))
            log.info("commands_forgotten_unanswered", count=len(stale))

    def _finish(self, command_id: uuid.UUID) -> None:
        self._sent.pop(command_id, None)
        self._finished[command_id] = None
        while len(self._finished) > self._remember:
            self._finished.popitem(last=False)

    async def _deliver(self, job_id: str, result: ActionResult, site_id: str, command_id: str) -> None:
        for callback in self._callbacks:
            try:
                outcome = callback(job_id, result, site_id=site_id, command_id=command_id)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as err:  # one failing consumer must not stop the results
                log.warning(
                    "command_result_callback_failed", job_id=job_id, error=f"{type(err).__name__}: {err}"
                )
