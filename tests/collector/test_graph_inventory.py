"""GraphSource against the fake Graph: complete inventories, counted requests, a clear error per
failure, and the other devices still collected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from collector.base import Source
from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.graph import GraphSource
from collector.model import HealthStatus
from collector.registry import load_driver
from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import READ_ROLES, fixture_tenant
from tests.collector.graph_helpers import ListSink, Sleeps, source_for

LENOVO = "intune-4b1f0c2e-7d3a-4e59-9a61-0c8d2f5e7a01"
LOGITECH = "intune-8e2a6d71-1c4b-4f0a-b7e3-5d9c0a1f2b02"
YEALINK = "intune-c3d5e7f9-2a4b-4c6d-8e0f-1a3b5c7d9e03"
BAR = "teams-6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f02"  # known only to the beta API
ALL = {LENOVO, LOGITECH, YEALINK, BAR}
# page_size 2: managedDevices 3 pages (5 enrolled), detectedApps 1, one per app version (2),
# teamwork devices 2 pages (3), one health per teamwork device (3), and one token.
FIRST_POLL = {
    "token": 1,
    "managedDevices": 3,
    "detectedApps": 1,
    "detectedAppDevices": 2,
    "teamworkDevices": 2,
    "teamworkHealth": 3,
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph([fixture_tenant()]).running() as server:
        yield server


async def _collect(source: GraphSource) -> ListSink:
    sink = ListSink()
    async with asyncio.timeout(20):
        await source.collect(sink)
    return sink


async def test_complete_inventory_with_the_minimum_requests(fake: FakeGraph) -> None:
    tenant = fake.tenants["contoso.onmicrosoft.com"]
    source = source_for(fake, tenant, page_size=2)
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    assert sink.errors == {}
    assert source.skipped == 2  # the laptop and the iPhone are no Teams devices
    assert dict(fake.requests) == FIRST_POLL
    lenovo = sink.observations[LENOVO]
    components = {c.name: (c.version, c.scheme) for c in lenovo.software}
    assert components["teams_rooms_app"] == ("5.4.88.0", "teams-rooms")
    assert components["os"] == ("10.0.22631.4460", "generic")
    assert components["device_firmware"] == ("1.0.33.0", "generic")
    assert lenovo.firmware_version() is None  # the room is known by its app, not its PC's firmware
    assert lenovo.raw["available.teams_rooms_app"] == "5.5.12.0"
    assert lenovo.identity.family == "teams-rooms"
    assert lenovo.identity.serial == "PF3XQ7ZA"
    assert lenovo.management == "intune"
    assert lenovo.sign_in == "connected"
    assert lenovo.console_url is not None
    assert "4b1f0c2e-7d3a-4e59-9a61-0c8d2f5e7a01" in lenovo.console_url
    assert {p.name: p.connected for p in lenovo.peripherals}["display 2"] is False
    assert "peripheral_disconnected" in {r.code for r in lenovo.health.reasons}
    logitech = sink.observations[LOGITECH]  # app under its other display name, no beta view
    assert ("teams_rooms_app", "5.3.126.0", "teams-rooms") in {
        (c.name, c.version, c.scheme) for c in logitech.software
    }
    assert "intune_noncompliant" in {r.code for r in logitech.health.reasons}
    phone = sink.observations[YEALINK]
    phone_components = {c.name: (c.version, c.scheme) for c in phone.software}
    assert phone_components["teams_android_app"] == ("1449/1.0.94.2024101703", "teams-android")
    assert phone_components["firmware"] == ("122.15.0.142", "yealink")
    assert phone.identity.family == "teams-android"
    assert phone.health.status is HealthStatus.DEGRADED
    assert sink.observations[BAR].management == "teams"


async def test_a_second_poll_reuses_the_token(fake: FakeGraph) -> None:
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], page_size=2)
    try:
        await _collect(source)
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    assert fake.requests["token"] == 1
    assert fake.total_requests == 2 * sum(FIRST_POLL.values()) - 1


async def test_429_is_waited_out_as_retry_after_says(fake: FakeGraph) -> None:
    sleeps = Sleeps()
    fake.faults.throttle = 2
    fake.faults.retry_after = "3"
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], sleeps, page_size=2)
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    assert sleeps.waits == [3.0, 3.0]
    assert fake.total_requests == sum(FIRST_POLL.values()) + 2  # the two refused, nothing more


async def test_429_without_retry_after_backs_off(fake: FakeGraph) -> None:
    sleeps = Sleeps()
    fake.faults.throttle = 1
    fake.faults.retry_after = None
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], sleeps)
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    assert len(sleeps.waits) == 1
    assert 0 < sleeps.waits[0] <= 1.0  # the first step of the shared backoff (0.5 s .. 1 s)


async def test_throttled_beyond_the_retries_fails_the_source_with_the_request_id(fake: FakeGraph) -> None:
    fake.faults.throttle = 100
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], retries=2)
    try:
        with pytest.raises(Unreachable, match=r"429 TooManyRequests.*request-id [0-9a-f-]{36}"):
            await _collect(source)
    finally:
        await source.aclose()
    assert fake.requests["managedDevices"] == 3  # bounded: no storm


async def test_health_throttled_past_its_retries_stops_the_other_health_reads(fake: FakeGraph) -> None:
    fake.faults.throttle_routes.add("teamworkHealth")
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], retries=1, concurrency=1)
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL  # every device still reported, from the listings
    assert fake.requests["teamworkHealth"] == 2  # one device's read and its one retry, then no more
    errors = [e for o in sink.observations.values() for e in o.errors]
    assert sum("Teams device health not read" in e and "429 TooManyRequests" in e for e in errors) == 1
    assert sum(e.startswith("Teams device health skipped: graph beta GET") for e in errors) == 2


async def test_401_after_token_expiry_gets_a_new_token(fake: FakeGraph) -> None:
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"])
    try:
        await _collect(source)
        fake.expire_tokens()
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    assert fake.requests["token"] == 2


async def test_a_wrong_secret_is_auth_failed_without_the_secret(fake: FakeGraph) -> None:
    tenant = fake.tenants["contoso.onmicrosoft.com"]
    source = source_for(fake, tenant)
    wrong = source_for(fake, tenant, client_secret="wrong-secret-value-xyz")
    try:
        with capture_logs() as logs, pytest.raises(AuthFailed) as caught:
            await _collect(wrong)
    finally:
        await wrong.aclose()
        await source.aclose()
    assert "invalid_client" in str(caught.value)
    assert "AADSTS7000215" in str(caught.value)
    assert "wrong-secret-value-xyz" not in str(caught.value)
    assert "wrong-secret-value-xyz" not in repr(logs)


@pytest.mark.parametrize("status", [404, 410])
async def test_retired_beta_api_is_skipped_cleanly_and_not_asked_again(fake: FakeGraph, status: int) -> None:
    fake.faults.beta_status = status
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"])
    try:
        first = await _collect(source)
        second = await _collect(source)
    finally:
        await source.aclose()
    assert set(first.observations) == {LENOVO, LOGITECH, YEALINK} == set(second.observations)
    assert first.errors == {}
    assert fake.requests["teamworkDevices"] == 1  # re-checked daily, not every poll
    assert fake.requests["teamworkHealth"] == 0
    assert first.observations[LENOVO].peripherals == []
    assert source.capabilities(LENOVO) == frozenset({"restart"})


async def test_missing_teamwork_permission_keeps_the_intune_inventory(fake: FakeGraph) -> None:
    tenant = fake.tenants["contoso.onmicrosoft.com"]
    tenant.roles = (READ_ROLES[0],)
    source = source_for(fake, tenant)
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == {LENOVO, LOGITECH, YEALINK}


async def test_malformed_health_of_one_device_is_an_error_on_that_device(fake: FakeGraph) -> None:
    fake.faults.malformed.add("/beta/teamwork/devices/6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f01/health")
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"])
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    (error,) = sink.observations[LENOVO].errors
    assert "Teams device health not read" in error
    assert "not JSON" in error
    assert sink.observations[YEALINK].errors == []


async def test_malformed_device_listing_fails_the_source(fake: FakeGraph) -> None:
    fake.faults.malformed.add("/v1.0/deviceManagement/managedDevices")
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"])
    try:
        with pytest.raises(BadResponse, match="managedDevices answered 200 with a body that is not JSON"):
            await _collect(source)
    finally:
        await source.aclose()


async def test_a_health_slower_than_the_deadline_costs_only_that_device(fake: FakeGraph) -> None:
    fake.faults.hang.add("/beta/teamwork/devices/6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f03/health")
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], request_deadline_s=0.5)
    try:
        sink = await _collect(source)
    finally:
        fake.release()
        await source.aclose()
    assert set(sink.observations) == ALL
    assert any("no answer within 0.5s" in e for e in sink.observations[YEALINK].errors)
    assert sink.observations[LENOVO].errors == []


async def test_a_device_listing_slower_than_the_deadline_is_unreachable(fake: FakeGraph) -> None:
    fake.faults.hang.add("/v1.0/deviceManagement/managedDevices")
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], request_deadline_s=0.5)
    try:
        with pytest.raises(Unreachable, match="no answer within"):
            await _collect(source)
    finally:
        fake.release()
        await source.aclose()


async def test_relative_next_links_and_no_filter_support(fake: FakeGraph) -> None:
    fake.faults.relative_next_links = True
    fake.faults.filter_supported = False
    source = source_for(fake, fake.tenants["contoso.onmicrosoft.com"], page_size=1)
    try:
        sink = await _collect(source)
    finally:
        await source.aclose()
    assert set(sink.observations) == ALL
    assert fake.requests["detectedApps"] == 2  # the refused $filter, then the unfiltered listing
    assert {c.name for c in sink.observations[LOGITECH].software} >= {"teams_rooms_app"}


async def test_detected_apps_failing_leaves_the_other_devices() -> None:
    tenant = fixture_tenant()
    async with FakeGraph([tenant]).running() as fake:
        fake.faults.malformed.add("/v1.0/deviceManagement/detectedApps")
        source = source_for(fake, tenant)
        try:
            with capture_logs() as logs:
                sink = await _collect(source)
                await _collect(source)
                fake.faults.malformed.clear()
                await _collect(source)
        finally:
            await source.aclose()
    events = [e["event"] for e in logs if e["event"].startswith("graph_app_inventory")]
    assert events == ["graph_app_inventory_failed", "graph_app_inventory_recovered"]  # once each
    # Logitech is known as a Teams Room only by its app; the Lenovo also by the beta API.
    assert set(sink.observations) == {LENOVO, YEALINK, BAR}
    (error,) = sink.observations[LENOVO].errors
    assert error.startswith("Teams Rooms app version unknown: graph GET /v1.0/deviceManagement/detectedApps")


def test_the_entry_point_and_its_example() -> None:
    factory = load_driver("graph")
    assert factory is GraphSource
    assert GraphSource.multi_device is True
    options = GraphSource.options_model.model_validate(GraphSource.example_options)
    source = GraphSource("example", options)
    assert isinstance(source, Source)
    assert GraphSource.example_options["client_secret"] not in options.model_dump_json()
