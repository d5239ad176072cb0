"""Encode and decode wire messages with a size limit and a schema-version check.

:func:`decode` raises only :class:`DecodeError`, whose ``code`` is a small, stable set used as a
metric label and whose ``reason`` names the field at fault.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final, cast

from pydantic import TypeAdapter, ValidationError

from collector.validation import clean_message
from collector.wire.messages import (
    SCHEMA_VERSION,
    AgentStatus,
    BatchAck,
    Command,
    CommandResult,
    Heartbeat,
    ObservationBatch,
)
from collector.wire.topics import TopicError, TopicKind, parse_topic

if TYPE_CHECKING:
    from pydantic import BaseModel

    from collector.wire.topics import Topic

DEFAULT_MAX_PAYLOAD: Final = 1024 * 1024  # bytes; a batch of 1,000 small observations fits

# Stable reason codes (metric label values).
TOO_LARGE: Final = "too_large"
BAD_TOPIC: Final = "bad_topic"
BAD_JSON: Final = "bad_json"
UNKNOWN_SCHEMA: Final = "unknown_schema"
INVALID: Final = "invalid"
SITE_MISMATCH: Final = "site_mismatch"
WRONG_TYPE: Final = "wrong_type"
REASON_CODES: Final = (TOO_LARGE, BAD_TOPIC, BAD_JSON, UNKNOWN_SCHEMA, INVALID, SITE_MISMATCH, WRONG_TYPE)

_MODELS: Final[dict[TopicKind, type[BaseModel]]] = {
    TopicKind.OBS: ObservationBatch,
    TopicKind.STATUS: AgentStatus,
    TopicKind.CMD: Command,
    TopicKind.CMD_RESULT: CommandResult,
    TopicKind.ACK: BatchAck,
    TopicKind.HEARTBEAT: Heartbeat,
}
_ADAPTERS: Final = {kind: TypeAdapter(model) for kind, model in _MODELS.items()}

Message = ObservationBatch | AgentStatus | Command | CommandResult | BatchAck | Heartbeat


class DecodeError(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_none=True).encode()


def _format_validation(err: ValidationError, limit: int = 5) -> str:
    parts = []
    for item in err.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{loc}: {clean_message(item['msg'])}")
    more = err.error_count() - limit
    if more > 0:
        parts.append(f"… and {more} more")
    return "; ".join(parts)


def decode(
    topic_name: str,
    payload: bytes | bytearray | str,
    *,
    prefix: str = "fernwart/v1",
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> tuple[Topic, Message]:
    """Decode ``payload`` received on ``topic_name``.

    Checks, in order: size, topic, JSON, schema version, message shape, and that the site in
    the topic is the site the message claims. Raises :class:`DecodeError` and nothing else.
    """
    if len(payload) > max_payload:
        raise DecodeError(TOO_LARGE, f"payload of {len(payload)} bytes exceeds {max_payload}")
    try:
        topic = parse_topic(topic_name, prefix)
    except TopicError as err:
        raise DecodeError(BAD_TOPIC, str(err)) from None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise DecodeError(BAD_JSON, f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise DecodeError(INVALID, f"(root): expected an object, got {type(doc).__name__}")
    schema = doc.get("schema")
    if schema != SCHEMA_VERSION:
        raise DecodeError(UNKNOWN_SCHEMA, f"schema: expected {SCHEMA_VERSION}, got {schema!r}")
    expected_type = topic.kind.value
    if doc.get("type", expected_type) != expected_type:
        raise DecodeError(
            WRONG_TYPE, f"type: expected {expected_type!r} on this topic, got {doc.get('type')!r}"
        )
    try:
        message = cast("Message", _ADAPTERS[topic.kind].validate_python(doc))
    except ValidationError as err:
        raise DecodeError(INVALID, _format_validation(err)) from None
    except RecursionError:
        raise DecodeError(INVALID, "(root): nested too deeply") from None
    if message.site_id != topic.site_id:
        raise DecodeError(
            SITE_MISMATCH,
            f"site_id: message claims {message.site_id!r} but was published under site {topic.site_id!r}",
        )
    return topic, message
