"""The on-premises codec source against the fake codec (lab/fakes/xapi.py) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer

from collector.actions import ActionKind, ActionRequest, ActionState
from collector.base import Acts, Source
from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.model import Observation, utcnow
from collector.xapi import XapiOptions, XapiSource
from collector.xapi.client import XapiClient
from collector.xapi.pacer import Pacer
from lab.fakes.xapi import FakeCodec, XapiFaults


@dataclass
class ListSink:
    observations: list[Observation] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def observe(self, observation: Observation) -> None:
        self.observations.append(observation)

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        self.errors[device_id] = message


@pytest.fixture
async def codec() -> AsyncIterator[tuple[FakeCodec, TestServer]]:
    fake = FakeCodec(faults=XapiFaults(interval_s=0.01, queue_size=30))
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, server
    await server.close()


def source_for(server: TestServer, fake: FakeCodec, **extra: object) -> XapiSource:
    options = XapiOptions.model_validate(
        {
            "host": "127.0.0.1",
            "port": server.port,
            "scheme": "http",
            "user": fake.user,
            "password": fake.password,
            "min_interval_s": 0.01,
            "follow_interval_s": 0,
            **extra,
        }
    )
    return XapiSource("ber-konf-2-12", options)


def request(action: ActionKind, **extra: object) -> ActionRequest:
    return ActionRequest(
        device_id="ber-konf-2-12", action=action, deadline=utcnow() + timedelta(seconds=30), **extra
    )


async def test_collect_reads_version_peripherals_and_diagnostics_in_one_request(codec) -> None:
    fake, server = codec
    source = source_for(server, fake)
    assert isinstance(source, Source)
    assert isinstance(source, Acts)
    sink = ListSink()
    try:
        await source.collect(sink)
    finally:
        await source.aclose()
    (obs,) = sink.observations
    assert obs.device_id == "ber-konf-2-12"
    assert obs.management == "xapi"
    assert obs.identity.family == "roomos"
    assert obs.identity.serial == "FOC2433P1DK"
    assert obs.firmware_version() == "RoomOS 11.17.1.7"
    assert {c.name: c.scheme for c in obs.software}["firmware"] == "cisco-roomos"
    assert {p.kind for p in obs.peripherals} == {"touchpanel", "camera"}
    assert any(c.name.startswith("peripheral:touchpanel:") for c in obs.software)
    assert [r.code for r in obs.health.reasons] == ["xapi_networkquality"]
    assert obs.uptime_s == 482113
    assert fake.requests["GET /status.xml"] == 1
    assert sum(fake.requests.values()) == 1


async def test_wrong_password_is_auth_failed_without_the_password(codec) -> None:
    fake, server = codec
    source = source_for(server, fake, password="not-the-password")
    with pytest.raises(AuthFailed) as err:
        await source.collect(ListSink())
    await source.aclose()
    assert "not-the-password" not in str(err.value)
    assert "admin" in str(err.value)


async def test_malformed_xml_is_bad_response(codec) -> None:
    fake, server = codec
    fake.faults.malformed = True
    source = source_for(server, fake)
    with pytest.raises(BadResponse, match="not well-formed XML"):
        await source.collect(ListSink())
    await source.aclose()


async def test_slow_codec_is_unreachable_at_the_deadline(codec) -> None:
    fake, server = codec
    fake.faults.slow_s = 5
    source = source_for(server, fake, timeout_s=0.2)
    with pytest.raises(Unreachable, match="no answer"):
        await source.collect(ListSink())
    await source.aclose()


async def test_pacer_keeps_a_burst_inside_the_codec_queue(codec) -> None:
    """Twenty reads at once: unpaced, a codec with a queue of 2 answers 503; one shared pacer
    keeps every request inside the queue, so the device never refuses one."""
    fake, server = codec
    fake.faults.interval_s = 0.05
    fake.faults.queue_size = 2
    unpaced = [
        XapiClient(source_for(server, fake, min_interval_s=0, busy_retries=0).options, Pacer(0))
        for _ in range(20)
    ]
    results = await asyncio.gather(*(c.status() for c in unpaced), return_exceptions=True)
    for client in unpaced:
        await client.aclose()
    refused = [r for r in results if isinstance(r, Unreachable)]
    assert refused
    assert "queue stayed full" in str(refused[0])
    assert fake.rejected_503 == len(refused)

    fake.rejected_503 = 0
    paced = source_for(server, fake, min_interval_s=0.05, busy_retries=0).client
    results = await asyncio.gather(*(paced.status() for _ in range(20)), return_exceptions=True)
    await paced.aclose()
    assert all(isinstance(r, dict) for r in results)
    assert fake.rejected_503 == 0
    assert paced.requests == 20


async def test_restart_is_followed_until_the_codec_is_back(codec) -> None:
    fake, server = codec
    source = source_for(server, fake)
    result = await source.act(request(ActionKind.RESTART))
    await source.aclose()
    assert result.state is ActionState.SUCCEEDED, result
    assert "unreachable" in result.history
    assert result.history[-1] == "back"
    assert fake.commands == ["SystemUnit.Boot"]


async def test_restart_refused_by_the_codec_fails_with_its_reason(codec) -> None:
    fake, server = codec
    fake.faults.restart_fails = True
    source = source_for(server, fake)
    result = await source.act(request(ActionKind.RESTART))
    await source.aclose()
    assert result.state is ActionState.FAILED
    assert "a call is in progress" in result.detail


async def test_update_from_the_package_host_is_followed_to_the_new_version(codec) -> None:
    fake, server = codec
    source = source_for(server, fake, package_base_url="http://files.example.net/roomos")
    assert "update" in source.capabilities("ber-konf-2-12")
    result = await source.act(request(ActionKind.UPDATE, target_version="RoomOS 26.4.2.0"))
    assert result.state is ActionState.SUCCEEDED, result
    assert "InProgress/Downloading" in result.history
    assert result.history[-1] == "Succeeded"
    sink = ListSink()
    await source.collect(sink)
    await source.aclose()
    assert sink.observations[0].firmware_version() == "RoomOS 26.4.2.0"
    url = fake.tree["Provisioning"]["Software"]["UpgradeStatus"]["URL"]
    assert url == "http://files.example.net/roomos/cmterm-s53200ce26_4_2_0.k4.cop.sha512"


async def test_failed_update_reports_the_device_message(codec) -> None:
    fake, server = codec
    fake.faults.upgrade_fails = True
    source = source_for(server, fake)
    result = await source.act(
        request(
            ActionKind.UPDATE,
            target_version="26.4.2.0",
            package_url="http://h/cmterm-s53200ce26_4_2_0.k4.cop.sha512",
        )
    )
    await source.aclose()
    assert result.state is ActionState.FAILED
    assert "Download failed" in result.detail
    assert fake.version.startswith("ce11.17")


async def test_update_without_package_host_is_a_manual_step(codec) -> None:
    fake, server = codec
    source = source_for(server, fake)
    assert "update" not in source.capabilities("ber-konf-2-12")
    result = await source.act(request(ActionKind.UPDATE, target_version="26.4.2.0"))
    await source.aclose()
    assert result.state is ActionState.MANUAL
    assert any("package host" in step for step in result.manual_steps)
    assert result.console_url is not None
    assert result.console_url.endswith("/web/software")
    assert fake.commands == []


async def test_log_bundle_returns_the_log_id(codec) -> None:
    fake, server = codec
    source = source_for(server, fake)
    result = await source.act(request(ActionKind.LOGS))
    await source.aclose()
    assert result.state is ActionState.SUCCEEDED
    assert result.operation_id is not None
    assert result.operation_id.startswith("fake-log-")


async def test_an_action_past_its_deadline_is_not_sent(codec) -> None:
    fake, server = codec
    source = source_for(server, fake)
    late = ActionRequest(
        device_id="ber-konf-2-12", action=ActionKind.RESTART, deadline=utcnow() - timedelta(seconds=1)
    )
    result = await source.act(late)
    await source.aclose()
    assert result.state is ActionState.TIMED_OUT
    assert fake.commands == []


async def test_https_to_a_plain_http_codec_says_tls_failed_and_how_to_fix_it(codec) -> None:
    # `fernwart probe xapi HOST` defaults to HTTPS; against a codec serving plain HTTP the operator
    # read "no answer (ClientConnectorSSLError)", which sounds like a codec that is down.
    fake, server = codec
    source = source_for(server, fake, scheme="https")
    with pytest.raises(Unreachable) as err:
        await source.collect(ListSink())
    await source.aclose()
    assert f"https://127.0.0.1:{server.port}: TLS handshake failed" in str(err.value)
    assert 'scheme = "http"; fernwart probe xapi --http' in str(err.value)
    assert fake.password not in str(err.value)


async def test_a_closed_port_is_said_as_refused() -> None:
    server = TestServer(FakeCodec().app(), host="127.0.0.1")
    await server.start_server()
    port = server.port
    await server.close()  # nothing listens there any more
    options = XapiOptions.model_validate(
        {"host": "127.0.0.1", "port": port, "scheme": "http", "user": "admin", "password": "pw-Kx7"}
    )
    source = XapiSource("ber-konf-2-12", options)
    with pytest.raises(Unreachable, match=f"http://127.0.0.1:{port}: connection refused or no route"):
        await source.collect(ListSink())
    await source.aclose()
