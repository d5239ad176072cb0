"""End to end, on SQLite and PostgreSQL: a Teams Rooms app version the Graph source reads from a
(fake) tenant reaches the controller through a real agent and a real Mosquitto, and the catalog
finds it vulnerable; the finding names the component."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller import service
from controller.settings import settings_from_dict
from controller.storage import Store
from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import fixture_tenant
from tests.controller.conftest import (
    BrokerInfo,
    admin_token,
    controller_config,
    enroll,
    init_database,
    wait_for_connection,
    wait_until,
)
from tests.controller.test_component_findings import ADVISORY, teams_rooms_advisory
from tests.fixtures.mqtt import MosquittoBroker
from tests.fixtures.net import terminate

BIN = Path(sys.executable).parent
SITE, AGENT = "site-ms", "agent-ms"
LOGITECH = "intune-8e2a6d71-1c4b-4f0a-b7e3-5d9c0a1f2b02"
OLD_APP = "4.19.82.0"  # below the advisory's fixed 5.0.111.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "fernwart-agent").exists(), reason="needs the installed agent"),
]


@pytest.fixture(params=("sqlite", "postgres"))
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path}/fernwart.db"


def _agent_toml(tmp_path: Path, broker: MosquittoBroker, prefix: str, graph_url: str, tenant: Any) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""\
site_id = "{SITE}"
agent_id = "{AGENT}"
log_level = "debug"

[mqtt]
host = "{broker.host}"
port = {broker.port}
prefix = "{prefix}"

[outbox]
path = "{tmp_path / "outbox.db"}"
linger_ms = 50

[[sources]]
id = "ms-contoso"
kind = "graph"
interval_s = 2.0
timeout_s = 30.0

[sources.options]
tenant_id = "{tenant.tenant_id}"
client_id = "{tenant.client_id}"
client_secret = {{ env = "E2E_GRAPH_SECRET" }}
graph_url = "{graph_url}"
login_url = "{graph_url}"
"""
    )
    return path


@contextlib.asynccontextmanager
async def _controller(
    database_url: str, broker: MosquittoBroker, prefix: str
) -> AsyncIterator[tuple[str, str]]:
    info = BrokerInfo("mosquitto", broker.host, broker.port, broker)
    settings = settings_from_dict(
        controller_config(info, database_url, prefix, sites={SITE: {"tenant": "acme"}})
    )
    await init_database(database_url)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(settings, stop, handle_signals=False))
    try:
        await wait_for_connection(settings, task)
        async with Store.open(settings.database.url.get_secret_value()) as store:
            await enroll(store, (SITE, AGENT))
            token = await admin_token(store)
        yield f"http://{settings.http.host}:{settings.http.port}", token
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


async def test_a_teams_rooms_app_from_graph_is_found_vulnerable_end_to_end(
    database_url: str, mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    tenant = fixture_tenant()
    logitech = tenant.by_intune(LOGITECH.removeprefix("intune-"))
    assert logitech is not None
    logitech.app_version = OLD_APP
    async with (
        FakeGraph([tenant]).running() as fake,
        _controller(database_url, mosquitto, topic_prefix) as (url, token),
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        async with http.post(f"{url}/api/v1/advisories", json=teams_rooms_advisory()) as resp:
            assert resp.status < 300, await resp.text()
        config = _agent_toml(tmp_path, mosquitto, topic_prefix, fake.url, tenant)
        env = {**os.environ, "E2E_GRAPH_SECRET": tenant.client_secret}
        log = (tmp_path / "agent.log").open("wb")
        agent = subprocess.Popen(
            [str(BIN / "fernwart-agent"), "--config", str(config)], stdout=log, stderr=log, env=env
        )
        findings: list[dict[str, Any]] = []
        try:

            async def found() -> bool:
                assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-3000:]
                async with http.get(f"{url}/api/v1/findings", params={"device": LOGITECH}) as resp:
                    findings[:] = (await resp.json()).get("items", [])
                return any(f["advisory_id"] == ADVISORY for f in findings)

            await wait_until(found, timeout_s=90, what="the Teams Rooms app finding")
            async with http.get(f"{url}/api/v1/devices", params={"limit": "100"}) as resp:
                devices = {d["device_id"]: d for d in (await resp.json())["items"]}
        finally:
            terminate(agent)
            log.close()
    (finding,) = [f for f in findings if f["advisory_id"] == ADVISORY]
    assert (finding["component"], finding["version"], finding["status"]) == (
        "teams_rooms_app",
        OLD_APP,
        "affected",
    )
    assert finding["cves"] == ["CVE-2026-0001"]
    graph_devices = {d for d, row in devices.items() if row["driver"] == "graph"}
    assert (
        len(graph_devices) == 4
    )  # two rooms, a phone, a bar; the laptop and the iPhone are no Teams devices
    assert devices[LOGITECH]["family"] == "teams-rooms"
