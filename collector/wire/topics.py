"""Topic layout, version 1.

    fernwart/v1/{site}/obs          agent → controller   ObservationBatch (QoS 1)
    fernwart/v1/{site}/status       agent → controller   AgentStatus (retained birth, last will)
    fernwart/v1/{site}/cmd          controller → agent   Command (QoS 1)
    fernwart/v1/{site}/cmd_result   agent → controller   CommandResult (QoS 1)
    fernwart/v1/{site}/ack          controller → agent   BatchAck (QoS 1): batches committed
    fernwart/v1/{site}/heartbeat    agent → controller   Heartbeat (QoS 0, every heartbeat_s)

Observations are per site, not per device: one message carries a batch of observations from one
agent, so the broker and the controller handle far fewer, larger messages (the ingest rate is
bounded by messages/s, not bytes). One agent is enrolled per site, so a site's topics are its
agent's: the broker ACL (``fernwart controller broker-config``, docs/broker.md) lets an agent
publish only its site's obs, status and cmd_result and read only its site's cmd.
A deployment may put everything under another root (``prefix``), e.g. one per test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PREFIX = "fernwart/v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class TopicKind(StrEnum):
    OBS = "obs"
    STATUS = "status"
    CMD = "cmd"
    CMD_RESULT = "cmd_result"
    ACK = "ack"
    HEARTBEAT = "heartbeat"


class TopicError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Topic:
    site_id: str
    kind: TopicKind
    prefix: str = DEFAULT_PREFIX

    def __str__(self) -> str:
        return f"{self.prefix}/{self.site_id}/{self.kind.value}"


def topic(site_id: str, kind: TopicKind, prefix: str = DEFAULT_PREFIX) -> str:
    if not _SEGMENT.match(site_id):
        raise TopicError(f"site id {site_id!r} is not a valid topic segment")
    return str(Topic(site_id, kind, prefix))


def subscription(kind: TopicKind, prefix: str = DEFAULT_PREFIX, share_group: str | None = None) -> str:
    """The filter a controller subscribes to; with ``share_group`` an MQTT 5 shared subscription."""
    base = f"{prefix}/+/{kind.value}"
    return f"$share/{share_group}/{base}" if share_group else base


def parse_topic(name: str, prefix: str = DEFAULT_PREFIX) -> Topic:
    """Split a concrete topic name; raises :class:`TopicError` naming what is wrong."""
    if not name.startswith(prefix + "/"):
        raise TopicError(f"topic {name!r} is not under {prefix!r}")
    rest = name[len(prefix) + 1 :].split("/")
    if len(rest) != 2:
        raise TopicError(f"topic {name!r}: expected {prefix}/{{site}}/{{kind}}")
    site_id, kind = rest
    if not _SEGMENT.match(site_id):
        raise TopicError(f"topic {name!r}: site segment {site_id!r} is invalid")
    try:
        topic_kind = TopicKind(kind)
    except ValueError:
        raise TopicError(f"topic {name!r}: unknown kind {kind!r}") from None
    return Topic(site_id, topic_kind, prefix)
