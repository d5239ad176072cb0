"""`fernwart probe webex|xapi` and `fernwart tenant check webex`, run as commands against the fakes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from fernwart_cli import exits
from lab.fakes.webex import SCOPES_ALL, FakeWebex
from lab.fakes.webex_org import make_org
from lab.fakes.xapi import FakeCodec, XapiFaults


async def fernwart(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fernwart_cli.main",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def webex() -> AsyncIterator[tuple[FakeWebex, str]]:
    fake = FakeWebex(make_org(3, 1), access_token="probe-token-value")
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}/v1"
    await server.close()


async def test_probe_webex_prints_every_device(webex) -> None:
    _fake, base = webex
    code, out, err = await fernwart(
        "probe", "webex", "--token-env", "WX_TOKEN", "--base-url", base, env={"WX_TOKEN": "probe-token-value"}
    )
    assert code == exits.OK, err
    report = json.loads(out)
    assert len(report["devices"]) == 4
    assert {d["identity"]["family"] for d in report["devices"]} == {"roomos", "mpp"}
    assert "probe-token-value" not in out + err


async def test_probe_webex_refused_token_exits_77_without_the_token(webex) -> None:
    _fake, base = webex
    code, out, err = await fernwart(
        "probe", "webex", "--token-env", "WX_TOKEN", "--base-url", base, env={"WX_TOKEN": "wrong-token-value"}
    )
    assert code == exits.NOPERM
    assert "credentials refused" in err
    assert "wrong-token-value" not in out + err


async def test_probe_webex_missing_variable_exits_78_naming_it() -> None:
    code, _out, err = await fernwart("probe", "webex", "--token-env", "WX_UNSET_VARIABLE", env={})
    assert code == exits.CONFIG
    assert "WX_UNSET_VARIABLE" in err


async def test_probe_xapi_prints_the_codec() -> None:
    fake = FakeCodec(faults=XapiFaults(interval_s=0.01))
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        code, out, err = await fernwart(
            "probe",
            "xapi",
            f"127.0.0.1:{server.port}",
            "--http",
            "--user",
            fake.user,
            "--password-env",
            "CODEC_PW",
            env={"CODEC_PW": fake.password},
        )
    finally:
        await server.close()
    assert code == exits.OK, err
    observation = json.loads(out)
    assert observation["software"][0]["version"] == "RoomOS 11.17.1.7"
    assert fake.password not in out + err


async def test_tenant_check_webex_names_each_missing_scope(webex) -> None:
    fake, base = webex
    fake.scopes = SCOPES_ALL - {"spark:xapi_statuses"}
    code, out, err = await fernwart(
        "tenant",
        "check",
        "webex",
        "--client-id",
        fake.client[0],
        "--client-secret-env",
        "WX_SECRET",
        "--refresh-token-env",
        "WX_REFRESH",
        "--base-url",
        base,
        env={"WX_SECRET": fake.client[1], "WX_REFRESH": fake.refresh_token},
    )
    assert code == exits.FAILURE, err
    report = json.loads(out)
    status = {c["capability"]: c["status"] for c in report["capabilities"]}
    assert status == {
        "inventory": "granted",
        "status": "missing",
        "restart": "granted",
        "update": "granted",
        "logs": "granted",
        "calling": "granted",
    }
    assert report["missing"] == [
        "spark:xapi_statuses (status): needed for RoomOS detail: upgrade status, uptime, peripherals"
    ]
    assert "missing scope spark:xapi_statuses" in err
    assert fake.client[1] not in out + err
    assert all(not d.commands for d in fake.devices.values())  # nothing was done to a device


async def test_tenant_check_webex_all_granted_exits_0(webex) -> None:
    _fake, base = webex
    code, out, err = await fernwart(
        "tenant",
        "check",
        "webex",
        "--token-env",
        "WX_TOKEN",
        "--base-url",
        base,
        env={"WX_TOKEN": "probe-token-value"},
    )
    assert code == exits.OK, err
    assert json.loads(out)["missing"] == []


async def test_tenant_check_webex_with_a_service_app(webex) -> None:
    fake, base = webex
    code, out, err = await fernwart(
        "tenant",
        "check",
        "webex",
        "--application-id",
        fake.application_id,
        "--integration-token-env",
        "WX_INTEGRATION",
        "--target-org-id",
        "acme-org",
        "--client-id",
        fake.client[0],
        "--client-secret-env",
        "WX_SECRET",
        "--base-url",
        base,
        env={"WX_INTEGRATION": "fake-integration-token", "WX_SECRET": fake.client[1]},
    )
    assert code == exits.OK, err
    assert json.loads(out)["token"] == "obtained"
    assert "fake-integration-token" not in out + err
