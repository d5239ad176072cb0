"""The campaign state machine: examples of each rule, then hypothesis over random event sequences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from collector.wire import ActionKind, ActionResult, ActionState
from controller.campaigns.machine import (
    IN_FLIGHT,
    TERMINAL,
    CampaignChanged,
    CampaignMachine,
    Effect,
    Job,
    JobChanged,
    Rules,
    Send,
)

T0 = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def windows_daily(first: datetime, length: timedelta, count: int = 30) -> list[tuple[datetime, datetime]]:
    return [(first + i * DAY, first + i * DAY + length) for i in range(count)]


def next_from(
    windows: dict[str, list[tuple[datetime, datetime]]],
) -> Callable[[Job, datetime], tuple[datetime, datetime] | None]:
    def find(job: Job, after: datetime) -> tuple[datetime, datetime] | None:
        return next((w for w in windows[job.site_id] if w[0] >= after), None)

    return find


def result(job: Job, state: ActionState, detail: str = "", **extra: object) -> ActionResult:
    return ActionResult(
        device_id=job.device_id, action=ActionKind.UPDATE, state=state, detail=detail, **extra
    )  # type: ignore[arg-type]


def up(_job: Job) -> bool:
    return True


def sends(effects: list[Effect]) -> list[str]:
    return [e.job_id for e in effects if isinstance(e, Send)]


def make_jobs(specs: list[tuple[str, int]], window: tuple[datetime, datetime]) -> list[Job]:
    return [
        Job(f"j{i}", site, f"d{i}", wave, "11.5.2", window[0], window[1], from_version="11.5.1")
        for i, (site, wave) in enumerate(specs)
    ]


def test_canary_first_then_the_rest_after_soak() -> None:
    windows = {"s1": windows_daily(T0, 4 * HOUR)}
    jobs = make_jobs([("s1", 1), ("s1", 2), ("s1", 2)], windows["s1"][0])
    machine = CampaignMachine(Rules(soak=HOUR, per_site_concurrency=5), jobs)
    find = next_from(windows)
    first = machine.tick(T0, find, up)
    assert sends(first) == ["j0"]
    machine.on_sent("j0", T0, accepted=True)
    machine.on_result("j0", result(jobs[0], ActionState.SUCCEEDED), T0 + 10 * timedelta(minutes=1))
    assert sends(machine.tick(T0 + 15 * timedelta(minutes=1), find, up)) == []  # not verified yet
    machine.on_version("s1", "d0", "11.5.2", T0 + 20 * timedelta(minutes=1))
    assert jobs[0].state == "verified"
    assert sends(machine.tick(T0 + 30 * timedelta(minutes=1), find, up)) == []  # soaking
    assert sends(machine.tick(T0 + 81 * timedelta(minutes=1), find, up)) == ["j1", "j2"]


def test_a_failing_device_halts_once_the_threshold_is_crossed() -> None:
    windows = {"s1": windows_daily(T0, 4 * HOUR)}
    jobs = make_jobs([("s1", 1)] * 4, windows["s1"][0])
    rules = Rules(failure_threshold_pct=30, failure_min_finished=2, retries=0, per_site_concurrency=4)
    machine = CampaignMachine(rules, jobs)
    assert len(sends(machine.tick(T0, next_from(windows), up))) == 4
    effects = machine.on_result("j0", result(jobs[0], ActionState.FAILED, "flash error"), T0 + HOUR)
    assert machine.state == "running"  # one finished job is below the minimum
    assert effects == [
        JobChanged("j0", "sent", "failed", "failed: flash error", T0 + HOUR, *windows["s1"][0], 1)
    ]
    machine.on_version("s1", "d1", "11.5.2", T0 + HOUR)
    assert machine.state == "halted"  # 1 of 2 finished failed: 50 % > 30 %
    assert "1 of 2 finished jobs failed" in machine.reason
    assert sends(machine.tick(T0 + HOUR, next_from(windows), up)) == []


def test_failed_attempt_is_retried_then_fails() -> None:
    windows = {"s1": windows_daily(T0, 4 * HOUR)}
    jobs = make_jobs([("s1", 1)], windows["s1"][0])
    machine = CampaignMachine(Rules(retries=1, failure_min_finished=5), jobs)
    find = next_from(windows)
    machine.tick(T0, find, up)
    machine.on_result("j0", result(jobs[0], ActionState.TIMED_OUT), T0 + HOUR)
    assert jobs[0].state == "planned"
    assert sends(machine.tick(T0 + HOUR, find, up)) == ["j0"]
    machine.on_result("j0", result(jobs[0], ActionState.FAILED), T0 + 2 * HOUR)
    assert jobs[0].state == "failed"
    assert jobs[0].attempts == 2
    assert machine.state == "done"


def test_a_job_that_cannot_finish_moves_to_the_next_window() -> None:
    windows = {"s1": windows_daily(T0, HOUR)}
    jobs = make_jobs([("s1", 1)], windows["s1"][0])
    machine = CampaignMachine(Rules(expected_duration=timedelta(minutes=30)), jobs)
    effects = machine.tick(T0 + timedelta(minutes=31), next_from(windows), up)
    assert sends(effects) == []
    assert jobs[0].state == "deferred"
    assert (jobs[0].window_start, jobs[0].window_end) == windows["s1"][1]
    assert sends(machine.tick(windows["s1"][1][0], next_from(windows), up)) == ["j0"]


def test_a_device_that_is_down_is_retried_in_the_next_window() -> None:
    windows = {"s1": windows_daily(T0, 2 * HOUR)}
    jobs = make_jobs([("s1", 1)], windows["s1"][0])
    machine = CampaignMachine(Rules(), jobs)
    effects = machine.tick(T0, next_from(windows), lambda _job: False)
    assert sends(effects) == []
    changed = [e for e in effects if isinstance(e, JobChanged)]
    assert changed[0].new == "deferred"
    assert "device is down" in changed[0].detail
    assert jobs[0].window_start == windows["s1"][1][0]


def test_a_manual_job_stays_open_until_the_reported_version_changes() -> None:
    windows = {"s1": windows_daily(T0, 2 * HOUR)}
    jobs = make_jobs([("s1", 1)], windows["s1"][0])
    machine = CampaignMachine(Rules(), jobs)
    machine.tick(T0, next_from(windows), up)
    steps = ["Teams admin center > Devices > Update"]
    manual = result(
        jobs[0], ActionState.MANUAL, manual_steps=steps, console_url="https://admin.teams.example/d0"
    )
    machine.on_result("j0", manual, T0)
    assert jobs[0].state == "manual"
    machine.on_version("s1", "d0", "11.5.1", T0 + DAY)  # unchanged: still open
    assert jobs[0].state == "manual"
    assert machine.state == "running"
    machine.on_version("s1", "d0", "11.5.2", T0 + 2 * DAY)
    assert jobs[0].state == "verified"
    assert machine.state == "done"


def test_without_a_notice_the_window_is_not_used() -> None:
    windows = {"s1": windows_daily(T0, 2 * HOUR)}
    jobs = make_jobs([("s1", 1), ("s1", 1)], windows["s1"][0])
    machine = CampaignMachine(Rules(require_notice=True), jobs)
    machine.mark_notified(["j0"], T0 - DAY, "notice sent to 1 contact")
    effects = machine.tick(T0, next_from(windows), up)
    assert sends(effects) == ["j0"]
    assert jobs[1].state == "deferred"
    assert jobs[1].window_start == windows["s1"][1][0]
    machine.on_result("j0", result(jobs[0], ActionState.FAILED), T0)
    assert jobs[0].state == "notified"  # retried in the window the customer was told of
    machine.mark_notified(["j1"], T0 + HOUR, "notice sent to 1 contact")
    assert sends(machine.tick(windows["s1"][1][0], next_from(windows), up)) == ["j1"]


def test_an_operator_resumes_a_halted_campaign() -> None:
    windows = {"s1": windows_daily(T0, 4 * HOUR)}
    jobs = make_jobs([("s1", 1), ("s1", 2), ("s1", 2)], windows["s1"][0])
    rules = Rules(failure_threshold_pct=10, failure_min_finished=1, retries=0, soak=timedelta(0))
    machine = CampaignMachine(rules, jobs)
    find = next_from(windows)
    machine.tick(T0, find, up)
    machine.on_result("j0", result(jobs[0], ActionState.FAILED), T0)
    assert machine.state == "halted"  # the canary failed
    assert sends(machine.tick(T0 + HOUR, find, up)) == []
    machine.resume(T0 + HOUR)  # the NOC looked at it: go on with the rest
    assert machine.state == "running"
    assert sorted(sends(machine.tick(T0 + HOUR, find, up))) == ["j1", "j2"]
    machine.on_result("j1", result(jobs[1], ActionState.FAILED), T0 + 2 * HOUR)
    assert machine.state == "halted"  # a new failure counts again


def test_pause_resume_cancel() -> None:
    windows = {"s1": windows_daily(T0, 4 * HOUR)}
    jobs = make_jobs([("s1", 1), ("s1", 1)], windows["s1"][0])
    machine = CampaignMachine(Rules(per_site_concurrency=1), jobs)
    find = next_from(windows)
    assert sends(machine.tick(T0, find, up)) == ["j0"]
    machine.pause(T0)
    machine.on_result("j0", result(jobs[0], ActionState.SUCCEEDED), T0 + HOUR)  # in flight: finishes
    machine.on_version("s1", "d0", "11.5.2", T0 + HOUR)
    assert sends(machine.tick(T0 + HOUR, find, up)) == []
    machine.resume(T0 + HOUR)
    machine.cancel(T0 + HOUR)
    assert [j.state for j in jobs] == ["verified", "cancelled"]
    assert sends(machine.tick(T0 + HOUR, find, up)) == []


# -- properties ------------------------------------------------------------------------------------

SITES = ("s1", "s2", "s3")
# Weighted towards what moves a campaign forward; operators and outages now and then.
KINDS = (
    ["tick"] * 14 + ["result"] * 8 + ["version"] * 8 + ["down"] * 2 + ["pause", "resume", "resume", "cancel"]
)
EVENTS = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 300),  # tick: minutes to advance
    st.integers(0, 7),  # which job
    st.sampled_from([ActionState.SUCCEEDED] * 3 + list(ActionState)),
    st.sampled_from(["target", "target", "from", "other"]),
)


@dataclass
class Shadow:
    reported: dict[str, str] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)


@settings(max_examples=400, deadline=None)
@given(
    specs=st.lists(st.tuples(st.sampled_from(SITES), st.integers(1, 2)), min_size=1, max_size=8),
    lengths=st.lists(st.integers(20, 240), min_size=3, max_size=3),
    concurrency=st.integers(1, 3),
    failure_pct=st.floats(0, 100),
    min_finished=st.integers(1, 5),
    success_pct=st.floats(0, 100),
    soak_min=st.integers(0, 180),
    retries=st.integers(0, 2),
    expected_min=st.integers(10, 60),
    require_notice=st.booleans(),
    events=st.lists(EVENTS, min_size=10, max_size=120),
)
def test_no_rule_is_ever_broken(  # noqa: C901 - one invariant per rule
    specs: list[tuple[str, int]],
    lengths: list[int],
    concurrency: int,
    failure_pct: float,
    min_finished: int,
    success_pct: float,
    soak_min: int,
    retries: int,
    expected_min: int,
    require_notice: bool,
    events: list[tuple[str, int, int, ActionState, str]],
) -> None:
    windows = {
        site: windows_daily(T0 + i * 7 * HOUR, timedelta(minutes=length))
        for i, (site, length) in enumerate(zip(SITES, lengths, strict=True))
    }
    jobs = [
        Job(f"j{i}", site, f"d{i}", wave, "2.0", *windows[site][0], from_version="1.0")
        for i, (site, wave) in enumerate(specs)
    ]
    rules = Rules(
        concurrency,
        failure_pct,
        min_finished,
        success_pct,
        timedelta(minutes=soak_min),
        retries,
        timedelta(minutes=expected_min),
    )
    machine = CampaignMachine(rules, jobs)
    shadow = Shadow()
    find = next_from(windows)
    now = T0 - HOUR
    was_cancelled = False
    for kind, minutes, index, state, which in events:
        before_state = machine.state
        before_jobs = {j.job_id: j.state for j in jobs}
        effects: list[Effect] = []
        if kind == "tick":
            now += timedelta(minutes=minutes)
            effects = machine.tick(now, find, lambda job: job.device_id not in shadow.down)
            for send in [e for e in effects if isinstance(e, Send)]:
                effects += machine.on_sent(send.job_id, now, accepted=True)
        elif kind == "result":
            job = jobs[index % len(jobs)]
            effects = machine.on_result(job.job_id, result(job, state), now)
        elif kind == "version":
            job = jobs[index % len(jobs)]
            version = {"target": "2.0", "from": "1.0", "other": "1.5"}[which]
            shadow.reported[job.device_id] = version
            effects = machine.on_version(job.site_id, job.device_id, version, now)
        elif kind == "notify":  # the runner sends notices ahead of windows that have not begun
            ahead = [j.job_id for j in jobs if j.window_start is not None and now < j.window_start]
            effects = machine.mark_notified(ahead, now, "notice sent")
        elif kind == "down":
            job = jobs[index % len(jobs)]
            shadow.down ^= {job.device_id}
        elif kind == "pause":
            effects = machine.pause(now)
        elif kind == "resume":
            effects = machine.resume(now)
        else:
            effects = machine.cancel(now)
            was_cancelled = True

        by_id = {j.job_id: j for j in jobs}
        for effect in effects:
            if isinstance(effect, Send):
                job = by_id[effect.job_id]
                event(f"sent wave {job.wave}")
                # started only while running, never after a cancel, inside its window, with time to finish
                assert before_state == "running"
                assert not was_cancelled
                assert job.window_start is not None
                assert job.window_end is not None
                assert job.window_start <= now
                assert now + rules.expected_duration <= job.window_end
                assert effect.expires_at == job.window_end
                assert job.device_id not in shadow.down
                if rules.require_notice:  # only after the customer was told of this window
                    assert before_jobs[job.job_id] == "notified"
                # a later wave only after the earlier ones were verified enough and soaked
                earlier = [j for j in jobs if j.wave < job.wave]
                waived = machine.resumed_at is not None and all(
                    j.finished_at is None or j.finished_at < machine.resumed_at for j in earlier
                )
                if earlier and not waived:
                    assert all(
                        j.state not in IN_FLIGHT and j.state not in {"planned", "notified", "deferred"}
                        for j in earlier
                    )
                    verified = sum(1 for j in earlier if j.state == "verified")
                    assert verified * 100 >= rules.success_threshold_pct * len(earlier)
                    done = [j.finished_at for j in earlier if j.finished_at is not None]
                    assert not done or now >= max(done) + rules.soak
            if isinstance(effect, JobChanged) and effect.new == "verified":
                # verified only by the version the device itself reported, in this very event
                assert kind == "version"
                assert shadow.reported[by_id[effect.job_id].device_id] == by_id[effect.job_id].target
            if isinstance(effect, CampaignChanged):
                assert effect.old != effect.new
                event(f"campaign {effect.new}")
        for job in jobs:
            if before_jobs[job.job_id] in TERMINAL:
                assert job.state == before_jobs[job.job_id]  # terminal states are final
            assert job.attempts <= rules.retries + 1
        for site in SITES:
            assert (
                sum(1 for j in jobs if j.site_id == site and j.state in IN_FLIGHT)
                <= rules.per_site_concurrency
            )
        since = machine.resumed_at  # an operator resumed a halted campaign: counted from then on
        finished = [
            j
            for j in jobs
            if j.state in {"verified", "failed"}
            and (since is None or (j.finished_at is not None and j.finished_at >= since))
        ]
        failed = sum(1 for j in finished if j.state == "failed")
        if machine.state == "running" and len(finished) >= rules.failure_min_finished:
            assert failed * 100 <= rules.failure_threshold_pct * len(finished)
        if all(j.state in TERMINAL for j in jobs) and before_state != "cancelled" and effects:
            assert machine.state in {"done", "halted", "cancelled"}
