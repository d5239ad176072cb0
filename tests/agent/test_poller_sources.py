"""The poller with a source of many devices: one schedule per source, up/down per device, each
device's state reported once per change, a whole-source failure marking every device down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from agent.metrics import AgentMetrics
from agent.poller import Poller
from agent.sources import SourceSet
from collector.actions import ActionKind, ActionRequest, ActionState
from collector.base import Acts
from collector.model import HealthStatus, Observation
from collector.sources import DriverSource
from tests.agent.drivers import CountingDriver, CountingOptions, ListingOptions, ListingSource


def listing_poller(
    out: list[Observation],
    metrics: AgentMetrics,
    timeout_s: float = 5.0,
    interval_s: float = 60,
    **options: object,
) -> tuple[Poller, ListingSource]:
    source = ListingSource("tenant-a", ListingOptions.model_validate(options))
    poller = Poller(
        "tenant-a",
        "listing",
        source,
        interval_s=interval_s,
        timeout_s=timeout_s,
        jitter_fraction=0.1,
        semaphore=asyncio.Semaphore(4),
        emit=out.append,
        metrics=metrics,
    )
    return poller, source


def states(out: list[Observation]) -> dict[str, tuple[bool, str | None]]:
    """device → (reachable, first reason code) of its latest observation."""
    found = {}
    for obs in out:
        reasons = obs.health.reasons
        found[obs.device_id] = (obs.reachable, reasons[0].code if reasons else None)
    return found


def events(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["event"], e.get("device", e.get("source"))) for e in logs if e["log_level"] != "debug"]


async def test_one_poll_reports_every_listed_device() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics, offline=["room-3"])
    with structlog.testing.capture_logs() as logs:
        assert await poller.poll_once()
    assert source.polls == 1
    assert [o.device_id for o in out] == ["room-1", "room-2", "room-3"]
    assert poller.devices == {"room-1": True, "room-2": True, "room-3": False}
    # A device first seen up is not news; one first seen down is, once.
    assert events(logs) == [("device_unreachable", "room-3")]
    assert metrics.value("fernwart_polls_total", result="ok") == 1
    assert metrics.value("fernwart_source_devices", source="tenant-a", state="up") == 2
    assert metrics.value("fernwart_source_devices", source="tenant-a", state="down") == 1


async def test_a_device_error_marks_that_device_only_and_is_logged_once() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics, errors={"room-2": "peripherals: HTTP 500 (request id r-9)"})
    with structlog.testing.capture_logs() as logs:
        assert await poller.poll_once()
        assert await poller.poll_once()
        source.options = ListingOptions()
        assert await poller.poll_once()
    first = out[:3]
    assert states(first) == {
        "room-1": (True, None),
        "room-2": (False, "device_error"),
        "room-3": (True, None),
    }
    down = next(o for o in first if o.device_id == "room-2")
    assert down.health.status is HealthStatus.DOWN
    assert down.errors == ["peripherals: HTTP 500 (request id r-9)"]
    assert events(logs) == [("device_failed", "room-2"), ("device_recovered", "room-2")]
    assert metrics.value("fernwart_device_errors_total") == 2


async def test_a_device_missing_from_the_listing_is_reported_once() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics)
    with structlog.testing.capture_logs() as logs:
        assert await poller.poll_once()
        source.options = ListingOptions(devices=["room-1", "room-3"])
        assert await poller.poll_once()
        assert await poller.poll_once()
        source.options = ListingOptions()
        assert await poller.poll_once()
    room2 = [o for o in out if o.device_id == "room-2"]
    assert [(o.reachable, o.health.reasons[0].code if o.health.reasons else None) for o in room2] == [
        (True, None),
        (False, "missing_from_source"),  # once, not on the poll after
        (True, None),
    ]
    assert "tenant-a" in room2[1].errors[0]
    assert events(logs) == [("device_missing", "room-2"), ("device_recovered", "room-2")]
    assert metrics.value("fernwart_devices_missing_total") == 1
    assert poller.reports("room-2")


async def test_a_whole_source_failure_marks_every_device_down_with_the_reason() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics)
    with structlog.testing.capture_logs() as logs:
        assert await poller.poll_once()
        source.options = ListingOptions(fail="unreachable")
        assert await poller.poll_once()
        assert await poller.poll_once()
        source.options = ListingOptions()
        assert await poller.poll_once()
    failed = out[3:9]
    assert {o.device_id for o in failed} == {"room-1", "room-2", "room-3"}
    assert all(not o.reachable and o.health.reasons[0].code == "unreachable" for o in failed)
    assert all("login.example did not answer" in o.health.reasons[0].message for o in failed)
    assert all(o.reachable for o in out[9:])
    assert events(logs) == [
        ("device_unreachable", "room-1"),
        ("device_unreachable", "room-2"),
        ("device_unreachable", "room-3"),
        ("source_unreachable", "tenant-a"),
        ("device_recovered", "room-1"),
        ("device_recovered", "room-2"),
        ("device_recovered", "room-3"),
        ("source_recovered", "tenant-a"),
    ]
    assert metrics.value("fernwart_polls_total", result="unreachable") == 2


async def test_auth_failed_marks_the_devices_and_stops_the_source() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics, interval_s=0.05)
    assert await poller.poll_once()
    source.options = ListingOptions(fail="auth")
    async with asyncio.timeout(10):
        await poller.run(asyncio.Event())  # returns by itself after the refused poll
    assert poller.stopped_reason == "auth_failed"
    assert source.polls == 2
    assert states(out[3:]) == dict.fromkeys(("room-1", "room-2", "room-3"), (False, "auth_failed"))


async def test_what_a_source_read_before_its_deadline_stands() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics, timeout_s=0.2)
    assert await poller.poll_once()
    source.options = ListingOptions(fail="hang_after_first")
    assert await poller.poll_once()
    assert states(out[3:]) == {
        "room-1": (True, None),  # read before the deadline
        "room-2": (False, "unreachable"),
        "room-3": (False, "unreachable"),
    }
    assert out[4].health.reasons[0].message == "no answer within 0.2 s"
    assert metrics.value("fernwart_polls_total", result="timeout") == 1


async def test_a_driver_bug_in_a_source_is_counted_and_polling_continues() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, source = listing_poller(out, metrics, fail="crash")
    assert await poller.poll_once()  # nothing listed yet: no device to mark
    assert out == []
    source.options = ListingOptions()
    assert await poller.poll_once()
    source.options = ListingOptions(fail="crash")
    assert await poller.poll_once()
    assert states(out[3:]) == dict.fromkeys(("room-1", "room-2", "room-3"), (False, "driver_error"))
    assert metrics.value("fernwart_polls_total", result="error") == 2


async def test_commands_find_the_source_that_reports_the_device() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    tenant, source = listing_poller(out, metrics)
    snmp = Poller(
        "codec-1",
        "counting",
        DriverSource("codec-1", CountingDriver("codec-1", CountingOptions())),
        interval_s=60,
        timeout_s=5,
        jitter_fraction=0,
        semaphore=asyncio.Semaphore(1),
        emit=out.append,
        metrics=metrics,
    )
    sources = SourceSet()
    sources.add(snmp)
    sources.add(tenant)
    assert sources.source_of("codec-1") == "codec-1"  # a one-device source is known before it polls
    assert sources.for_device("codec-1") is None  # known, but its driver cannot act
    assert sources.for_device("room-2") is None  # not listed yet
    assert await tenant.poll_once()
    acts = sources.for_device("room-2")
    assert acts is source
    assert isinstance(acts, Acts)
    assert acts.capabilities("room-2") == frozenset({"restart"})
    deadline = datetime.now(UTC) + timedelta(minutes=5)
    result = await acts.act(ActionRequest(device_id="room-2", action=ActionKind.RESTART, deadline=deadline))
    assert result.state is ActionState.SUCCEEDED
    assert [r.device_id for r in source.requests] == ["room-2"]
    assert sources.for_device("nowhere") is None


async def test_the_agent_hears_when_a_listing_gains_or_loses_devices() -> None:
    """So it can announce the devices (with their interval) to the controller again; up/down
    changes alone are no such news."""
    metrics = AgentMetrics()
    out: list[Observation] = []
    source = ListingSource("tenant-a", ListingOptions())
    changes: list[frozenset[str]] = []
    poller = Poller(
        "tenant-a",
        "listing",
        source,
        interval_s=300,
        timeout_s=5,
        jitter_fraction=0,
        semaphore=asyncio.Semaphore(1),
        emit=out.append,
        metrics=metrics,
        on_devices_changed=lambda: changes.append(frozenset(poller.devices)),
    )
    assert poller.interval_s == 300
    for options in (
        ListingOptions(),  # first listing: three new devices
        ListingOptions(),  # the same
        ListingOptions(offline=["room-1"]),  # a device down: not a change of the set
        ListingOptions(devices=["room-1", "room-2"]),  # room-3 gone
        ListingOptions(devices=["room-1", "room-2", "room-9"]),  # room-9 new
    ):
        source.options = options
        assert await poller.poll_once()
    assert changes == [
        frozenset({"room-1", "room-2", "room-3"}),
        frozenset({"room-1", "room-2"}),
        frozenset({"room-1", "room-2", "room-9"}),
    ]
