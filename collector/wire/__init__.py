"""THE MQTT contract shared by agent and controller (pure pydantic, no I/O).

``IDENT_PATTERN`` (site, agent and device ids, which appear in topics) is part of it: the
controller checks ids against it without importing anything of the collector but the wire.
So are the action shapes (:mod:`collector.actions`): a signed command carries an
``ActionRequest`` and its result an ``ActionResult``, and the controller names them from here.
"""

from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.model import IDENT_PATTERN
from collector.wire.codec import (
    DEFAULT_MAX_PAYLOAD,
    DecodeError,
    decode,
    encode,
)
from collector.wire.messages import (
    SCHEMA_VERSION,
    AgentState,
    AgentStatus,
    BatchAck,
    Command,
    CommandResult,
    Heartbeat,
    ObservationBatch,
)
from collector.wire.topics import Topic, TopicKind, parse_topic

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "IDENT_PATTERN",
    "SCHEMA_VERSION",
    "ActionKind",
    "ActionRequest",
    "ActionResult",
    "ActionState",
    "AgentState",
    "AgentStatus",
    "BatchAck",
    "Command",
    "CommandResult",
    "DecodeError",
    "Heartbeat",
    "ObservationBatch",
    "Topic",
    "TopicKind",
    "decode",
    "encode",
    "parse_topic",
]
