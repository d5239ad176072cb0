"""The contract as data: working hours, notice times, approvals, update classes, fault repair."""

# ruff: noqa: DTZ001 - naive datetimes here are local date-times on purpose (RFC 5545 §3.3.5)

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.scheduler import (
    Approval,
    CustomerPolicy,
    PolicyError,
    PublicHolidays,
    WorkingHours,
    fault_repair_job,
    in_working_hours,
    notice_time,
    parse_duration,
    resolve_local,
    security_advisories,
    zone,
)

VIENNA = zone("Europe/Vienna")
_CALENDARS: dict[str, PublicHolidays] = {}


def _calendar(code: str) -> PublicHolidays:
    if code not in _CALENDARS:
        _CALENDARS[code] = PublicHolidays(code)
    return _CALENDARS[code]


def _policy(
    tz: str = "Europe/Vienna", hours: str = "Mon-Fri 08:00-17:00", lead: str = "P1D", code: str = "AT"
) -> CustomerPolicy:
    return CustomerPolicy(
        "acme", zone(tz), _calendar(code), WorkingHours.parse(hours), notice_lead=parse_duration(lead)
    )


def _vienna(*args: int) -> datetime:
    return resolve_local(datetime(*args), VIENNA)  # type: ignore[arg-type]


# -- working hours and notice times -------------------------------------------------------------
def test_working_hours_parse() -> None:
    hours = WorkingHours.parse("Mon-Thu 08:00-12:00, Mon-Thu 13:00-17:00, Fri 08:00-12:00")
    assert hours.spans(date(2026, 5, 4)) == ((time(8), time(12)), (time(13), time(17)))
    assert hours.spans(date(2026, 5, 8)) == ((time(8), time(12)),)
    assert hours.spans(date(2026, 5, 9)) == ()


@pytest.mark.parametrize(
    "text",
    ["", "Mon-Fri", "Mon-Fri 17:00-08:00", "Fri-Mon 08:00-17:00", "Xyz 08:00-09:00", "Mon 25:00-26:00"],
)
def test_working_hours_errors(text: str) -> None:
    with pytest.raises(ValueError):
        WorkingHours.parse(text)


@pytest.mark.parametrize(
    ("window", "notice"),
    [
        (_vienna(2026, 5, 5, 22, 0), _vienna(2026, 5, 4, 17, 0)),  # Tue night → Mon at closing time
        (_vienna(2026, 5, 5, 12, 0), _vienna(2026, 5, 4, 12, 0)),  # exactly one day before, inside hours
        (
            _vienna(2026, 5, 4, 22, 0),
            _vienna(2026, 5, 1, 17, 0) - timedelta(days=1),
        ),  # Mon → Thu (1 May holiday)
        (
            _vienna(2026, 4, 7, 6, 0),
            _vienna(2026, 4, 3, 17, 0),
        ),  # Tue after Easter Monday → Good Friday (a work day in AT)
        (_vienna(2026, 3, 30, 9, 0), _vienna(2026, 3, 27, 17, 0)),  # over the spring-forward weekend
    ],
)
def test_notice_time(window: datetime, notice: datetime) -> None:
    assert notice_time(_policy(), window) == notice


def test_notice_lead_longer_than_a_day() -> None:
    assert notice_time(_policy(lead="P3DT1H"), _vienna(2026, 5, 8, 10, 0)) == _vienna(2026, 5, 5, 9, 0)
    # Fri 10:00 - 3 d 4 h is Tue 06:00, before opening: the notice goes out on Monday at closing time.
    assert notice_time(_policy(lead="P3DT4H"), _vienna(2026, 5, 8, 10, 0)) == _vienna(2026, 5, 4, 17, 0)


@settings(max_examples=200)
@given(
    st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(["Europe/Vienna", "America/New_York", "Australia/Sydney", "Europe/London"]),
    st.sampled_from(
        ["Mon-Fri 08:00-17:00", "Mon-Thu 07:30-12:00, Mon-Thu 13:00-16:30", "Sat-Sun 01:30-03:30"]
    ),
    st.sampled_from(["P1D", "PT4H", "P2DT12H", "PT30M"]),
    st.sampled_from(["AT", "US", "AU", "GB"]),
)
def test_no_notice_outside_working_hours(start: datetime, tz: str, hours: str, lead: str, code: str) -> None:
    policy = _policy(tz, hours, lead, code)
    notice = notice_time(policy, start)
    assert notice is not None
    latest = start - policy.notice_lead.elapsed()
    assert notice <= latest
    assert in_working_hours(policy, notice)
    # It is the latest such moment: no working time lies in (notice, latest].
    local = notice.astimezone(policy.timezone).date()
    day = local
    while day <= latest.astimezone(policy.timezone).date():
        if policy.is_working_day(day):
            for opens, closes in policy.working_hours.spans(day):
                open_at = resolve_local(datetime.combine(day, opens), policy.timezone)
                close_at = resolve_local(datetime.combine(day, closes), policy.timezone)
                assert not (notice < latest and open_at <= latest and close_at > notice), (day, opens, closes)
        day += timedelta(days=1)


# -- approvals -----------------------------------------------------------------------------------
def test_approval_valid_through_its_expiry_day_in_the_customers_zone() -> None:
    approval = Approval("roomos", "26.2.2.2", "Maria Huber", _vienna(2026, 4, 20, 10, 0), date(2026, 6, 30))
    assert not approval.valid_at(_vienna(2026, 4, 20, 9, 59), VIENNA)
    assert approval.valid_at(_vienna(2026, 6, 30, 23, 59), VIENNA)
    assert not approval.valid_at(_vienna(2026, 7, 1, 0, 0), VIENNA)  # 2026-06-30T22:00Z: already expired
    assert approval.valid_at(datetime(2026, 6, 30, 21, 59, tzinfo=UTC), VIENNA)


# -- update classes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _F:
    advisory_id: str
    status: str
    kev: bool = False
    cvss: float | None = None


def test_security_needs_kev_or_cvss_and_a_target_that_clears_it() -> None:
    current = [_F("a", "affected", kev=True), _F("b", "affected", cvss=7.0), _F("c", "affected", cvss=6.9)]
    assert security_advisories(current, [_F("a", "fixed"), _F("b", "unknown")], 7.0) == ["a", "b"]
    assert security_advisories(current, [_F("a", "affected"), _F("b", "affected")], 7.0) == []
    assert security_advisories(current, [], 6.5) == ["a", "b", "c"]
    assert security_advisories([_F("d", "unknown", kev=True)], [], 0.0) == []


# -- fault repair --------------------------------------------------------------------------------
def test_fault_repair_is_recorded() -> None:
    job = fault_repair_job(
        "d1", "11.32.3.0", incident="INC-4711", operator="Eva", at=_vienna(2026, 5, 5, 3, 0)
    )
    assert job.update_class == "fault_repair"
    assert job.at.tzinfo is UTC
    assert (job.incident, job.operator) == ("INC-4711", "Eva")


@given(st.text(alphabet=" \t\n", max_size=3), st.text(min_size=1, max_size=20))
def test_fault_repair_without_incident_reference_is_refused(incident: str, operator: str) -> None:
    with pytest.raises(PolicyError, match="incident reference"):
        fault_repair_job("d1", "11.32.3.0", incident=incident, operator=operator, at=datetime.now(UTC))


def test_fault_repair_needs_operator_and_scope() -> None:
    with pytest.raises(PolicyError, match="named operator"):
        fault_repair_job("d1", "1.0", incident="INC-1", operator=" ", at=datetime.now(UTC))
    with pytest.raises(PolicyError, match="outside the contract scope"):
        fault_repair_job("d1", "1.0", incident="INC-1", operator="Eva", at=datetime.now(UTC), in_scope=False)
