from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import wire
from collector.model import Identity, Observation, SoftwareComponent
from collector.wire import codec, topics


def _batch(site: str = "site-1", n: int = 1) -> wire.ObservationBatch:
    now = datetime.now(UTC)
    return wire.ObservationBatch(
        site_id=site,
        agent_id="agent-1",
        sent_at=now,
        batch_id=uuid.uuid4(),
        boot=3,
        seq=7,
        observations=[
            Observation(
                device_id=f"dev-{i}",
                driver="snmp",
                observed_at=now,
                identity=Identity(vendor="Cisco", model="Room Kit Pro", serial="FOC1"),
                software=[SoftwareComponent(name="firmware", version="RoomOS 11.14.2.3")],
            )
            for i in range(n)
        ],
    )


def test_observation_batch_round_trips() -> None:
    batch = _batch(n=3)
    topic, decoded = wire.decode("fernwart/v1/site-1/obs", wire.encode(batch))
    assert decoded == batch
    assert topic.site_id == "site-1"
    assert topic.kind is wire.TopicKind.OBS


@pytest.mark.parametrize(
    ("topic_name", "payload", "code"),
    [
        ("fernwart/v1/site-1/obs", b"{not json", codec.BAD_JSON),
        ("fernwart/v1/site-1/obs", b"[1,2]", codec.INVALID),
        ("fernwart/v1/site-1/obs", b'{"schema": 99}', codec.UNKNOWN_SCHEMA),
        ("fernwart/v1/site-1/obs", b"x" * (codec.DEFAULT_MAX_PAYLOAD + 1), codec.TOO_LARGE),
        ("fernwart/v1/site-1/nope", b"{}", codec.BAD_TOPIC),
        ("other/v1/site-1/obs", b"{}", codec.BAD_TOPIC),
        ("fernwart/v1/site-2/obs", None, codec.SITE_MISMATCH),
        ("fernwart/v1/site-1/status", None, codec.WRONG_TYPE),
    ],
)
def test_decode_rejects_with_a_code(topic_name: str, payload: bytes | None, code: str) -> None:
    body = payload if payload is not None else wire.encode(_batch())
    with pytest.raises(wire.DecodeError) as info:
        wire.decode(topic_name, body)
    assert info.value.code == code


def test_invalid_field_is_named() -> None:
    doc = json.loads(wire.encode(_batch()))
    doc["observations"][0]["uptime_s"] = "long"
    with pytest.raises(wire.DecodeError) as info:
        wire.decode("fernwart/v1/site-1/obs", json.dumps(doc).encode())
    assert info.value.code == codec.INVALID
    assert "observations.0.uptime_s" in info.value.reason


def test_deep_nesting_is_rejected_not_crashing() -> None:
    payload = b'{"schema":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(wire.DecodeError):
        wire.decode("fernwart/v1/site-1/obs", payload, max_payload=10**7)


@given(st.binary(max_size=512))
def test_decode_raises_only_decode_error(payload: bytes) -> None:
    with contextlib.suppress(wire.DecodeError):
        wire.decode("fernwart/v1/site-1/obs", payload)


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True), st.sampled_from(list(wire.TopicKind))
)
def test_topics_round_trip(site: str, kind: wire.TopicKind) -> None:
    name = topics.topic(site, kind)
    parsed = wire.parse_topic(name)
    assert (parsed.site_id, parsed.kind) == (site, kind)
