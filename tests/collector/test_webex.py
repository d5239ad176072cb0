"""The Webex cloud source against the fake Webex org (lab/fakes/webex.py) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer

from collector.actions import ActionKind, ActionRequest, ActionState
from collector.base import Acts, Source
from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.model import Observation, utcnow
from collector.registry import known_kinds, load_driver
from collector.webex import WebexOptions, WebexSource
from collector.webex.devices import device_id
from lab.fakes.webex import SCOPES_ALL, FakeWebex
from lab.fakes.webex_org import make_org

ROOMS, PHONES, PAGE = 5, 2, 2


@dataclass
class ListSink:
    observations: dict[str, Observation] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def observe(self, observation: Observation) -> None:
        assert observation.device_id not in self.observations, "a device observed twice"
        self.observations[observation.device_id] = observation

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        self.errors[device_id] = message


@pytest.fixture
async def webex() -> AsyncIterator[tuple[FakeWebex, TestServer]]:
    fake = FakeWebex(make_org(ROOMS, PHONES))
    fake.faults.page_max = PAGE
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, server
    await server.close()


def source_for(server: TestServer, fake: FakeWebex, **extra: object) -> WebexSource:
    options = {
        "base_url": f"http://127.0.0.1:{server.port}/v1",
        "client_id": fake.client[0],
        "client_secret": fake.client[1],
        "refresh_token": fake.refresh_token,
        "page_size": 100,
        "retry_min_s": 0.01,
        "follow_interval_s": 0,
        "rate_per_s": 1000,
        "burst": 100,
    }
    return WebexSource("acme-webex", WebexOptions.model_validate(options | extra))


async def collect(source: WebexSource) -> ListSink:
    sink = ListSink()
    await source.collect(sink)
    return sink


def minimum_requests(pages: int = -(-(ROOMS + PHONES) // PAGE)) -> int:
    return 1 + pages + ROOMS  # one token, the listing's pages, one status per room


def request(dev: str, action: ActionKind, seconds: float = 30, **extra: object) -> ActionRequest:
    return ActionRequest(
        device_id=dev, action=action, deadline=utcnow() + timedelta(seconds=seconds), **extra
    )


def room_ids(fake: FakeWebex) -> list[str]:
    return [d.id for d in fake.devices.values() if d.has_xapi]


async def test_complete_inventory_over_pages_with_the_minimum_of_requests(webex) -> None:
    fake, server = webex
    source = source_for(server, fake)
    assert isinstance(source, Source)
    assert isinstance(source, Acts)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    assert fake.requests["GET /v1/devices"] == 4
    assert fake.total_requests == minimum_requests()
    rooms = [o for o in sink.observations.values() if o.identity.family == "roomos"]
    phones = [o for o in sink.observations.values() if o.identity.family == "mpp"]
    assert len(rooms) == ROOMS
    assert len(phones) == PHONES
    room = rooms[0]
    assert room.firmware_version() == "RoomOS 11.17.1.7"
    assert room.software[0].scheme == "cisco-roomos"
    assert room.management == "webex-cloud"
    assert room.upgrade_channel == "stable"
    assert room.connection == "connected"
    assert room.uptime_s == 482113
    assert room.raw["upgrade_status"] == "Succeeded"
    assert [p.kind for p in room.peripherals] == ["touchpanel"]
    assert room.identity.model == "Cisco Room Kit"
    phone = phones[0]
    assert phone.firmware_version() == "14-2-1MPP"
    assert phone.software[0].scheme == "cisco-mpp"
    assert phone.raw["webex_callingDeviceId"]
    assert not sink.errors


@pytest.mark.parametrize("quirk", ["max_null", "drop_filter"])
async def test_next_link_quirks_do_not_lose_or_repeat_devices(webex, quirk: str) -> None:
    fake, server = webex
    fake.faults.next_link_quirk = quirk
    source = source_for(server, fake, org_id="acme", page_size=PAGE)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES


async def test_429_is_waited_out_as_retry_after_says(webex) -> None:
    fake, server = webex
    fake.faults.throttle = 2
    fake.faults.retry_after = "0"
    source = source_for(server, fake)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    assert fake.total_requests == minimum_requests() + 2


async def test_429_without_body_or_retry_after_backs_off_and_recovers(webex) -> None:
    fake, server = webex
    fake.faults.throttle = 1
    fake.faults.retry_after = None
    fake.faults.throttle_empty_body = True
    source = source_for(server, fake)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    assert fake.total_requests == minimum_requests() + 1


async def test_401_after_token_expiry_refreshes_once_and_continues(webex) -> None:
    fake, server = webex
    fake.faults.token_uses = 3
    source = source_for(server, fake)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    # 9 reads (4 pages, 5 statuses), 3 per token: the first token and one refresh per expiry.
    assert fake.requests["POST /v1/access_token"] == 3
    # Each expiry refuses at most the reads in flight then (concurrency 4), each sent once more.
    assert fake.total_requests <= minimum_requests() + 2 + 2 * 4


async def test_refused_refresh_token_is_auth_failed_without_secrets(webex) -> None:
    fake, server = webex
    source = source_for(server, fake, refresh_token="revoked-refresh-token")
    with pytest.raises(AuthFailed) as err:
        await collect(source)
    await source.aclose()
    assert "revoked-refresh-token" not in str(err.value)
    assert fake.client[1] not in str(err.value)
    assert "ROUTER_FAKE" in str(err.value)
    assert fake.total_requests == 1


async def test_malformed_listing_is_a_clear_bad_response(webex) -> None:
    fake, server = webex
    fake.faults.malformed = {"devices"}
    source = source_for(server, fake)
    with pytest.raises(BadResponse, match="not JSON"):
        await collect(source)
    await source.aclose()


async def test_one_unreachable_device_does_not_stop_the_others(webex) -> None:
    fake, server = webex
    away = room_ids(fake)[0]
    fake.faults.offline = {away}
    source = source_for(server, fake, retries=1)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    bad = sink.observations[device_id(away)]
    assert bad.errors
    assert "503" in bad.errors[0]
    assert "ROUTER_FAKE" in bad.errors[0]
    assert bad.firmware_version() == "RoomOS 11.17.1.7"  # still known from the listing
    assert all(not o.errors for k, o in sink.observations.items() if k != device_id(away))
    assert fake.requests["GET /v1/xapi/status"] == ROOMS + 1  # one retry, no storm


async def test_missing_status_scope_is_an_error_per_device_not_an_outage(webex) -> None:
    fake, server = webex
    fake.scopes = SCOPES_ALL - {"spark:xapi_statuses"}
    source = source_for(server, fake)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    errors = [o.errors[0] for o in sink.observations.values() if o.errors]
    assert len(errors) == ROOMS
    assert "403" in errors[0]
    assert "spark:xapi_statuses" in errors[0]


async def test_server_slower_than_the_deadline_is_unreachable(webex) -> None:
    fake, server = webex
    fake.faults.slow_s = 2
    source = source_for(server, fake, request_deadline_s=0.3)
    with pytest.raises(Unreachable, match="no answer within"):
        await collect(source)
    await source.aclose()


async def test_restart_is_followed_until_the_device_is_back(webex) -> None:
    fake, server = webex
    source = source_for(server, fake, retries=0)  # each read while rebooting shows as unreachable
    await collect(source)
    room = room_ids(fake)[0]
    result = await source.act(request(device_id(room), ActionKind.RESTART))
    await source.aclose()
    assert result.state is ActionState.SUCCEEDED, result
    assert result.history[-1] == "back"
    assert "unreachable" in result.history
    assert fake.devices[room].commands == ["SystemUnit.Boot"]
    assert result.operation_id is not None
    assert result.operation_id.startswith("ROUTER_FAKE")


async def test_restart_of_a_device_that_never_returns_times_out(webex) -> None:
    fake, server = webex
    source = source_for(server, fake, retries=0)
    await collect(source)
    room = room_ids(fake)[0]
    fake.devices[room].restart_fails = True
    result = await source.act(request(device_id(room), ActionKind.RESTART, seconds=1))
    await source.aclose()
    assert result.state is ActionState.TIMED_OUT
    assert "did not come back" in result.detail


async def test_409_already_in_progress_fails_with_the_tracking_id(webex) -> None:
    fake, server = webex
    source = source_for(server, fake)
    await collect(source)
    fake.faults.conflict = 1
    result = await source.act(request(device_id(room_ids(fake)[0]), ActionKind.RESTART))
    await source.aclose()
    assert result.state is ActionState.FAILED
    assert "another operation is in progress" in result.detail
    assert "ROUTER_FAKE" in result.detail


async def test_upgrade_is_followed_to_the_new_version(webex) -> None:
    fake, server = webex
    source = source_for(server, fake)
    await collect(source)
    room = room_ids(fake)[1]
    fake.devices[room].next_software = "RoomOS 11.22.1.4 77aa00bb11c"
    result = await source.act(request(device_id(room), ActionKind.UPDATE, target_version="RoomOS 11.22.1.4"))
    assert result.state is ActionState.SUCCEEDED, result
    assert result.history[0] == "from RoomOS 11.17.1.7"
    assert "InProgress/Downloading" in result.history
    assert "Succeeded" in result.history
    sink = await collect(source)
    await source.aclose()
    assert sink.observations[device_id(room)].firmware_version() == "RoomOS 11.22.1.4"


async def test_failed_upgrade_reports_the_device_message(webex) -> None:
    fake, server = webex
    source = source_for(server, fake)
    await collect(source)
    room = room_ids(fake)[1]
    fake.devices[room].next_software = "RoomOS 11.22.1.4 77aa00bb11c"
    fake.devices[room].upgrade_fails = True
    result = await source.act(request(device_id(room), ActionKind.UPDATE))
    await source.aclose()
    assert result.state is ActionState.FAILED
    assert "InstallationFailed" in result.detail
    assert "Package verification failed" in result.detail
    assert fake.devices[room].record["software"].startswith("RoomOS 11.17.1.7")


@pytest.mark.parametrize("action", list(ActionKind))
async def test_calling_phone_actions_are_manual_steps(webex, action: ActionKind) -> None:
    fake, server = webex
    source = source_for(server, fake)
    sink = await collect(source)
    phone = next(o.device_id for o in sink.observations.values() if o.identity.family == "mpp")
    before = fake.total_requests
    assert source.capabilities(phone) == frozenset()
    result = await source.act(request(phone, action))
    await source.aclose()
    assert result.state is ActionState.MANUAL
    assert result.manual_steps
    assert any("Control Hub" in step for step in result.manual_steps)
    assert result.console_url
    assert fake.total_requests == before


async def test_log_bundle_returns_the_log_id(webex) -> None:
    fake, server = webex
    source = source_for(server, fake)
    await collect(source)
    result = await source.act(request(device_id(room_ids(fake)[0]), ActionKind.LOGS))
    await source.aclose()
    assert result.state is ActionState.SUCCEEDED
    assert result.operation_id is not None
    assert result.operation_id.startswith("fake-")


@pytest.mark.parametrize("kind", ["webex", "xapi"])
def test_entry_point_and_example_options(kind: str) -> None:
    assert kind in known_kinds()
    factory = load_driver(kind)
    assert factory.kind == kind
    options = factory.options_model.model_validate(factory.example_options)
    for secret in ("client_secret", "refresh_token", "password"):
        if secret in factory.example_options:
            assert str(factory.example_options[secret]) not in options.model_dump_json()
            assert str(factory.example_options[secret]) not in repr(options)


def test_options_name_the_missing_credentials() -> None:
    with pytest.raises(ValueError, match="client_id, client_secret and refresh_token together"):
        WebexOptions.model_validate({"client_id": "c", "refresh_token": "r"})
    with pytest.raises(ValueError, match="set access_token"):
        WebexOptions.model_validate({})


async def test_one_unusable_record_is_a_device_error_and_the_rest_are_collected(webex) -> None:
    fake, server = webex
    odd = room_ids(fake)[2]
    fake.devices[odd].record["displayName"] = "x" * 5000
    source = source_for(server, fake)
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES - 1
    assert "unusable device record: hostname: String should have at most 1024" in sink.errors[device_id(odd)]


async def test_calling_details_are_read_once_per_phone(webex) -> None:
    fake, server = webex
    source = source_for(server, fake, read_calling_details=True)
    sink = await collect(source)
    await source.aclose()
    phones = [o for o in sink.observations.values() if o.identity.family == "mpp"]
    assert [p.raw["calling_activationState"] for p in phones] == ["activated"] * PHONES
    assert phones[0].raw["calling_upgradeChannelEnabled"] == "True"
    assert fake.total_requests == minimum_requests() + PHONES


async def test_service_app_gets_its_first_token_then_refreshes(webex) -> None:
    fake, server = webex
    fake.faults.token_uses = 4
    options = {
        "base_url": f"http://127.0.0.1:{server.port}/v1",
        "application_id": fake.application_id,
        "integration_token": "fake-integration-token",
        "target_org_id": "acme-org",
        "client_id": fake.client[0],
        "client_secret": fake.client[1],
        "retry_min_s": 0.01,
        "concurrency": 1,
    }
    source = WebexSource("acme-webex", WebexOptions.model_validate(options))
    sink = await collect(source)
    await source.aclose()
    assert len(sink.observations) == ROOMS + PHONES
    assert fake.requests["POST /v1/applications/fake-service-app/token"] == 1
    assert fake.requests["POST /v1/access_token"] == 2  # 9 reads, 4 per token


def test_service_app_options_name_what_is_missing() -> None:
    with pytest.raises(ValueError, match="a service app also needs target_org_id, client_id, client_secret"):
        WebexOptions.model_validate({"application_id": "a", "integration_token": "t"})
