"""THE MQTT contract shared by agent and controller (pure pydantic, no I/O)."""

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
    "SCHEMA_VERSION",
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
