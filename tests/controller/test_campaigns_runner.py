"""The campaign runner on a real store (both databases): canary then the rest, verified only by the
version each device reports through the ingest path, a manual job open until its version changes,
a failing device halts the campaign, a channel that cannot send leaves the job waiting, notices
by a real SMTP server before the window.

The command channel here is a recorder implementing the CommandChannel protocol: the signed MQTT
channel is branch ``commands``; what its agents' drivers answer is given to the runner as the
channel would (``on_result``), and what the devices report arrives as observations.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from collector.model import Observation, SoftwareComponent
from collector.wire import ActionKind, ActionRequest, ActionResult, ActionState
from controller.campaigns.notices import NoticeSender, SmtpConfig
from controller.campaigns.runner import CampaignRunner
from controller.campaigns.service import run_campaigns
from controller.campaigns.spec import CampaignSpec
from controller.settings import settings_from_dict
from controller.storage import Store, audit, campaign_store, contracts
from controller.storage import contract_models as cm
from tests.controller.catalog_helpers import observation
from tests.controller.conftest import make_batch, open_store, wait_until
from tests.controller.test_campaigns_notices import Mailbox, smtp  # noqa: F401 - the fixture
from tests.controller.test_catalog_api import _received
from tests.fixtures.net import free_port

# Wednesday 2026-05-13 22:00 Vienna: the window the plan chose; the runner's clock is set by the test.
WINDOW = (datetime(2026, 5, 13, 20, 0, tzinfo=UTC), datetime(2026, 5, 13, 23, 0, tzinfo=UTC))
OLD, NEW = "RoomOS 11.14.2.3 a1b2c3d4e5f", "RoomOS 26.2.2.2 0f1e2d3c4b5"
POLICY = {
    "customers": {
        "acme": {"sites": ["site-1"], "contacts": [{"name": "Maria", "email": "maria@acme.example"}]}
    }
}
WINDOWS = {
    "windows": [
        {
            "customer": "acme",
            "start": "2026-01-07T22:00:00",
            "rrule": "FREQ=WEEKLY;BYDAY=WE",
            "duration": "PT3H",
        }
    ]
}


@dataclass
class RecordingChannel:
    sent: list[tuple[str, ActionRequest, str]] = field(default_factory=list)
    broken: bool = False
    callbacks: list[object] = field(default_factory=list)

    async def send(self, site_id: str, request: ActionRequest, *, expires_at: datetime, job_id: str) -> str:
        if self.broken:
            raise ConnectionError("broker not connected")
        assert expires_at == request.deadline
        command_id = str(uuid.uuid4())
        self.sent.append((site_id, request, job_id))
        return command_id

    def on_result(self, callback: object) -> None:
        self.callbacks.append(callback)

    def jobs(self) -> list[str]:
        return [job for _site, _request, job in self.sent]


@dataclass
class Env:
    store: Store
    now: datetime = WINDOW[0]
    seq: int = 1

    async def report(self, device_id: str, firmware: str) -> None:
        obs = observation(device_id, "cisco", "roomos", "Cisco Room Kit Pro", firmware)
        await self.store.write_flush([_received(make_batch("site-1", "agent-1", self.seq, [obs]))])
        self.seq += 1


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[Env]:
    async with open_store(database_url, tenant_of=lambda _site: "acme") as store:
        found = Env(store)
        for device in ("d1", "d2", "d3"):
            await found.report(device, OLD)
        await contracts.import_contracts(store, POLICY, WINDOWS, actor="test")
        yield found


async def campaign(
    env: Env, devices: dict[str, int], window: tuple[datetime, datetime] = WINDOW, **spec: Any
) -> int:
    made = CampaignSpec(name="t", customer="acme", targets={"roomos": "26.2.2.2"}, **spec)
    row = await campaign_store.create_campaign(env.store, made.model_dump(), actor="test")
    jobs = [
        {
            "site_id": "site-1",
            "device_id": d,
            "action": "update",
            "update_class": "security",
            "execution": "automatic",
            "target": "26.2.2.2",
            "from_version": OLD,
            "wave": wave,
            "reason_code": "scheduled",
            "reason": "security",
            "start": window[0],
            "end": window[1],
        }
        for d, wave in devices.items()
    ]
    await campaign_store.replace_plan(env.store, row["id"], "acme", jobs, actor="test")
    await campaign_store.change_state(env.store, row["id"], "approved", actor="test")
    return int(row["id"])


async def states(env: Env, cid: int) -> dict[str, str]:
    return {j["device_id"]: j["state"] for j in await campaign_store.list_jobs(env.store, cid)}


def done(device: str, state: ActionState = ActionState.SUCCEEDED, **extra: Any) -> ActionResult:
    return ActionResult(device_id=device, action=ActionKind.UPDATE, state=state, detail=state.value, **extra)


async def test_canary_then_the_rest_verified_by_reported_versions(env: Env) -> None:
    cid = await campaign(env, {"d1": 1, "d2": 2, "d3": 2}, soak_s=0)
    channel = RecordingChannel()
    runner = CampaignRunner(env.store, channel, clock=lambda: env.now)
    await runner.step()
    assert (await campaign_store.get_campaign(env.store, cid) or {})["state"] == "running"
    by_device = {j["device_id"]: str(j["id"]) for j in await campaign_store.list_jobs(env.store, cid)}
    assert channel.jobs() == [by_device["d1"]]  # the canary alone
    assert channel.sent[0][1].target_version == "26.2.2.2"
    await runner.on_result(by_device["d1"], done("d1"))
    await runner.step()
    assert channel.jobs() == [by_device["d1"]]  # the vendor said done; the device has not said so
    assert (await states(env, cid))["d1"] == "succeeded"

    env.now += timedelta(minutes=10)
    await env.report("d1", NEW)
    await runner.step()
    assert (await states(env, cid))["d1"] == "verified"
    assert sorted(channel.jobs()[1:]) == sorted([by_device["d2"], by_device["d3"]])

    console = "https://admin.webex.example/devices/d3"
    await runner.on_result(by_device["d2"], done("d2"))
    await runner.on_result(
        by_device["d3"],
        done("d3", ActionState.MANUAL, manual_steps=["upgrade in Control Hub"], console_url=console),
    )
    await env.report("d2", NEW)
    await runner.step()
    assert await states(env, cid) == {"d1": "verified", "d2": "verified", "d3": "manual"}
    assert (await campaign_store.get_campaign(env.store, cid) or {})["state"] == "running"
    await env.report("d3", NEW)
    await runner.step()
    assert (await states(env, cid))["d3"] == "verified"
    assert (await campaign_store.get_campaign(env.store, cid) or {})["state"] == "done"

    job = await campaign_store.get_job(env.store, int(by_device["d3"]))
    assert job is not None
    assert [h["state"] for h in job["history"]] == ["planned", "sent", "running", "manual", "verified"]
    assert console in job["history"][3]["detail"]
    assert job["command_id"]
    kinds = {e["kind"] for e in await audit.entries(env.store, customer_id="acme")}
    assert {"command", "outcome", "campaign"} <= kinds


async def test_a_failing_device_halts_and_an_unsendable_command_waits(env: Env) -> None:
    cid = await campaign(
        env, {"d1": 1, "d2": 1, "d3": 1}, failure_threshold_pct=30, failure_min_finished=1, retries=0
    )
    channel = RecordingChannel(broken=True)
    runner = CampaignRunner(env.store, channel, clock=lambda: env.now)
    await runner.step()
    assert set((await states(env, cid)).values()) == {"planned"}  # not sent: no attempt used
    channel.broken = False
    await runner.step()
    assert len(channel.sent) == 3
    job_of = {request.device_id: job for _site, request, job in channel.sent}
    await runner.on_result(job_of["d1"], done("d1", ActionState.FAILED))
    row = await campaign_store.get_campaign(env.store, cid)
    assert row is not None
    assert row["state"] == "halted"
    assert "1 of 1 finished jobs failed" in row["state_reason"]
    await runner.on_result(job_of["d2"], done("d2"))
    await env.report("d2", NEW)
    await runner.step()
    assert (await states(env, cid))["d2"] == "verified"  # in flight when it halted: still verified


async def test_notices_go_out_before_the_window_and_unnotified_jobs_wait(
    env: Env,
    smtp: tuple[Mailbox, int],  # noqa: F811 - the fixture
) -> None:
    mailbox, port = smtp
    cid = await campaign(env, {"d1": 1})
    channel = RecordingChannel()
    sender = NoticeSender(SmtpConfig("127.0.0.1", port))
    runner = CampaignRunner(env.store, channel, sender, clock=lambda: env.now)
    env.now = datetime(2026, 5, 11, 9, 0, tzinfo=UTC)  # Monday 11:00 Vienna: inside working hours, in time
    await runner.step()
    assert len(mailbox.messages) == 1
    assert b"site-1/d1" in mailbox.messages[0][2]
    assert (await states(env, cid))["d1"] == "notified"
    env.now = WINDOW[0]
    await runner.step()
    assert len(channel.sent) == 1
    notices = await audit.entries(env.store, kind="notice")
    assert notices[0]["detail"]["recipients"] == ["maria@acme.example"]
    assert runner.registry.get_sample_value("fernwart_campaign_notices_total", {"outcome": "delivered"}) == 1
    assert (
        runner.registry.get_sample_value("fernwart_campaign_job_transitions_total", {"state": "running"}) == 1
    )
    async with env.store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(cm.JOBS.c.state))).all()
    assert [r.state for r in rows] == ["running"]  # the channel took it


async def test_a_notice_that_reaches_nobody_is_retried_later_not_every_step(env: Env) -> None:
    cid = await campaign(env, {"d1": 1})
    sender = NoticeSender(SmtpConfig("127.0.0.1", free_port(), timeout_s=5))  # nothing listens there
    runner = CampaignRunner(env.store, RecordingChannel(), sender, clock=lambda: env.now)
    env.now = datetime(2026, 5, 11, 9, 0, tzinfo=UTC)  # Monday 11:00 Vienna
    for minutes in (0, 1, 14, 16):
        env.now = datetime(2026, 5, 11, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        await runner.step()
    tried = await audit.entries(env.store, kind="notice")
    assert [e["at"] - tried[0]["at"] for e in tried] == [timedelta(0), timedelta(minutes=16)]
    assert all(e["detail"]["errors"][0].startswith("smtp_unreachable") for e in tried)
    assert (await states(env, cid))["d1"] == "planned"  # nobody was told: the window is not used
    env.now = WINDOW[0]
    await runner.step()
    assert (await states(env, cid))["d1"] == "deferred"


async def test_a_plan_that_holds_every_device_is_done(env: Env) -> None:
    made = CampaignSpec(name="nothing to do", customer="acme")
    row = await campaign_store.create_campaign(env.store, made.model_dump(), actor="test")
    held = [
        {
            "site_id": "site-1",
            "device_id": "d1",
            "action": "hold",
            "reason_code": "up_to_date",
            "reason": "at target",
        }
    ]
    await campaign_store.replace_plan(env.store, row["id"], "acme", held, actor="test")
    await campaign_store.change_state(env.store, row["id"], "approved", actor="test")
    await CampaignRunner(env.store, RecordingChannel(), clock=lambda: env.now).step()
    found = await campaign_store.get_campaign(env.store, row["id"])
    assert found is not None
    assert (found["state"], found["state_reason"]) == ("done", "every job finished")


async def test_the_daemon_task_registers_the_runner_for_results(env: Env, tmp_path: Path) -> None:
    settings = settings_from_dict({"database": {"url": f"sqlite+aiosqlite:///{tmp_path}/unused.db"}})
    channel = RecordingChannel()
    stop = asyncio.Event()
    task = asyncio.create_task(run_campaigns(settings, env.store, stop, channel))

    async def registered() -> bool:
        return bool(channel.callbacks)

    await wait_until(registered, 10, "the runner's result callback")
    stop.set()
    async with asyncio.timeout(10):
        runner = await task
    assert channel.callbacks == [runner.on_result]


async def test_a_teams_rooms_app_job_is_verified_by_the_app_version_the_pc_reports(env: Env) -> None:
    # A Teams Rooms PC reports no firmware of its own (its OS is Windows); the campaign plans the
    # Teams Rooms app, a manual job (no API updates the app), verified by the app's new version.
    def teams_pc(app: str) -> Observation:
        pc = observation("pc1", "lenovo", "teams-rooms", "ThinkSmart Core", None)
        app_row = SoftwareComponent(name="teams_rooms_app", version=app, scheme="teams-rooms")
        return pc.model_copy(update={"driver": "graph", "software": [app_row]})

    await env.store.write_flush([_received(make_batch("site-1", "agent-1", env.seq, [teams_pc("5.4.88.0")]))])
    env.seq += 1
    made = CampaignSpec(name="teams", customer="acme", targets={"teams-rooms": "5.5.12.0"})
    row = await campaign_store.create_campaign(env.store, made.model_dump(), actor="test")
    job = {
        "site_id": "site-1",
        "device_id": "pc1",
        "action": "update",
        "update_class": "feature",
        "execution": "manual",
        "target": "5.5.12.0",
        "from_version": "5.4.88.0",
        "wave": 1,
        "reason_code": "scheduled",
        "reason": "feature",
        "start": WINDOW[0],
        "end": WINDOW[1],
    }
    await campaign_store.replace_plan(env.store, row["id"], "acme", [job], actor="test")
    await campaign_store.change_state(env.store, row["id"], "approved", actor="test")
    channel = RecordingChannel()
    runner = CampaignRunner(env.store, channel, clock=lambda: env.now)
    await runner.step()
    await runner.step()
    assert (await states(env, row["id"]))["pc1"] != "verified"  # still on 5.4.88.0
    await env.store.write_flush([_received(make_batch("site-1", "agent-1", env.seq, [teams_pc("5.5.12.0")]))])
    env.seq += 1
    await runner.step()
    assert (await states(env, row["id"]))["pc1"] == "verified"
