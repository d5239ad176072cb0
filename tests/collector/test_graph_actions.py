"""Restart and update through GraphSource, followed to success and to failure in the fake;
a device no API can update gets the operator's steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.base import Acts
from collector.graph import GraphSource
from collector.model import utcnow
from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import READ_ROLES, fixture_tenant
from tests.collector.graph_helpers import ListSink, source_for

LENOVO = "intune-4b1f0c2e-7d3a-4e59-9a61-0c8d2f5e7a01"
LOGITECH = "intune-8e2a6d71-1c4b-4f0a-b7e3-5d9c0a1f2b02"
YEALINK = "intune-c3d5e7f9-2a4b-4c6d-8e0f-1a3b5c7d9e03"
BAR = "teams-6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f02"
LENOVO_TEAMWORK = "6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f01"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph([fixture_tenant()]).running() as server:
        yield server


@pytest.fixture
async def source(fake: FakeGraph) -> AsyncIterator[GraphSource]:
    src = source_for(fake, fake.tenants["contoso.onmicrosoft.com"])
    async with asyncio.timeout(20):
        await src.collect(ListSink())
    yield src
    await src.aclose()


def _request(
    device: str, action: ActionKind, target: str | None = None, minutes: float = 10
) -> ActionRequest:
    return ActionRequest(
        device_id=device, action=action, target_version=target, deadline=utcnow() + timedelta(minutes=minutes)
    )


async def _act(source: GraphSource, request: ActionRequest) -> ActionResult:
    async with asyncio.timeout(20):
        return await source.act(request)


async def test_capabilities(source: GraphSource) -> None:
    assert isinstance(source, Acts)
    assert source.capabilities(LENOVO) == frozenset({"restart", "update"})
    assert source.capabilities(LOGITECH) == frozenset({"restart"})
    assert source.capabilities(BAR) == frozenset({"restart", "update"})
    assert source.capabilities("intune-unknown") == frozenset()


async def test_restart_is_followed_to_done_past_an_earlier_reboot(
    source: GraphSource, fake: FakeGraph
) -> None:
    result = await _act(source, _request(LENOVO, ActionKind.RESTART))
    assert result.state is ActionState.SUCCEEDED
    assert result.history == ["requested", "pending", "active", "done"]
    assert result.operation_id is not None
    assert result.operation_id.startswith("rebootNow request-id ")
    assert fake.requests["rebootNow"] == 1
    assert fake.requests["managedDevice"] == 4  # the baseline read, then one per state


async def test_restart_failure_is_reported(source: GraphSource, fake: FakeGraph) -> None:
    fake.tenants["contoso.onmicrosoft.com"].by_intune(
        YEALINK.removeprefix("intune-")
    ).reboot_outcome = "failed"  # type: ignore[union-attr]
    result = await _act(source, _request(YEALINK, ActionKind.RESTART))
    assert result.state is ActionState.FAILED
    assert result.detail == "Intune rebootNow: failed"
    assert result.history[-1] == "failed"


async def test_restart_without_the_privileged_permission_fails_clearly(
    source: GraphSource, fake: FakeGraph
) -> None:
    fake.tenants["contoso.onmicrosoft.com"].roles = READ_ROLES
    fake.expire_tokens()  # the new token carries the reduced roles
    result = await _act(source, _request(LENOVO, ActionKind.RESTART))
    assert result.state is ActionState.FAILED
    assert "rebootNow answered 403 Forbidden" in result.detail
    assert "request-id" in result.detail


async def test_without_write_permissions_the_actions_are_manual_steps_naming_the_permission(
    fake: FakeGraph,
) -> None:
    tenant = fake.tenants["contoso.onmicrosoft.com"]
    tenant.roles = READ_ROLES
    src = source_for(fake, tenant)
    try:
        await src.collect(ListSink())
        assert src.capabilities(LENOVO) == frozenset()
        restart = await _act(src, _request(LENOVO, ActionKind.RESTART))
        update = await _act(src, _request(LENOVO, ActionKind.UPDATE, "5.5.12.0"))
    finally:
        await src.aclose()
    assert restart.state is ActionState.MANUAL
    assert (
        "lacks the application permission DeviceManagementManagedDevices.PrivilegedOperations.All"
        in restart.detail
    )
    assert update.state is ActionState.MANUAL
    assert "lacks the application permission TeamworkDevice.ReadWrite.All" in update.detail
    assert fake.requests["rebootNow"] == fake.requests["updateSoftware"] == 0


async def test_update_is_followed_to_success_and_the_version_changes(
    source: GraphSource, fake: FakeGraph
) -> None:
    result = await _act(source, _request(LENOVO, ActionKind.UPDATE, "5.5.12.0"))
    assert result.state is ActionState.SUCCEEDED
    assert result.history == ["requested", "queued", "inProgress", "successful"]
    ops = fake.tenants["contoso.onmicrosoft.com"].operations[LENOVO_TEAMWORK]
    assert result.operation_id == ops[0]["id"]
    sink = ListSink()
    await source.collect(sink)
    app = {c.name: c.version for c in sink.observations[LENOVO].software}["teams_rooms_app"]
    assert app == "5.5.12.0"


async def test_update_failure_names_the_vendor_error(source: GraphSource, fake: FakeGraph) -> None:
    fake.tenants["contoso.onmicrosoft.com"].by_teamwork(LENOVO_TEAMWORK).update_outcome = "failed"  # type: ignore[union-attr]
    result = await _act(source, _request(LENOVO, ActionKind.UPDATE, "5.5.12.0"))
    assert result.state is ActionState.FAILED
    assert (
        result.detail
        == "Teams device operation failed: SoftwareUpdateFailed: The device could not install the update."
    )


async def test_409_already_queued_follows_the_queued_operation(source: GraphSource, fake: FakeGraph) -> None:
    tenant = fake.tenants["contoso.onmicrosoft.com"]
    queued = {
        "id": "3f9c2d11-8b7a-4e55-a1f0-77aa12bc0001",
        "status": "queued",
        "operationType": "softwareUpdate",
        "createdDateTime": "2026-12-05T07:00:00Z",
        "_request": {"softwareType": "teamsClient", "softwareVersion": "5.5.12.0"},
    }
    tenant.operations[LENOVO_TEAMWORK] = [queued]
    result = await _act(source, _request(LENOVO, ActionKind.UPDATE, "5.5.12.0"))
    assert result.state is ActionState.SUCCEEDED
    assert result.operation_id == queued["id"]
    assert result.history[:2] == ["requested", "conflict: one already queued"]
    assert len(tenant.operations[LENOVO_TEAMWORK]) == 1


async def test_update_past_the_deadline_times_out(source: GraphSource) -> None:
    result = await _act(source, _request(LENOVO, ActionKind.UPDATE, "5.5.12.0", minutes=0.01))
    assert result.state is ActionState.TIMED_OUT
    assert result.operation_id is not None


async def test_teams_rooms_app_without_an_api_is_a_manual_step(source: GraphSource) -> None:
    result = await _act(source, _request(LOGITECH, ActionKind.UPDATE, "5.5.12.0"))
    assert result.state is ActionState.MANUAL
    assert result.detail.startswith(
        "manual step required: No API can install Teams Rooms app 5.5.12.0 on MTR-MUC-2OG-HUDDLE3"
    )
    assert any(
        "Teams Rooms Pro Management portal" in s and "MTR-MUC-2OG-HUDDLE3" in s for s in result.manual_steps
    )
    assert result.console_url == "https://portal.rooms.microsoft.com"


async def test_android_update_after_the_beta_retired_is_a_manual_step(
    source: GraphSource, fake: FakeGraph
) -> None:
    fake.faults.beta_status = 410  # retired between the collect and the action
    result = await _act(source, _request(YEALINK, ActionKind.UPDATE, "1449/1.0.96.2024091202"))
    assert result.state is ActionState.MANUAL
    assert "Teams admin center" in result.manual_steps[1]
    assert "TEAMSPHONE-BER-EMPFANG" in result.manual_steps[1]
    assert "410 Gone" in result.detail
    # The next collect notices, and no longer offers the update.
    await source.collect(ListSink())
    assert "update" not in source.capabilities(YEALINK)


async def test_logs_are_a_manual_step(source: GraphSource) -> None:
    result = await _act(source, _request(YEALINK, ActionKind.LOGS))
    assert result.state is ActionState.MANUAL
    assert result.manual_steps == [
        (
            "Teams admin center (https://admin.teams.microsoft.com/devices) > Teams devices"
            " > TEAMSPHONE-BER-EMPFANG > Download device logs."
        )
    ]


async def test_unknown_device_fails(source: GraphSource) -> None:
    result = await _act(source, _request("intune-not-there", ActionKind.RESTART))
    assert result.state is ActionState.FAILED
    assert "not seen" in result.detail


async def test_restart_of_a_device_only_the_beta_api_knows(source: GraphSource) -> None:
    result = await _act(source, _request(BAR, ActionKind.RESTART))
    assert result.state is ActionState.SUCCEEDED
    assert result.history == ["requested", "queued", "inProgress", "successful"]
