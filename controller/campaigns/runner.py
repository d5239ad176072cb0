"""The campaign runner: the async part that carries out what the state machine decides.

Every ``tick_s`` it takes the campaigns an operator approved (they start running), follows what
operators changed in the database (pause, resume, cancel), sends the customers' notices that are
due, feeds the devices' reported versions to each campaign's :class:`CampaignMachine`, lets it
start what may start, and stores every effect — job transitions with their history and audit
entries, campaign state changes — before the next step. Commands go out through the
:class:`~controller.campaigns.channel.CommandChannel`; its results come back through
:meth:`CampaignRunner.on_result` (the channel's result callback).

The versions are the ones the devices themselves report (``devices.firmware_version``, written by
ingest): the only evidence that an update happened. A reported version counts as the target when
the firmware catalog parses both to the same release (``RoomOS 26.2.2.2 abc`` is ``26.2.2.2``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry, Counter

from collector.wire import ActionResult
from controller.campaigns.channel import CommandChannel
from controller.campaigns.machine import (
    AWAITING_VERSION,
    TERMINAL,
    CampaignChanged,
    CampaignMachine,
    Effect,
    Job,
    JobChanged,
    Rules,
    RunState,
    Send,
)
from controller.campaigns.notices import Notice, NoticeError, NoticeSender, build_notices, due
from controller.match_keys import Components, planned_software
from controller.scheduler import next_windows, notice_time
from controller.storage import Store, audit, campaign_store, contracts
from controller.storage import models as m
from firmware_catalog import Catalog, Device, Matcher, VersionParseError, parse_version

log = structlog.get_logger(__name__)
ACTOR = "campaign-runner"
_ACTIVE = ("approved", "running", "paused", "halted")
_HORIZON = timedelta(days=60)
NOTICE_RETRY = timedelta(minutes=15)  # a notice that reached nobody is tried again after this


class CampaignRunner:
    def __init__(
        self,
        store: Store,
        channel: CommandChannel | None,
        notices: NoticeSender | None = None,
        *,
        expected_duration: timedelta = timedelta(minutes=30),
        tick_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.channel = channel
        self.notices = notices
        self.expected_duration = expected_duration
        self.tick_s = tick_s
        self.clock = clock
        self.machines: dict[int, CampaignMachine] = {}
        self._lock = asyncio.Lock()
        self._identify = Matcher(Catalog())
        self._notice_tried: dict[tuple[int, datetime], datetime] = {}
        self.registry = registry if registry is not None else CollectorRegistry()
        self.transitions = Counter(
            "fernwart_campaign_job_transitions_total",
            "Campaign job transitions, by the state entered",
            ["state"],
            registry=self.registry,
        )
        self.notices_sent = Counter(
            "fernwart_campaign_notices_total",
            "Customer notices: delivered (to a contact or the webhook), undelivered, or refused by code",
            ["outcome"],
            registry=self.registry,
        )

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except (sa.exc.SQLAlchemyError, OSError) as err:  # the next step tries again
                log.warning("campaign_step_failed", error=str(err)[:300])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_s):
                    await stop.wait()

    async def step(self) -> None:
        """One round over every active campaign (under the runner's lock)."""
        async with self._lock:
            now = self.clock()
            for row in await campaign_store.list_campaigns(self.store):
                if row["state"] in _ACTIVE:
                    await self._step_campaign(row, now)
                else:
                    self.machines.pop(row["id"], None)

    async def on_result(
        self, job_id: str, result: ActionResult, *, site_id: str | None = None, command_id: str | None = None
    ) -> None:
        """The channel's callback: what the agent's driver reported for a job.

        The job id inside a result is the agent's word: a result moves a job only when it names
        the job's device and, as the channel reports it, came from the job's site for the command
        last sent for that job. Otherwise an agent of one site could fail (halting the campaign)
        or "finish" another site's jobs, or answer a command never sent.
        """
        async with self._lock:
            now = self.clock()
            for cid, machine in self.machines.items():
                job = machine.jobs.get(job_id)
                if job is None:
                    continue
                origin_given = site_id is not None or command_id is not None
                if result.device_id != job.device_id or (
                    origin_given and (site_id != job.site_id or command_id != job.command_id)
                ):
                    log.warning(
                        "campaign_result_refused",
                        job=job_id,
                        reported_site=site_id,
                        reported_command=command_id,
                        reported_device=result.device_id,
                    )
                    return
                await self._apply(cid, machine, machine.on_result(job_id, result, now))
                return
        log.info("campaign_result_unmatched", job=job_id, state=result.state.value)

    # -- one campaign -----------------------------------------------------------------------------
    async def _step_campaign(self, row: dict[str, Any], now: datetime) -> None:
        cid, customer = row["id"], row["customer_id"]
        machine = await self._sync(row, now)
        loaded = await contracts.load_contracts(self.store, customer)
        policy = loaded.customers.get(customer)
        if policy is None:
            return
        await self._versions(cid, machine, now)
        if self.notices is not None and machine.state == "running":
            await self._notify(cid, machine, loaded, customer, now)
        reachable = await self._reachable(machine)

        def next_window(job: Job, after: datetime) -> tuple[datetime, datetime] | None:
            return _next_window(loaded, customer, job.site_id, after, now)

        if self.channel is None:  # nothing could reach an agent: start nothing (notices and versions go on)
            return
        effects = machine.tick(now, next_window, lambda job: reachable.get(job.job_id, True))
        await self._apply(cid, machine, effects + machine.settle(now))

    async def _sync(self, row: dict[str, Any], now: datetime) -> CampaignMachine:
        """The campaign's machine, following what operators did (approve starts it; pause, resume)."""
        cid = row["id"]
        if row["state"] == "approved" and self.channel is not None:  # it runs once commands can go out
            row = await campaign_store.change_state(self.store, cid, "running", actor=ACTOR) or row
        machine = self.machines.get(cid)
        if machine is None:
            machine = self.machines[cid] = await self._load(row)
        if row["state"] == "paused" and machine.state == "running":
            machine.pause(now)
        elif row["state"] == "running" and machine.state in {"paused", "halted"}:
            await self._apply(cid, machine, machine.resume(now))
        return machine

    async def _load(self, row: dict[str, Any]) -> CampaignMachine:
        jobs = [
            Job(
                str(j["id"]),
                j["site_id"],
                j["device_id"],
                j["wave"],
                j["target"],
                j["window_start"],
                j["window_end"],
                from_version=j["from_version"],
                state=j["state"],
                attempts=j["attempts"],
                finished_at=j["updated_at"] if j["state"] in TERMINAL else None,
                command_id=j.get("command_id"),
            )
            for j in await campaign_store.list_jobs(self.store, row["id"])
            if j["state"] != "hold" and j["target"] is not None
        ]
        rules = Rules(
            per_site_concurrency=row["per_site_concurrency"],
            failure_threshold_pct=row["failure_threshold_pct"],
            failure_min_finished=row["failure_min_finished"],
            success_threshold_pct=row["success_threshold_pct"],
            soak=timedelta(seconds=row["soak_s"]),
            retries=row["retries"],
            expected_duration=self.expected_duration,
            require_notice=self.notices is not None,
        )
        state: RunState = (
            "paused" if row["state"] == "paused" else "halted" if row["state"] == "halted" else "running"
        )
        return CampaignMachine(rules, jobs, state)

    async def _device_rows(self, machine: CampaignMachine) -> dict[str, Any]:
        keys = {(j.site_id, j.device_id): j.job_id for j in machine.jobs.values() if j.open}
        if not keys:
            return {}
        table = m.DEVICES
        stmt = sa.select(
            table.c.site_id,
            table.c.device_id,
            table.c.vendor,
            table.c.model,
            table.c.family,
            table.c.firmware_version,
            table.c.reachable,
        ).where(sa.tuple_(table.c.site_id, table.c.device_id).in_(list(keys)))
        async with self.store.engine.connect() as conn:
            return {keys[(r.site_id, r.device_id)]: r for r in await conn.execute(stmt)}

    async def _components(self, rows: dict[str, Any]) -> dict[tuple[str, str], Components]:
        """The components of the devices among ``rows`` that report no firmware: what a job
        planned for their Teams app is verified by (controller.match_keys.planned_software)."""
        keys = [(r.site_id, r.device_id) for r in rows.values() if not r.firmware_version]
        if not keys:
            return {}
        table = m.DEVICE_COMPONENTS
        stmt = (
            sa.select(table.c.site_id, table.c.device_id, table.c.component, table.c.version, table.c.scheme)
            .where(sa.tuple_(table.c.site_id, table.c.device_id).in_(keys))
            .order_by(table.c.site_id, table.c.device_id, table.c.component)
        )
        found: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}
        async with self.store.engine.connect() as conn:
            for r in await conn.execute(stmt):
                found.setdefault((r.site_id, r.device_id), []).append((r.component, r.version, r.scheme))
        return {key: tuple(items) for key, items in found.items()}

    async def _reachable(self, machine: CampaignMachine) -> dict[str, bool]:
        return {
            job_id: row.reachable is not False for job_id, row in (await self._device_rows(machine)).items()
        }

    async def _versions(self, cid: int, machine: CampaignMachine, now: datetime) -> None:
        rows = await self._device_rows(machine)
        components = await self._components(rows)
        for job_id, row in rows.items():
            job = machine.jobs[job_id]
            if job.state not in AWAITING_VERSION:
                continue
            vendor, product, version, family = planned_software(
                row.firmware_version,
                row.vendor,
                row.model,
                row.family,
                components.get((row.site_id, row.device_id), ()),
            )
            if not version:
                continue
            reported = self._as_target(Device(row.device_id, vendor, product, version, family), job.target)
            if reported == job.target or reported != job.from_version:
                await self._apply(cid, machine, machine.on_version(job.site_id, job.device_id, reported, now))

    def _as_target(self, device: Device, target: str) -> str:
        """The reported version, as ``target`` when the catalog parses both to the same release."""
        _identity, version, _why = self._identify.identify(device)
        if version is not None:
            with contextlib.suppress(VersionParseError):
                if parse_version(version.scheme, target) == version:
                    return target
        return device.software_version

    async def _notify(
        self, cid: int, machine: CampaignMachine, loaded: contracts.Contracts, customer: str, now: datetime
    ) -> None:
        policy = loaded.customers[customer]
        rows = []
        for stored in await campaign_store.list_jobs(self.store, cid):
            job = machine.jobs.get(str(stored["id"]))
            if job is not None:  # the machine's state and window are the current ones
                rows.append(
                    stored
                    | {"state": job.state, "window_start": job.window_start, "window_end": job.window_end}
                )
        for notice in build_notices(policy, cid, rows):
            if not due(policy, notice.window_start, now):
                continue
            await self._send_notice(cid, machine, notice, loaded, now)

    async def _send_notice(
        self, cid: int, machine: CampaignMachine, notice: Notice, loaded: contracts.Contracts, now: datetime
    ) -> None:
        assert self.notices is not None
        key = (cid, notice.window_start)
        last = self._notice_tried.get(key)
        if last is not None and now - last < NOTICE_RETRY:
            return  # a failed delivery is tried again later, not every step
        self._notice_tried[key] = now
        policy = loaded.customers[notice.customer]
        try:
            delivery = await self.notices.send(
                notice, policy, now, webhook_url=loaded.webhooks.get(notice.customer)
            )
        except NoticeError as err:
            self.notices_sent.labels(outcome=err.code).inc()
            log.info("notice_not_sent", campaign=cid, code=err.code)
            return
        detail = {
            "window": notice.window_start.isoformat(),
            "devices": [f"{i.site_id}/{i.device_id}" for i in notice.items],
            "recipients": list(delivery.recipients),
            "webhook": delivery.webhook,
            "errors": list(delivery.errors),
        }
        async with self.store.writing() as conn:
            await audit.append(
                conn,
                "notice",
                actor=ACTOR,
                customer_id=notice.customer,
                subject=f"campaign {cid}",
                detail=detail,
                at=now,
            )
        if not delivery.recipients and not delivery.webhook:
            self.notices_sent.labels(outcome="undelivered").inc()
            return
        self.notices_sent.labels(outcome="delivered").inc()
        ids = [
            j.job_id
            for j in machine.jobs.values()
            if j.window_start == notice.window_start and j.state in {"planned", "deferred"}
        ]
        webhook = " and the webhook" if delivery.webhook else ""
        told = f"notice sent to {len(delivery.recipients)} contact(s){webhook}"
        await self._apply(cid, machine, machine.mark_notified(ids, now, told))

    # -- effects ----------------------------------------------------------------------------------
    async def _apply(self, cid: int, machine: CampaignMachine, effects: list[Effect]) -> None:
        """Store the effects in order: job transitions together (one transaction), then the sends
        (each job is recorded ``sent`` before its command goes out), then what the sends changed."""
        changes: list[campaign_store.JobTransition] = []
        sends: list[Send] = []
        for effect in effects:
            if isinstance(effect, JobChanged):
                changes.append(_transition(effect))
            elif isinstance(effect, Send):
                sends.append(effect)
            else:
                await self._record(changes)
                changes = []
                await self._campaign_changed(cid, effect)
        await self._record(changes)
        after: list[campaign_store.JobTransition] = []
        for send in sends:
            command_id, sent = await self._send(send, machine)
            for effect in sent:
                change = _transition(effect)
                if command_id is not None and effect.new == "running":
                    change.fields["command_id"] = command_id
                after.append(change)
        await self._record(after)

    async def _record(self, changes: list[campaign_store.JobTransition]) -> None:
        await campaign_store.record_job_states(self.store, changes, actor=ACTOR)
        for change in changes:
            self.transitions.labels(state=change.state).inc()

    async def _campaign_changed(self, cid: int, effect: CampaignChanged) -> None:
        current = await campaign_store.get_campaign(self.store, cid)
        if current is not None and current["state"] != effect.new:
            with contextlib.suppress(campaign_store.TransitionRefused):
                await campaign_store.change_state(
                    self.store, cid, effect.new, actor=ACTOR, reason=effect.reason
                )
        log.info("campaign_state", campaign=cid, state=effect.new, reason=effect.reason)

    async def _send(self, effect: Send, machine: CampaignMachine) -> tuple[str | None, list[JobChanged]]:
        now = self.clock()
        if self.channel is None:
            why = "no command channel in this controller"
            return None, _jobs(machine.on_sent(effect.job_id, now, accepted=False, detail=why))
        try:
            command_id = await self.channel.send(
                effect.site_id, effect.request, expires_at=effect.expires_at, job_id=effect.job_id
            )
        except Exception as err:  # the channel's own failure, whatever its type: the job waits
            log.warning("command_not_sent", job=effect.job_id, site=effect.site_id, error=type(err).__name__)
            return None, _jobs(machine.on_sent(effect.job_id, now, accepted=False, detail=type(err).__name__))
        job = machine.jobs.get(effect.job_id)
        if job is not None:
            job.command_id = command_id
        return command_id, _jobs(
            machine.on_sent(effect.job_id, now, accepted=True, detail=f"command {command_id}")
        )


def _jobs(effects: list[Effect]) -> list[JobChanged]:
    return [e for e in effects if isinstance(e, JobChanged)]


def _transition(effect: JobChanged) -> campaign_store.JobTransition:
    kind: audit.AuditKind = "outcome"
    if effect.new in {"sent", "running"}:
        kind = "command"
    elif effect.new == "notified":
        kind = "notice"
    elif effect.new == "deferred":
        kind = "plan"
    fields = {
        "window_start": effect.window_start,
        "window_end": effect.window_end,
        "attempts": effect.attempts,
    }
    return campaign_store.JobTransition(
        int(effect.job_id), effect.new, effect.detail, kind, effect.at, fields
    )


def _next_window(
    loaded: contracts.Contracts, customer: str, site: str, after: datetime, now: datetime
) -> tuple[datetime, datetime] | None:
    """The first window of the customer's site starting at or after ``after`` whose notice can
    still go out (the planner's rule for a usable window)."""
    policy = loaded.customers[customer]
    found = []
    for window in loaded.windows:
        if not window.applies_to(customer, site):
            continue
        for occurrence in next_windows(window, after, 50, holidays=policy.holidays, until=after + _HORIZON):
            notice = notice_time(policy, occurrence.start)
            if notice is not None and notice >= now:
                found.append((occurrence.start, occurrence.end))
                break
    return min(found) if found else None
