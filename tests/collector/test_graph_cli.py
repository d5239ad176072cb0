"""``fernwart probe graph`` and ``fernwart tenant check microsoft`` against the fake Graph."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator

import pytest

from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import READ_ROLES, fixture_tenant

SECRET = "fixture-client-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph([fixture_tenant(secret=SECRET)]).running() as server:
        yield server


async def _fernwart(*args: str, secret: str = SECRET) -> tuple[int, str, str]:
    env = {**os.environ, "MS_SECRET": secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fernwart_cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _args(fake: FakeGraph, *command: str) -> list[str]:
    tenant = fake.tenants["contoso.onmicrosoft.com"]
    return [
        *command,
        "--tenant",
        tenant.tenant_id,
        "--client-id",
        tenant.client_id,
        "--client-secret-env",
        "MS_SECRET",
        "--graph-url",
        fake.url,
        "--login-url",
        fake.url,
    ]


async def test_probe_graph_prints_the_inventory(fake: FakeGraph) -> None:
    code, out, err = await _fernwart(*_args(fake, "probe", "graph"))
    assert code == 0, err
    report = json.loads(out)
    assert len(report["devices"]) == 4
    assert report["skipped_not_teams_devices"] == 2
    assert report["requests"] == fake.total_requests
    families = sorted(d["identity"]["family"] for d in report["devices"])
    assert families == ["teams-android", "teams-android", "teams-rooms", "teams-rooms"]
    assert SECRET not in out + err


async def test_probe_graph_with_a_wrong_secret_exits_77_without_echoing_it(fake: FakeGraph) -> None:
    code, out, err = await _fernwart(*_args(fake, "probe", "graph"), secret="not-the-secret-123")
    assert code == 77
    assert "invalid_client" in err
    assert "not-the-secret-123" not in out + err


async def test_tenant_check_with_every_permission(fake: FakeGraph) -> None:
    code, out, err = await _fernwart(*_args(fake, "tenant", "check", "microsoft"))
    assert code == 0, err
    report = json.loads(out)
    assert report["token"] == "obtained"
    assert report["missing"] == []
    assert all(c["granted"] for c in report["capabilities"].values())


async def test_tenant_check_names_each_missing_permission_and_what_it_enables(fake: FakeGraph) -> None:
    fake.tenants["contoso.onmicrosoft.com"].roles = (
        *READ_ROLES,
        "DeviceManagementManagedDevices.ReadWrite.All",
    )
    code, out, err = await _fernwart(*_args(fake, "tenant", "check", "microsoft"))
    assert code == 1
    report = json.loads(out)
    missing = {m["capability"]: m["permission"] for m in report["missing"]}
    assert missing == {
        "restart": "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "update": "TeamworkDevice.ReadWrite.All",
        "service_health": "ServiceHealth.Read.All",
    }
    assert report["capabilities"]["inventory"]["granted"] is True
    assert report["broader_than_needed"] == [
        {
            "permission": "DeviceManagementManagedDevices.ReadWrite.All",
            "least_privilege": "DeviceManagementManagedDevices.Read.All",
        }
    ]
    assert (
        "missing DeviceManagementManagedDevices.PrivilegedOperations.All (application): needed for restart:"
        " restarting devices through Intune (rebootNow)"
    ) in err


async def test_missing_secret_variable_is_a_config_error(fake: FakeGraph) -> None:
    args = [
        a if a != "MS_SECRET" else "NOT_SET_ANYWHERE" for a in _args(fake, "tenant", "check", "microsoft")
    ]
    code, _, err = await _fernwart(*args)
    assert code == 78
    assert "environment variable NOT_SET_ANYWHERE is not set" in err


async def test_unreachable_login_exits_69() -> None:
    code, _, err = await _fernwart(
        "tenant",
        "check",
        "microsoft",
        "--tenant",
        "t1",
        "--client-id",
        "9a1b2c3d-0000",
        "--client-secret-env",
        "MS_SECRET",
        "--login-url",
        "http://127.0.0.1:9",
        "--timeout",
        "5",
    )
    assert code == 69
    assert "login unreachable" in err
