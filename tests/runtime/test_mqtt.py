"""runtime.mqtt: paho's topic matching without a reference cycle per received message."""

from __future__ import annotations

import gc
from typing import Any

import aiomqtt
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.matcher import MQTTMatcher

from runtime.mqtt import AcyclicTopicMatcher, without_cycles

_LEVEL = st.sampled_from(["a", "b", "fernwart", "v1", "$SYS", ""])
_FILTER_LEVEL = st.one_of(_LEVEL, st.just("+"))


def _filters() -> st.SearchStrategy[str]:
    levels = st.lists(_FILTER_LEVEL, min_size=1, max_size=4)
    return st.builds(lambda parts, hash_: "/".join(parts + (["#"] if hash_ else [])), levels, st.booleans())


def _topics() -> st.SearchStrategy[str]:
    return st.lists(_LEVEL, min_size=1, max_size=5).map("/".join)


@given(st.lists(_filters(), max_size=6, unique=True), _topics())
def test_matches_as_paho_does(filters: list[str], topic: str) -> None:
    ours, paho = AcyclicTopicMatcher(), MQTTMatcher()  # type: ignore[no-untyped-call]
    for index, topic_filter in enumerate(filters):
        ours[topic_filter] = paho[topic_filter] = index
    assert list(ours.iter_match(topic)) == list(paho.iter_match(topic))  # type: ignore[no-untyped-call]


def _garbage_after(matcher: Any) -> int:
    matcher["fernwart/v1/+/obs"] = "callback"
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            assert list(matcher.iter_match("fernwart/v1/site-1/obs")) == ["callback"]
        return gc.collect()
    finally:
        gc.enable()


def test_no_reference_cycle_per_message() -> None:
    assert _garbage_after(MQTTMatcher()) >= 100  # type: ignore[no-untyped-call]  # paho's: one per call
    assert _garbage_after(AcyclicTopicMatcher()) == 0  # type: ignore[no-untyped-call]


async def test_client_keeps_its_filters() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)
    paho = client._client
    paho.message_callback_add("fernwart/+/x", lambda *_: None)
    without_cycles(client)
    matcher = paho._on_message_filtered
    assert isinstance(matcher, AcyclicTopicMatcher)
    assert len(list(matcher.iter_match("fernwart/a/x"))) == 1
