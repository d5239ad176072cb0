"""A faster :func:`collector.wire.decode` for the controller's hot path, with the same outcome.

Valid messages are parsed and validated in one step by pydantic-core (``validate_json``), about
twice as fast as ``json.loads`` followed by ``validate_python``. Anything the fast path does not
accept goes through :func:`collector.wire.decode`, so every rejection carries exactly the
codec's reason code and message. The models' ``schema`` and ``type`` fields are literals, so a
message the fast path accepts has the schema version and type the codec checks for.
"""

from __future__ import annotations

from typing import Final

from pydantic import TypeAdapter, ValidationError

from collector import wire
from collector.wire import AgentStatus, CommandResult, Heartbeat, ObservationBatch, Topic, TopicKind
from collector.wire.codec import Message
from collector.wire.topics import TopicError, parse_topic

_FAST: Final[dict[TopicKind, TypeAdapter[ObservationBatch | AgentStatus | CommandResult | Heartbeat]]] = {
    TopicKind.OBS: TypeAdapter(ObservationBatch),
    TopicKind.STATUS: TypeAdapter(AgentStatus),
    TopicKind.CMD_RESULT: TypeAdapter(CommandResult),
    TopicKind.HEARTBEAT: TypeAdapter(Heartbeat),
}


def decode(
    topic_name: str,
    payload: bytes | bytearray,
    *,
    prefix: str = "fernwart/v1",
    max_payload: int = wire.DEFAULT_MAX_PAYLOAD,
) -> tuple[Topic, Message]:
    """Like :func:`collector.wire.decode`; raises :class:`collector.wire.DecodeError` only."""
    if len(payload) <= max_payload:
        try:
            topic = parse_topic(topic_name, prefix)
            adapter = _FAST.get(topic.kind)
            if adapter is not None:
                message = adapter.validate_json(payload)
                if message.site_id == topic.site_id:
                    return topic, message
        except (TopicError, ValidationError, ValueError, RecursionError):
            pass  # the codec says precisely what is wrong
    return wire.decode(topic_name, payload, prefix=prefix, max_payload=max_payload)
