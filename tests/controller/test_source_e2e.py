"""End to end through the source contract: an agent polling a tenant-like ``[[sources]]`` entry
(a Teams Room on Lenovo hardware with its Teams Rooms app, a Cisco codec on RoomOS) → real
Mosquitto → controller → findings over REST for both the app component and the codec firmware, on
SQLite and PostgreSQL. The source is an in-test class with the shape a vendor driver reports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from pydantic import BaseModel, ConfigDict

from agent.service import AgentService
from agent.settings import parse_settings
from collector.base import Sink
from collector.model import Identity, Observation, SoftwareComponent, utcnow
from collector.registry import UnknownDriverError
from tests.agent.test_service import agent_settings
from tests.controller.catalog_helpers import CSAF, TCE, all_findings, poll
from tests.controller.conftest import Harness
from tests.controller.test_component_findings import ADVISORY, teams_rooms_advisory

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


class TenantOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    teams_app: str = "4.19.57.0"
    roomos: str = "RoomOS 11.14.2.3 1c2d3e4f5a6"


class TenantSource:
    """Lists two devices per collect, as a cloud source does: each with its own device id."""

    multi_device: ClassVar[bool] = True
    kind: ClassVar[str] = "tenant"
    options_model: ClassVar[type[BaseModel]] = TenantOptions
    example_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, source_id: str, options: TenantOptions) -> None:
        self.source_id = source_id
        self.options = options

    async def collect(self, sink: Sink) -> None:
        sink.observe(
            Observation(
                device_id="mtr-1",
                driver="graph",
                observed_at=utcnow(),
                identity=Identity(vendor="Lenovo", family="teams-rooms", model="ThinkSmart Core"),
                software=[
                    SoftwareComponent(name="firmware", version="10.0.22631.3447", scheme="windows"),
                    SoftwareComponent(name="teams_app", version=self.options.teams_app, scheme="teams-rooms"),
                ],
            )
        )
        sink.observe(
            Observation(
                device_id="codec-1",
                driver="webex",
                observed_at=utcnow(),
                identity=Identity(vendor="cisco", family="roomos", model="Cisco Desk Pro"),
                software=[
                    SoftwareComponent(name="firmware", version=self.options.roomos, scheme="cisco-roomos")
                ],
            )
        )

    async def aclose(self) -> None:
        return None


def lookup(kind: str) -> Any:
    if kind != TenantSource.kind:
        raise UnknownDriverError(kind, [TenantSource.kind])
    return TenantSource


async def test_an_app_component_and_a_codec_firmware_from_one_source_both_get_findings(
    make_harness: Callable[..., Awaitable[Harness]], tmp_path: Path
) -> None:
    h = await make_harness()
    raw = agent_settings(h.broker.server, h.prefix, tmp_path, devices=0).model_dump(mode="json")
    raw["sources"] = [{"id": "tenant-a", "kind": "tenant", "interval_s": 0.5}]
    settings = parse_settings(raw, lookup=lookup)
    agent = AgentService(settings, driver_factory=lambda entry: TenantSource(entry.id, TenantOptions()))
    stop = asyncio.Event()
    async with aiohttp.ClientSession(headers=h.auth) as session, asyncio.TaskGroup() as tg:
        tg.create_task(agent.run(stop))
        for body in (json.dumps(teams_rooms_advisory()), (CSAF / f"{TCE}.json").read_text()):
            headers = {"Content-Type": "application/json"}
            async with session.post(f"{h.http_url}/api/v1/advisories", data=body, headers=headers) as resp:
                assert resp.status in {200, 201}, await resp.text()

        async def both_found() -> bool:
            found = {(f["device_id"], f["advisory_id"]): f for f in await all_findings(session, h.http_url)}
            return ("mtr-1", ADVISORY) in found and ("codec-1", TCE) in found

        await poll(both_found, timeout_s=60)
        stop.set()
        found = {(f["device_id"], f["advisory_id"]): f for f in await all_findings(session, h.http_url)}
    app = found["mtr-1", ADVISORY]
    assert (app["component"], app["version"], app["status"]) == ("teams_app", "4.19.57.0", "affected")
    codec = found["codec-1", TCE]
    assert (codec["component"], codec["status"]) == ("firmware", "affected")
    assert not [
        key for key in found if key[0] == "mtr-1" and key[1] == TCE
    ]  # a Cisco advisory, not the app's
