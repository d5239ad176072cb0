"""Campaigns and their jobs in the database; every change with its audit entry, in one transaction.

A campaign's state changes only along :data:`TRANSITIONS` (checked here, under the write lock, so
two operators cannot both pause and cancel). A job's every state is a ``job_events`` row: the
history the API shows. Job states: planned, notified, sent, running, succeeded, failed, manual,
verified, deferred, cancelled; ``hold`` marks a device the plan holds back (with its reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.storage import audit
from controller.storage import contract_models as cm

if TYPE_CHECKING:
    from controller.storage import Store

# state → states an operator (or the runner) may move it to
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "cancelled"}),
    "approved": frozenset({"running", "cancelled", "draft"}),
    "running": frozenset({"paused", "cancelled", "halted", "done"}),
    "paused": frozenset({"running", "cancelled"}),
    "halted": frozenset({"running", "cancelled"}),  # resume after the NOC looked at the failures
    "cancelled": frozenset(),
    "done": frozenset(),
}
JOB_STATES = frozenset(
    {
        "planned",
        "notified",
        "sent",
        "running",
        "succeeded",
        "failed",
        "manual",
        "verified",
        "deferred",
        "cancelled",
        "hold",
    }
)
OPEN_JOB_STATES = frozenset({"planned", "notified", "sent", "running", "succeeded", "manual", "deferred"})


class TransitionRefused(ValueError):
    """The campaign is not in a state that allows the change."""


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)  # noqa: SLF001 - SQLAlchemy API


async def create_campaign(store: Store, spec: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    """Store a validated spec (``CampaignSpec.model_dump()``) as a draft.

    Raises ``LookupError`` for an unknown customer."""
    now = datetime.now(UTC)
    values = {
        "name": spec["name"],
        "customer_id": spec["customer"],
        "targets": dict(spec["targets"]),
        "selection": dict(spec["selection"]),
        "canary": spec["canary"],
        "soak_s": spec["soak_s"],
        "per_site_concurrency": spec["per_site_concurrency"],
        "failure_threshold_pct": spec["failure_threshold_pct"],
        "failure_min_finished": spec["failure_min_finished"],
        "success_threshold_pct": spec["success_threshold_pct"],
        "retries": spec["retries"],
        "state": "draft",
        "state_reason": "",
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
    }
    async with store.writing() as conn:
        known = await conn.execute(
            sa.select(cm.CUSTOMERS.c.customer_id).where(cm.CUSTOMERS.c.customer_id == spec["customer"])
        )
        if known.first() is None:
            raise LookupError(spec["customer"])
        result = await conn.execute(sa.insert(cm.CAMPAIGNS).values(**values).returning(cm.CAMPAIGNS.c.id))
        campaign_id = int(result.scalar_one())
        await audit.append(
            conn,
            "campaign",
            actor=actor,
            customer_id=spec["customer"],
            subject=f"campaign {campaign_id}",
            detail={"change": "created", "spec": dict(spec)},
            at=now,
        )
    return {"id": campaign_id, **values}


async def get_campaign(store: Store, campaign_id: int) -> dict[str, Any] | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(cm.CAMPAIGNS).where(cm.CAMPAIGNS.c.id == campaign_id))).first()
    return None if row is None else _row(row)


async def list_campaigns(store: Store, customer_id: str | None = None) -> list[dict[str, Any]]:
    stmt = sa.select(cm.CAMPAIGNS).order_by(cm.CAMPAIGNS.c.id)
    if customer_id is not None:
        stmt = stmt.where(cm.CAMPAIGNS.c.customer_id == customer_id)
    async with store.engine.connect() as conn:
        return [_row(row) for row in await conn.execute(stmt)]


async def change_state(
    store: Store, campaign_id: int, new_state: str, *, actor: str, reason: str = ""
) -> dict[str, Any] | None:
    """Move the campaign to ``new_state``; None when it does not exist. Raises
    :class:`TransitionRefused`. Cancelling also cancels every open job."""
    now = datetime.now(UTC)
    table = cm.CAMPAIGNS
    async with store.writing() as conn:
        row = (await conn.execute(sa.select(table).where(table.c.id == campaign_id))).first()
        if row is None:
            return None
        if new_state not in TRANSITIONS.get(row.state, frozenset()):
            allowed = ", ".join(sorted(TRANSITIONS.get(row.state, frozenset()))) or "nothing"
            msg = f"campaign {campaign_id} is {row.state}: it can go to {allowed}, not {new_state}"
            raise TransitionRefused(msg)
        values: dict[str, Any] = {"state": new_state, "state_reason": reason, "updated_at": now}
        if new_state == "approved":
            values |= {"approved_by": actor, "approved_at": now}
        await conn.execute(sa.update(table).where(table.c.id == campaign_id).values(**values))
        if new_state == "cancelled":
            jobs = await conn.execute(
                sa.select(cm.JOBS.c.id).where(
                    cm.JOBS.c.campaign_id == campaign_id, cm.JOBS.c.state.in_(OPEN_JOB_STATES)
                )
            )
            for (job_id,) in list(jobs):
                await _transition(conn, job_id, "cancelled", f"campaign cancelled by {actor}", now)
        await audit.append(
            conn,
            "campaign",
            actor=actor,
            customer_id=row.customer_id,
            subject=f"campaign {campaign_id}",
            detail={"change": new_state, "from": row.state, "reason": reason},
            at=now,
        )
        updated = (await conn.execute(sa.select(table).where(table.c.id == campaign_id))).one()
    return _row(updated)


async def replace_plan(
    store: Store, campaign_id: int, customer_id: str, jobs: Sequence[Mapping[str, Any]], *, actor: str
) -> int:
    """Store the plan's jobs (one per device: ``planned`` or ``hold``) replacing a draft's earlier plan."""
    now = datetime.now(UTC)
    async with store.writing() as conn:
        old = [
            r.id
            for r in await conn.execute(sa.select(cm.JOBS.c.id).where(cm.JOBS.c.campaign_id == campaign_id))
        ]
        if old:
            await conn.execute(sa.delete(cm.JOB_EVENTS).where(cm.JOB_EVENTS.c.job_id.in_(old)))
            await conn.execute(sa.delete(cm.JOBS).where(cm.JOBS.c.campaign_id == campaign_id))
        for job in jobs:
            state = "planned" if job["action"] == "update" else "hold"
            result = await conn.execute(
                sa.insert(cm.JOBS)
                .values(
                    campaign_id=campaign_id,
                    customer_id=customer_id,
                    site_id=job["site_id"],
                    device_id=job["device_id"],
                    wave=job.get("wave") or 0,
                    update_class=job.get("update_class"),
                    execution=job.get("execution"),
                    target=job.get("target"),
                    from_version=job.get("from_version"),
                    reason_code=job["reason_code"],
                    reason=job["reason"],
                    state=state,
                    window_start=job.get("start"),
                    window_end=job.get("end"),
                    notice_at=job.get("notice_at"),
                    attempts=0,
                    updated_at=now,
                )
                .returning(cm.JOBS.c.id)
            )
            job_id = int(result.scalar_one())
            await conn.execute(
                sa.insert(cm.JOB_EVENTS).values(job_id=job_id, state=state, at=now, detail=job["reason"])
            )
        updates = sum(1 for job in jobs if job["action"] == "update")
        await audit.append(
            conn,
            "plan",
            actor=actor,
            customer_id=customer_id,
            subject=f"campaign {campaign_id}",
            detail={
                "devices": len(jobs),
                "updates": updates,
                "held": len(jobs) - updates,
                "jobs": [
                    {
                        k: _plain(job.get(k))
                        for k in (
                            "site_id",
                            "device_id",
                            "action",
                            "update_class",
                            "target",
                            "wave",
                            "start",
                            "reason_code",
                            "reason",
                        )
                    }
                    for job in jobs
                ],
            },
            at=now,
        )
    return len(jobs)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def list_jobs(store: Store, campaign_id: int) -> list[dict[str, Any]]:
    stmt = sa.select(cm.JOBS).where(cm.JOBS.c.campaign_id == campaign_id).order_by(cm.JOBS.c.id)
    async with store.engine.connect() as conn:
        return [_row(row) for row in await conn.execute(stmt)]


async def get_job(store: Store, job_id: int) -> dict[str, Any] | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(cm.JOBS).where(cm.JOBS.c.id == job_id))).first()
        if row is None:
            return None
        job = _row(row)
        events = await conn.execute(
            sa.select(cm.JOB_EVENTS.c.state, cm.JOB_EVENTS.c.at, cm.JOB_EVENTS.c.detail)
            .where(cm.JOB_EVENTS.c.job_id == job_id)
            .order_by(cm.JOB_EVENTS.c.id)
        )
        job["history"] = [_row(e) for e in events]
    return job


async def _transition(conn: Any, job_id: int, state: str, detail: str, at: datetime, **fields: Any) -> None:
    await conn.execute(
        sa.update(cm.JOBS).where(cm.JOBS.c.id == job_id).values(state=state, updated_at=at, **fields)
    )
    await conn.execute(sa.insert(cm.JOB_EVENTS).values(job_id=job_id, state=state, at=at, detail=detail))


@dataclass(frozen=True, slots=True)
class JobTransition:
    """One job's move to ``state``; ``fields``: window_start/end, attempts, command_id."""

    job_id: int
    state: str
    detail: str
    kind: audit.AuditKind = "outcome"
    at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)


async def record_job_states(store: Store, transitions: Sequence[JobTransition], *, actor: str) -> None:
    """Job transitions with their history rows and audit entries, in one transaction (in order)."""
    for change in transitions:
        if change.state not in JOB_STATES:
            msg = f"state: unknown job state {change.state!r}"
            raise ValueError(msg)
    if not transitions:
        return
    async with store.writing() as conn:
        for change in transitions:
            at = change.at or datetime.now(UTC)
            row = (await conn.execute(sa.select(cm.JOBS).where(cm.JOBS.c.id == change.job_id))).one()
            await _transition(conn, change.job_id, change.state, change.detail, at, **change.fields)
            await audit.append(
                conn,
                change.kind,
                actor=actor,
                customer_id=row.customer_id,
                subject=f"job {change.job_id} {row.site_id}/{row.device_id}",
                detail={
                    "campaign": row.campaign_id,
                    "from": row.state,
                    "to": change.state,
                    "detail": change.detail,
                }
                | {k: _plain(v) for k, v in change.fields.items()},
                at=at,
            )


async def record_job_state(
    store: Store,
    job_id: int,
    state: str,
    *,
    detail: str,
    actor: str,
    kind: audit.AuditKind = "outcome",
    at: datetime | None = None,
    **fields: Any,
) -> None:
    """One job transition (and its audit entry). ``fields``: window_start/end, attempts, command_id."""
    await record_job_states(store, [JobTransition(job_id, state, detail, kind, at, fields)], actor=actor)
