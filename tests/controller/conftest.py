"""A controller in the test's event loop, on a broker and database picked by parametrisation."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from collector.model import Identity, Observation, SoftwareComponent
from collector.wire import AgentState, AgentStatus, ObservationBatch, encode
from collector.wire.topics import TopicKind, topic
from controller import service
from controller.auth import Role
from controller.settings import ControllerSettings, settings_from_dict
from controller.storage import Store, enrollment, tokens
from tests.fixtures.net import free_port

BROKERS = ("mosquitto", "amqtt")
DATABASES = ("sqlite", "postgres")


@dataclass
class BrokerInfo:
    kind: str
    host: str
    port: int
    server: Any

    @property
    def username(self) -> str | None:
        return getattr(self.server, "username", None)

    @property
    def v5(self) -> bool:
        return self.kind == "mosquitto"


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> BrokerInfo:
    server = request.getfixturevalue("mosquitto" if request.param == "mosquitto" else "amqtt_broker")
    return BrokerInfo(request.param, server.host, server.port, server)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path}/fernwart.db"


def controller_config(broker: BrokerInfo, database_url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"url": database_url},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "prefix": prefix,
            "client_id": f"ctl-{uuid.uuid4().hex[:8]}",
            "protocol": "5" if broker.v5 else "3.1.1",
            "share_group": "fwtest" if broker.v5 else "",
            **({"username": broker.username} if broker.username else {}),
        },
        "http": {"host": "127.0.0.1", "port": free_port()},
        "ingest": {"flush_interval_ms": 5},
        "sites": {"site-1": {"tenant": "acme"}},
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def make_observation(
    device_id: str,
    *,
    firmware: str | None = "11.5.1",
    vendor: str = "cisco",
    observed_at: datetime | None = None,
    padding: int = 0,
) -> Observation:
    software = [SoftwareComponent(name="firmware", version=firmware)] if firmware else []
    return Observation(
        device_id=device_id,
        driver="snmp",
        observed_at=observed_at or datetime.now(UTC),
        identity=Identity(vendor=vendor, family="roomos", model="Room Kit", serial=f"SN-{device_id}"),
        software=software,
        raw={"sysDescr": "x" * padding} if padding else {},
    )


def make_batch(
    site: str,
    agent: str,
    seq: int,
    observations: list[Observation],
    *,
    boot: int = 1,
    batch_id: uuid.UUID | None = None,
) -> ObservationBatch:
    return ObservationBatch(
        site_id=site,
        agent_id=agent,
        sent_at=datetime.now(UTC),
        batch_id=batch_id or uuid.uuid4(),
        boot=boot,
        seq=seq,
        observations=observations,
    )


def make_status(
    site: str,
    agent: str,
    *,
    state: AgentState = AgentState.ONLINE,
    boot: int = 1,
    intervals: dict[str, float] | None = None,
) -> AgentStatus:
    intervals = intervals or {}
    return AgentStatus(
        site_id=site,
        agent_id=agent,
        sent_at=datetime.now(UTC),
        state=state,
        boot=boot,
        version="0.1.0",
        capabilities=["snmp"],
        devices=sorted(intervals),
        intervals_s=intervals,
    )


# The sites the tests send for, each with the one agent enrolled for it (the controller accepts
# messages for enrolled sites only, see controller.storage.enrollment).
TEST_SITES: tuple[tuple[str, str], ...] = (("site-1", "agent-1"), ("s", "a"))


async def enroll(store: Store, *sites: tuple[str, str]) -> dict[str, str]:
    """Enroll each (site, agent) unless it already is (a store opened again); returns the broker
    passwords of the sites enrolled now."""
    passwords = {}
    for site, agent in sites:
        current = await enrollment.get_enrollment(store, site)
        if current is not None and current.active and current.agent_id == agent:
            continue
        _, passwords[site] = await enrollment.enroll(store, site, agent, enrolled_by="tests")
    return passwords


@contextlib.asynccontextmanager
async def open_store(
    url: str, *, sites: tuple[tuple[str, str], ...] = TEST_SITES, **options: Any
) -> AsyncIterator[Store]:
    """``Store.open`` with ``sites`` enrolled."""
    async with Store.open(url, **options) as store:
        await enroll(store, *sites)
        yield store


async def init_database(url: str) -> None:
    """What ``fernwart controller init`` does: create and migrate (the daemon refuses to)."""
    async with Store.open(url, create=True):
        pass


@dataclass
class Harness:
    broker: BrokerInfo
    settings: ControllerSettings
    prefix: str
    store: Store
    stop: asyncio.Event
    task: asyncio.Task[None]
    publisher: aiomqtt.Client
    token: str = ""  # a noc-admin API token, created for the test

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.http.host}:{self.settings.http.port}"

    def topic(self, site: str, kind: TopicKind = TopicKind.OBS) -> str:
        return topic(site, kind, self.prefix)

    async def publish(
        self, site: str, payload: bytes | str, kind: TopicKind = TopicKind.OBS, *, retain: bool = False
    ) -> None:
        await self.publisher.publish(self.topic(site, kind), payload, qos=1, retain=retain, timeout=30)

    async def publish_raw(self, topic_name: str, payload: bytes | str) -> None:
        await self.publisher.publish(topic_name, payload, qos=1, timeout=30)

    async def send_batch(self, batch: ObservationBatch) -> None:
        await self.publish(batch.site_id, encode(batch))

    async def send_status(self, status: AgentStatus) -> None:
        await self.publish(status.site_id, encode(status), TopicKind.STATUS)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout_s`` (never a timing assert)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def publisher_client(broker: BrokerInfo) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=f"pub-{uuid.uuid4().hex[:8]}",
        username=broker.username,
        protocol=aiomqtt.ProtocolVersion.V5 if broker.v5 else aiomqtt.ProtocolVersion.V311,
        timeout=30,
        max_queued_outgoing_messages=100_000,
    )


@pytest.fixture
async def make_harness(
    broker: BrokerInfo, database_url: str, topic_prefix: str
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    harnesses: list[tuple[Harness, Any]] = []

    async def start(sites: tuple[tuple[str, str], ...] = TEST_SITES, **extra: Any) -> Harness:
        settings = settings_from_dict(controller_config(broker, database_url, topic_prefix, **extra))
        await init_database(database_url)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(settings, stop, handle_signals=False))
        await wait_for_connection(settings, task)
        # The store the service opened is private to it; the test reads through its own, opened
        # after the service migrated (Alembic's context is process-global: no concurrent upgrades).
        store_cm = Store.open(settings.database.url.get_secret_value())
        store = await store_cm.__aenter__()
        await enroll(store, *sites)
        publisher = publisher_client(broker)
        await publisher.__aenter__()
        token = await admin_token(store)
        harness = Harness(broker, settings, topic_prefix, store, stop, task, publisher, token)
        harnesses.append((harness, store_cm))
        return harness

    try:
        yield start
    finally:
        for harness, store_cm in harnesses:
            harness.stop.set()
            async with asyncio.timeout(30):
                await harness.task
            with contextlib.suppress(aiomqtt.MqttError):  # the broker may have been restarted
                await harness.publisher.__aexit__(None, None, None)
            await store_cm.__aexit__(None, None, None)


async def admin_token(store: Store, name: str = "test-admin") -> str:
    """A noc-admin token in ``store``, as ``fernwart controller token create`` makes one."""
    _info, token = await tokens.create_token(store, name=name, role=Role.NOC_ADMIN)
    return token


async def auth_headers(
    store: Store, role: Role = Role.NOC_ADMIN, tenant: str | None = None
) -> dict[str, str]:
    _info, token = await tokens.create_token(store, name=f"test-{role.value}", role=role, tenant=tenant)
    return {"Authorization": f"Bearer {token}"}


async def wait_for_connection(settings: ControllerSettings, task: asyncio.Task[None]) -> None:
    """Until /healthz says MQTT is connected (set only after the subscriptions were granted)."""
    url = f"http://{settings.http.host}:{settings.http.port}/healthz"

    async def healthy() -> bool:
        if task.done():
            task.result()
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                body = await resp.json()
                return bool(body.get("mqtt") == "connected")
        except aiohttp.ClientError:
            return False

    await wait_until(healthy, what="controller connected and subscribed")


def obs_age(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
