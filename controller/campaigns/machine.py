"""The campaign state machine: pure, no I/O, no clock (``now`` is an argument).

It decides; the runner does. Every method returns the effects of the decision — a job's new
state (:class:`JobChanged`), a command to send (:class:`Send`), the campaign's new state
(:class:`CampaignChanged`) — and the runner stores them, sends the commands through its
:class:`~controller.campaigns.channel.CommandChannel` and feeds back what comes of them.

Rules (issue 15, items 5 and 6):

* Waves run in order, the canary wave (1) first. Wave ``n + 1`` starts only when no job of the
  earlier waves is in flight, at least ``success_threshold_pct`` of the earlier waves' jobs are
  verified, and ``soak`` has passed since the last of them finished. When every earlier job has
  finished and the verified share is below the threshold, the campaign halts.
* The campaign halts when more than ``failure_threshold_pct`` of the finished jobs failed, once at
  least ``failure_min_finished`` jobs have finished.
* A job starts only inside its window, and only if it can finish before the window ends
  (``expected_duration``); otherwise it moves to the next window. A device that is down moves to
  the next window too. At most ``per_site_concurrency`` jobs of a site are in flight at once.
* A failed attempt is retried (``retries`` times) in the same window while time remains.
* An update is verified only by the version the device reports afterwards, automatic or
  manual alike: ``succeeded`` (the vendor said done) and ``manual`` (an operator must act) stay
  open until the device reports the target. A device that reports another new version failed.
* Paused: nothing new starts; what is in flight finishes. Cancelled: every job not in flight is
  cancelled. Halted: like paused, until an operator resumes or cancels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from collector.wire import ActionKind, ActionRequest, ActionResult, ActionState

JobState = Literal[
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
]
RunState = Literal["running", "paused", "halted", "cancelled", "done"]
TERMINAL: frozenset[str] = frozenset({"verified", "failed", "cancelled"})
IN_FLIGHT: frozenset[str] = frozenset({"sent", "running"})
WAITING: frozenset[str] = frozenset({"planned", "notified", "deferred"})
# Jobs whose device has not reported the outcome yet.
AWAITING_VERSION: frozenset[str] = frozenset({"sent", "running", "succeeded", "manual"})

# (job, after) → the first usable window (start, end) of the job's device that starts at or after ``after``
NextWindow = Callable[["Job", datetime], tuple[datetime, datetime] | None]
Reachable = Callable[["Job"], bool]


@dataclass(slots=True)
class Job:
    job_id: str
    site_id: str
    device_id: str
    wave: int
    target: str
    window_start: datetime | None
    window_end: datetime | None
    from_version: str | None = None
    state: JobState = "planned"
    attempts: int = 0
    finished_at: datetime | None = None
    package_url: str | None = None
    command_id: str | None = None  # the last command sent for it: only its result may move the job

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL


@dataclass(frozen=True, slots=True)
class Rules:
    per_site_concurrency: int = 5
    failure_threshold_pct: float = 20.0
    failure_min_finished: int = 3
    success_threshold_pct: float = 100.0
    soak: timedelta = timedelta(hours=1)
    retries: int = 1
    expected_duration: timedelta = timedelta(minutes=30)  # how long one update takes at most
    # Start only jobs whose customer was notified for their window (the runner sends the notices);
    # a window that begins without a notice is not used: the job moves to the next one.
    require_notice: bool = False


@dataclass(frozen=True, slots=True)
class JobChanged:
    job_id: str
    old: JobState
    new: JobState
    detail: str
    at: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    job_id: str
    site_id: str
    request: ActionRequest
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CampaignChanged:
    old: RunState
    new: RunState
    reason: str
    at: datetime


Effect = JobChanged | Send | CampaignChanged


class CampaignMachine:
    """One campaign's run: its jobs and its state. Not thread-safe; one owner (the runner)."""

    def __init__(self, rules: Rules, jobs: Iterable[Job], state: RunState = "running") -> None:
        self.rules = rules
        self.jobs: dict[str, Job] = {job.job_id: job for job in jobs}
        self.state: RunState = state
        self.reason = ""
        # When an operator last resumed a halted campaign: the failures and wave results before it
        # were looked at, so the thresholds count what finishes from then on.
        self.resumed_at: datetime | None = None

    # -- operator ---------------------------------------------------------------------------------
    def pause(self, now: datetime, reason: str = "paused by an operator") -> list[Effect]:
        return self._set("paused", reason, now) if self.state == "running" else []

    def resume(self, now: datetime, reason: str = "resumed by an operator") -> list[Effect]:
        if self.state not in {"paused", "halted"}:
            return []
        if self.state == "halted":
            self.resumed_at = now
        return self._set("running", reason, now) + self._evaluate(now)

    def settle(self, now: datetime) -> list[Effect]:
        """Re-evaluate the campaign (done when nothing is open, e.g. a plan with holds only)."""
        return self._evaluate(now)

    def cancel(self, now: datetime, reason: str = "cancelled by an operator") -> list[Effect]:
        if self.state in {"cancelled", "done"}:
            return []
        effects = self._set("cancelled", reason, now)
        for job in self.jobs.values():
            if job.state in WAITING or job.state == "manual":
                effects.append(self._move(job, "cancelled", reason, now))
        return effects

    def mark_notified(self, job_ids: Iterable[str], now: datetime, detail: str) -> list[Effect]:
        """The customer was told of these jobs' current windows."""
        return [
            self._move(self.jobs[j], "notified", detail, now)
            for j in job_ids
            if self.jobs[j].state in {"planned", "deferred"}
        ]

    # -- time -------------------------------------------------------------------------------------
    def tick(self, now: datetime, next_window: NextWindow, reachable: Reachable) -> list[Effect]:
        """Start what may start now; move what cannot finish in its window to the next one."""
        if self.state != "running":
            return []
        effects: list[Effect] = []
        wave = self._open_wave(now)
        in_flight: dict[str, int] = {}
        for job in self.jobs.values():
            if job.state in IN_FLIGHT:
                in_flight[job.site_id] = in_flight.get(job.site_id, 0) + 1
        for job in sorted(self.jobs.values(), key=lambda j: (j.wave, j.job_id)):
            if job.state not in WAITING or job.window_start is None or job.window_end is None:
                continue
            blocked = self._blocked(job, now, wave, reachable)
            if blocked == "wait":
                continue
            if blocked is not None:
                effects.append(self._defer(job, now, next_window, blocked))
                continue
            if in_flight.get(job.site_id, 0) >= self.rules.per_site_concurrency:
                continue
            in_flight[job.site_id] = in_flight.get(job.site_id, 0) + 1
            job.attempts += 1
            effects.append(self._move(job, "sent", f"attempt {job.attempts}", now))
            request = ActionRequest(
                device_id=job.device_id,
                action=ActionKind.UPDATE,
                target_version=job.target,
                package_url=job.package_url,
                deadline=job.window_end,
            )
            effects.append(Send(job.job_id, job.site_id, request, job.window_end))
        return effects

    # -- feedback ---------------------------------------------------------------------------------
    def on_sent(self, job_id: str, now: datetime, *, accepted: bool, detail: str = "") -> list[Effect]:
        """The channel's answer to a send: accepted → ``running``; not (broker down) → waits again."""
        job = self.jobs.get(job_id)
        if job is None or job.state != "sent":
            return []
        if accepted:
            return [self._move(job, "running", detail or "command delivered to the agent", now)]
        job.attempts -= 1  # never reached the device: not an attempt
        return [self._move(job, self._waiting, f"not sent: {detail}", now)]

    def on_result(self, job_id: str, result: ActionResult, now: datetime) -> list[Effect]:
        """What the agent's driver reported. A duplicate or late result changes nothing."""
        job = self.jobs.get(job_id)
        if job is None or job.state not in IN_FLIGHT:
            return []
        detail = result.detail or result.state.value
        if result.state is ActionState.SUCCEEDED:
            effects = [self._move(job, "succeeded", f"vendor reported done: {detail}; awaiting version", now)]
        elif result.state is ActionState.MANUAL:
            steps = "; ".join(result.manual_steps)
            where = f" ({result.console_url})" if result.console_url else ""
            effects = [self._move(job, "manual", f"manual task{where}: {steps or detail}", now)]
        elif job.attempts <= self.rules.retries and self.state in {"running", "paused"}:
            retry = f"attempt {job.attempts} {result.state.value}: {detail}; retry"
            effects = [self._move(job, self._waiting, retry, now)]
        else:
            job.finished_at = now
            effects = [self._move(job, "failed", f"{result.state.value}: {detail}", now)]
        return effects + self._evaluate(now)

    def on_version(self, site_id: str, device_id: str, version: str, now: datetime) -> list[Effect]:
        """A device reported its version: the only way an update is verified."""
        effects: list[Effect] = []
        for job in self.jobs.values():
            if job.site_id != site_id or job.device_id != device_id or not job.open:
                continue
            if version == job.target:
                job.finished_at = now
                effects.append(self._move(job, "verified", f"device reports {version}", now))
            elif job.state in {"succeeded", "manual"} and version != job.from_version:
                job.finished_at = now
                effects.append(
                    self._move(job, "failed", f"device reports {version}, expected {job.target}", now)
                )
        return effects + self._evaluate(now) if effects else []

    # -- internals --------------------------------------------------------------------------------
    @property
    def _waiting(self) -> JobState:
        """Where a retried job waits: the customer already knows of this window."""
        return "notified" if self.rules.require_notice else "planned"

    def _counted(self, job: Job) -> bool:
        """Does the failure threshold count this finished job (not when it finished before a resume)?"""
        return self.resumed_at is None or (job.finished_at is not None and job.finished_at >= self.resumed_at)

    def _waived(self, earlier: list[Job]) -> bool:
        """Was the success gate of these finished waves waived by an operator's resume after them?"""
        return self.resumed_at is not None and all(
            not j.open and (j.finished_at is None or j.finished_at < self.resumed_at) for j in earlier
        )

    def _blocked(self, job: Job, now: datetime, wave: int | None, reachable: Reachable) -> str | None:
        """Why ``job`` cannot start now: "wait" (later), a reason to move it to the next window, or None."""
        assert job.window_start is not None
        assert job.window_end is not None
        if now >= job.window_end or (
            now >= job.window_start and now + self.rules.expected_duration > job.window_end
        ):
            return "cannot finish before the window ends"
        if wave is None or job.wave > wave or now < job.window_start:
            return "wait"
        if self.rules.require_notice and job.state != "notified":
            return "the customer was not notified for this window"
        if not reachable(job):
            return "device is down: retried in the next window"
        return None

    def _open_wave(self, now: datetime) -> int | None:
        """The highest wave allowed to start now (None: none)."""
        waves = sorted({job.wave for job in self.jobs.values()})
        allowed: int | None = None
        earlier: list[Job] = []
        for wave in waves:
            if earlier:
                if any(j.state in IN_FLIGHT or j.state in WAITING for j in earlier):
                    break
                verified = sum(1 for j in earlier if j.state == "verified")
                short = verified * 100 < self.rules.success_threshold_pct * len(earlier)
                if short and not self._waived(earlier):
                    break
                finished = [j.finished_at for j in earlier if j.finished_at is not None]
                if finished and now < max(finished) + self.rules.soak:
                    break
            allowed = wave
            earlier += [j for j in self.jobs.values() if j.wave == wave]
        return allowed

    def _evaluate(self, now: datetime) -> list[Effect]:
        if self.state in {"cancelled", "done"}:
            return []
        finished = [j for j in self.jobs.values() if j.state in {"verified", "failed"} and self._counted(j)]
        failed = sum(1 for j in finished if j.state == "failed")
        if (
            self.state == "running"
            and len(finished) >= self.rules.failure_min_finished
            and failed * 100 > self.rules.failure_threshold_pct * len(finished)
        ):
            why = (
                f"{failed} of {len(finished)} finished jobs failed: above "
                f"{self.rules.failure_threshold_pct:g} %"
            )
            return self._set("halted", why, now)
        if all(not j.open for j in self.jobs.values()):
            return self._set("done", "every job finished", now)
        if self.state == "running":
            return self._gate_failed(now)
        return []

    def _gate_failed(self, now: datetime) -> list[Effect]:
        """Halt when a wave finished below the success threshold (the next wave could never start)."""
        waves = sorted({job.wave for job in self.jobs.values()})
        for wave in waves[:-1]:
            earlier = [j for j in self.jobs.values() if j.wave <= wave]
            if any(j.open for j in earlier):
                return []
            verified = sum(1 for j in earlier if j.state == "verified")
            if verified * 100 < self.rules.success_threshold_pct * len(earlier) and not self._waived(earlier):
                why = (
                    f"waves up to {wave}: {verified} of {len(earlier)} verified, below "
                    f"{self.rules.success_threshold_pct:g} %"
                )
                return self._set("halted", why, now)
        return []

    def _defer(self, job: Job, now: datetime, next_window: NextWindow, why: str) -> JobChanged:
        found = next_window(job, max(now, job.window_end or now))
        job.window_start, job.window_end = found if found is not None else (None, None)
        where = f"next window {found[0].isoformat()}" if found is not None else "no usable window left"
        return self._move(job, "deferred", f"{why}; {where}", now)

    def _move(self, job: Job, new: JobState, detail: str, now: datetime) -> JobChanged:
        old = job.state
        job.state = new
        return JobChanged(job.job_id, old, new, detail, now, job.window_start, job.window_end, job.attempts)

    def _set(self, new: RunState, reason: str, now: datetime) -> list[Effect]:
        old = self.state
        if old == new:
            return []
        self.state = new
        self.reason = reason
        return [CampaignChanged(old, new, reason, now)]
