"""Maintenance windows: RFC 5545 §3.3.5 local times, exact durations, excluded dates."""

# ruff: noqa: DTZ001 - naive datetimes here are local date-times on purpose (RFC 5545 §3.3.5)

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.scheduler import (
    MaintenanceWindow,
    PublicHolidays,
    next_windows,
    parse_duration,
    resolve_local,
    zone,
)
from controller.scheduler.windows import excluded

VIENNA = zone("Europe/Vienna")
NEW_YORK = zone("America/New_York")


def _window(
    start: datetime, rule: str, duration: str, tz: str = "Europe/Vienna", **kw: object
) -> MaintenanceWindow:
    return MaintenanceWindow("acme", start, rule, parse_duration(duration), zone(tz), **kw)  # type: ignore[arg-type]


# -- RFC 5545 §3.3.5 ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tz", "local", "utc", "shown"),
    [
        # Vienna springs forward 2026-03-29 02:00 → 03:00: 02:30 does not exist; offset before the gap.
        (
            "Europe/Vienna",
            datetime(2026, 3, 29, 2, 30),
            datetime(2026, 3, 29, 1, 30),
            "2026-03-29T03:30:00+02:00",
        ),
        # Vienna falls back 2026-10-25 03:00 → 02:00: 02:30 occurs twice, the first (+02:00) is meant.
        (
            "Europe/Vienna",
            datetime(2026, 10, 25, 2, 30),
            datetime(2026, 10, 25, 0, 30),
            "2026-10-25T02:30:00+02:00",
        ),
        # New York springs forward 2026-03-08 02:00 → 03:00: 02:30 is read with EST (-05:00).
        (
            "America/New_York",
            datetime(2026, 3, 8, 2, 30),
            datetime(2026, 3, 8, 7, 30),
            "2026-03-08T03:30:00-04:00",
        ),
        # New York falls back 2026-11-01 02:00 → 01:00: 01:30 occurs twice, the first (EDT, -04:00).
        (
            "America/New_York",
            datetime(2026, 11, 1, 1, 30),
            datetime(2026, 11, 1, 5, 30),
            "2026-11-01T01:30:00-04:00",
        ),
        # An ordinary time is just itself.
        (
            "Europe/Vienna",
            datetime(2026, 7, 1, 22, 0),
            datetime(2026, 7, 1, 20, 0),
            "2026-07-01T22:00:00+02:00",
        ),
    ],
)
def test_rfc5545_local_time(tz: str, local: datetime, utc: datetime, shown: str) -> None:
    instant = resolve_local(local, zone(tz))
    assert instant.astimezone(UTC) == utc.replace(tzinfo=UTC)
    assert instant.isoformat() == shown


@pytest.mark.parametrize(
    ("tz", "start", "night", "first_start", "first_end_utc"),
    [
        # A daily window at the nonexistent 02:30 starts at 03:30 summer time that night.
        (
            "Europe/Vienna",
            datetime(2026, 3, 1, 2, 30),
            date(2026, 3, 29),
            "2026-03-29T03:30:00+02:00",
            datetime(2026, 3, 29, 3, 30),
        ),
        # A daily window at the repeated 02:30 starts at the first 02:30 and lasts 2 real hours.
        (
            "Europe/Vienna",
            datetime(2026, 10, 1, 2, 30),
            date(2026, 10, 25),
            "2026-10-25T02:30:00+02:00",
            datetime(2026, 10, 25, 2, 30),
        ),
        (
            "America/New_York",
            datetime(2026, 3, 1, 2, 30),
            date(2026, 3, 8),
            "2026-03-08T03:30:00-04:00",
            datetime(2026, 3, 8, 9, 30),
        ),
        (
            "America/New_York",
            datetime(2026, 10, 1, 1, 30),
            date(2026, 11, 1),
            "2026-11-01T01:30:00-04:00",
            datetime(2026, 11, 1, 7, 30),
        ),
    ],
)
def test_window_on_dst_night_is_exact(
    tz: str, start: datetime, night: date, first_start: str, first_end_utc: datetime
) -> None:
    window = _window(start, "FREQ=DAILY", "PT2H", tz, exclude_holidays=False)
    now = datetime.combine(night, datetime.min.time()).replace(tzinfo=zone(tz))
    (occurrence,) = next_windows(window, now, 1)
    assert occurrence.start.isoformat() == first_start
    assert occurrence.end.astimezone(UTC) == first_end_utc.replace(tzinfo=UTC)
    assert occurrence.end.astimezone(UTC) - occurrence.start.astimezone(UTC) == timedelta(hours=2)


def test_fall_back_window_ends_two_real_hours_later() -> None:
    # New York, 2026-11-01: 01:30 EDT + 2 h = 02:30 EST (the wall clock shows only one hour more).
    window = _window(datetime(2026, 11, 1, 1, 30), "FREQ=DAILY;COUNT=1", "PT2H", "America/New_York")
    (occurrence,) = next_windows(window, datetime(2026, 10, 31, tzinfo=UTC), 5)
    assert occurrence.start.isoformat() == "2026-11-01T01:30:00-04:00"
    assert occurrence.end.isoformat() == "2026-11-01T02:30:00-05:00"


def test_nominal_day_keeps_the_wall_clock() -> None:
    # P1D over the spring-forward night is 23 hours of real time; PT24H is 24.
    start = resolve_local(datetime(2026, 3, 28, 22, 0), VIENNA)
    assert parse_duration("P1D").after(start).isoformat() == "2026-03-29T22:00:00+02:00"
    assert parse_duration("PT24H").after(start).isoformat() == "2026-03-29T23:00:00+02:00"


# -- excluded dates -----------------------------------------------------------------------------
def test_easter_monday_window_is_excluded_in_austria() -> None:
    at = PublicHolidays("AT")
    assert date(2026, 4, 6) in at  # Easter Monday 2026
    window = _window(datetime(2026, 1, 5, 20, 0), "FREQ=WEEKLY;BYDAY=MO", "PT3H")
    now = datetime(2026, 4, 1, tzinfo=VIENNA)
    starts = [o.start.date() for o in next_windows(window, now, 2, holidays=at)]
    assert starts == [date(2026, 4, 13), date(2026, 4, 20)]
    kept = _window(datetime(2026, 1, 5, 20, 0), "FREQ=WEEKLY;BYDAY=MO", "PT3H", exclude_holidays=False)
    assert next_windows(kept, now, 1, holidays=at)[0].start.date() == date(2026, 4, 6)


def test_blackout_and_year_boundary() -> None:
    at = PublicHolidays("AT")
    window = _window(
        datetime(2026, 12, 1, 23, 0), "FREQ=DAILY", "PT1H", blackout=frozenset({date(2026, 12, 31)})
    )
    now = datetime(2026, 12, 30, 12, 0, tzinfo=VIENNA)
    starts = [o.start.date() for o in next_windows(window, now, 3, holidays=at)]
    # 31 Dec blacked out, 1 Jan and 6 Jan are holidays.
    assert starts == [date(2026, 12, 30), date(2027, 1, 2), date(2027, 1, 3)]


def test_holidays_by_subdivision() -> None:
    assert date(2026, 1, 6) in PublicHolidays("DE-BY")  # Epiphany in Bavaria
    assert date(2026, 1, 6) not in PublicHolidays("DE-BE")
    assert date(2026, 7, 3) in PublicHolidays("US")  # Independence Day observed
    with pytest.raises(ValueError, match="country"):
        PublicHolidays("XX")


def test_until_in_utc_and_count() -> None:
    window = _window(datetime(2026, 6, 1, 22, 0), "FREQ=DAILY;UNTIL=20260603T200000Z", "PT1H")
    got = next_windows(window, datetime(2026, 5, 1, tzinfo=UTC), 10)
    assert [o.start.day for o in got] == [1, 2, 3]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "RRULE"),
        ("FREQ=SOMETIMES", "invalid RRULE"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "DTSTART"),
    ],
)
def test_bad_rrule(rule: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _window(datetime(2026, 1, 1), rule, "PT1H")


@pytest.mark.parametrize("text", ["", "P", "PT", "2H", "P1Y", "P1M", "PT1.5H", "-PT1H"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


def test_duration_parts() -> None:
    assert parse_duration("PT90M").exact == timedelta(minutes=90)
    assert parse_duration("P1DT12H").days == 1
    assert parse_duration("P2W").days == 14


# -- properties ----------------------------------------------------------------------------------
ZONES = [
    "Europe/Vienna",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Santiago",
    "Europe/London",
]
RULES = [
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=SA,SU",
    "FREQ=WEEKLY;BYDAY=TU",
    "FREQ=MONTHLY;BYDAY=1SU",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=HOURLY;INTERVAL=7",
]
HOLIDAY_CODES = ["AT", "US", "DE-BY", "AU", "CL", "GB"]


@st.composite
def windows_and_now(draw: st.DrawFn) -> tuple[MaintenanceWindow, datetime, PublicHolidays]:
    tz = draw(st.sampled_from(ZONES))
    start = draw(st.datetimes(datetime(2024, 1, 1), datetime(2028, 12, 31))).replace(second=0, microsecond=0)
    minutes = draw(st.integers(1, 24 * 60))
    blackout = draw(st.frozensets(st.dates(date(2024, 1, 1), date(2029, 6, 30)), max_size=20))
    window = MaintenanceWindow(
        "acme",
        start,
        draw(st.sampled_from(RULES)),
        parse_duration(f"PT{minutes}M"),
        zone(tz),
        exclude_holidays=draw(st.booleans()),
        blackout=blackout,
    )
    # Around DST changes and year ends most of the time.
    now = draw(st.datetimes(datetime(2024, 1, 1), datetime(2029, 1, 1), timezones=st.just(UTC)))
    return window, now, _calendar(draw(st.sampled_from(HOLIDAY_CODES)))


_CALENDARS: dict[str, PublicHolidays] = {}


def _calendar(code: str) -> PublicHolidays:
    if code not in _CALENDARS:
        _CALENDARS[code] = PublicHolidays(code)
    return _CALENDARS[code]


@settings(max_examples=150)
@given(windows_and_now(), st.integers(1, 12))
def test_no_occurrence_outside_the_rule_or_on_an_excluded_date(
    case: tuple[MaintenanceWindow, datetime, PublicHolidays], n: int
) -> None:
    window, now, holidays = case
    got = next_windows(window, now, n, holidays=holidays)
    assert len(got) <= n
    tz = window.timezone
    for occurrence in got:
        assert occurrence.start >= now
        local = occurrence.start.astimezone(tz)
        assert not excluded(window, local.date(), holidays)
        assert local.date() not in window.blackout
        if window.exclude_holidays:
            assert local.date() not in holidays
        # Exact: the end is the duration of real time after the start.
        assert occurrence.end.astimezone(UTC) - occurrence.start.astimezone(UTC) == window.duration.exact
        # The start is a rule occurrence read by RFC 5545 §3.3.5.
        naive = [
            d
            for d in window.rule.between(
                local.replace(tzinfo=None) - timedelta(hours=3),
                local.replace(tzinfo=None) + timedelta(hours=3),
                inc=True,
            )
            if resolve_local(d, tz) == occurrence.start
        ]
        assert naive, f"{occurrence.start} is no occurrence of {window.rrule}"
    # Nothing usable was skipped: every non-excluded occurrence from now to the last one found is listed.
    if got:
        last = got[-1].start
        lo = now.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
        hi = last.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
        expected = sorted(
            {
                s
                for s in (resolve_local(d, tz) for d in window.rule.between(lo, hi, inc=True))
                if now <= s <= last and not excluded(window, s.date(), holidays)
            }
        )
        assert sorted({o.start for o in got}) == expected
