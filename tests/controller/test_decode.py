"""controller.ingest.decode (the fast path) has exactly the outcome of collector.wire.decode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import wire
from collector.wire import encode
from controller.ingest.decode import decode
from tests.controller.conftest import make_batch, make_observation, make_status

PREFIX = "fernwart/v1"
OBS = f"{PREFIX}/site-1/obs"


def _outcome(fn: Any, topic: str, payload: bytes) -> Any:
    try:
        return fn(topic, payload, prefix=PREFIX, max_payload=64 * 1024)
    except wire.DecodeError as err:
        return ("error", err.code, err.reason)


def _good() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode(make_batch("site-1", "agent-1", 3, [make_observation("d1")])))
    return doc


def _mutations() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = [
        (OBS, encode(make_batch("site-1", "agent-1", 0, [make_observation("d1"), make_observation("d2")]))),
        (f"{PREFIX}/site-1/status", encode(make_status("site-1", "agent-1", intervals={"d1": 5.0}))),
        (OBS, b"{not json"),
        (OBS, b"[]"),
        (OBS, b"\xff\xfe"),
        (OBS, b'{"schema": 1, "site_id": "site-1", "x": NaN}'),
        (OBS, b" " * (64 * 1024 + 1)),
        (f"{PREFIX}/site-2/obs", encode(make_batch("site-1", "agent-1", 0, [make_observation("d1")]))),
        (f"{PREFIX}/bad site/obs", encode(make_batch("site-1", "agent-1", 0, [make_observation("d1")]))),
        (f"{PREFIX}/site-1/status", encode(make_batch("site-1", "agent-1", 0, [make_observation("d1")]))),
    ]
    for key, value in (
        ("schema", 2),
        ("schema", "1"),
        ("seq", "7"),
        ("seq", -1),
        ("boot", 1.5),
        ("type", "status"),
        ("batch_id", "not-a-uuid"),
        ("observations", []),
        ("sent_at", "yesterday"),
        ("extra", 1),
    ):
        doc = _good()
        doc[key] = value
        cases.append((OBS, json.dumps(doc).encode()))
    return cases


@pytest.mark.parametrize(("topic", "payload"), _mutations())
def test_fast_decode_matches_the_codec(topic: str, payload: bytes) -> None:
    assert _outcome(decode, topic, payload) == _outcome(wire.decode, topic, payload)


@given(
    st.dictionaries(
        st.sampled_from(["seq", "boot", "site_id", "agent_id", "schema", "sent_at", "observations", "type"]),
        st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=20), st.booleans()),
        max_size=3,
    )
)
def test_fast_decode_matches_the_codec_on_random_fields(changes: dict[str, Any]) -> None:
    doc = _good()
    doc.update(changes)
    payload = json.dumps(doc).encode()
    assert _outcome(decode, OBS, payload) == _outcome(wire.decode, OBS, payload)
