"""Hostile windows: RRULEs and starts that made the expansion walk for minutes or overflow.

Found by attacking the contracts API (an admin's typo or a stolen admin token): a SECONDLY rule
whose DTSTART lies months back made dateutil walk every second since then (the API's event loop
and the planner hung), a rule no day can match (the 30th of February) walked to the year 9999,
and a start in the year 9999 overflowed the window's end (500).
"""

# ruff: noqa: DTZ001 - naive datetimes here are local date-times on purpose (RFC 5545 §3.3.5)

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import dateutil.rrule
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.scheduler import DataError, MaintenanceWindow, next_windows, parse_duration, zone
from controller.scheduler.schema import parse_policy, parse_windows

VIENNA = zone("Europe/Vienna")
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def _window(start: datetime, rule: str, duration: str = "PT1H") -> MaintenanceWindow:
    return MaintenanceWindow("acme", start, rule, parse_duration(duration), VIENNA)


@pytest.mark.timeout(120)  # a guard only: without the fix this walks 1.8 billion seconds
@pytest.mark.parametrize("rule", ["FREQ=SECONDLY", "FREQ=MINUTELY;INTERVAL=7", "FREQ=HOURLY;BYHOUR=3"])
def test_a_fine_rule_started_long_ago_finds_its_next_windows(rule: str) -> None:
    found = next_windows(_window(datetime(1970, 1, 1), rule), NOW, 3)
    assert len(found) == 3
    assert all(NOW <= o.start < NOW + timedelta(days=4) for o in found)
    assert [o.start for o in found] == sorted(o.start for o in found)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30,31",
        "FREQ=WEEKLY;BYMONTH=11;BYMONTHDAY=31",
        "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1",
    ],
)
def test_a_rule_no_day_can_match_is_refused(rule: str) -> None:
    with pytest.raises(ValueError, match="no day ever matches"):
        _window(datetime(2026, 1, 1), rule)


@pytest.mark.parametrize("rule", ["FREQ=DAILY;BYMONTH=2", "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=29"])
def test_a_rare_but_possible_rule_is_kept(rule: str) -> None:
    """The probe must not inherit DTSTART's day (the 30th) as a filter."""
    assert next_windows(_window(datetime(2026, 1, 30), rule), NOW, 1)


@pytest.mark.parametrize("start", [datetime(9999, 12, 31, 23), datetime(1, 1, 1), datetime(2201, 1, 1)])
def test_a_start_out_of_range_is_refused_naming_start(start: datetime) -> None:
    with pytest.raises(ValueError, match=r"^start: expected a year from 1970 to 2200"):
        _window(start, "FREQ=DAILY", "PT2H")
    policy = parse_policy({"customers": {"acme": {}}})
    document = {"windows": [{"customer": "acme", "start": start, "rrule": "FREQ=DAILY", "duration": "PT2H"}]}
    with pytest.raises(DataError) as err:
        parse_windows(document, policy)
    assert [e.split(":")[0] for e in err.value.errors] == ["windows[0].start"]


@settings(max_examples=150, deadline=None)
@given(
    freq=st.sampled_from(["SECONDLY", "MINUTELY", "HOURLY", "DAILY"]),
    interval=st.integers(1, 50),
    extra=st.sampled_from(
        ["", ";BYHOUR=1,5,22", ";BYDAY=MO,SA", ";BYMONTHDAY=1,15,-1", ";BYSETPOS=1;BYHOUR=2,3"]
    ),
    start=st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31)),
    ahead=st.integers(0, 3 * 86_400),
)
def test_the_shortcut_expands_the_same_occurrences_as_dateutil_from_dtstart(
    freq: str, interval: int, extra: str, start: datetime, ahead: int
) -> None:
    start = start.replace(microsecond=0)
    text = f"FREQ={freq};INTERVAL={interval}{extra}"
    try:
        window = _window(start, text)
    except ValueError:
        return  # dateutil refuses some combinations (no hour reachable with this interval)
    after = start + timedelta(seconds=ahead)
    plain = dateutil.rrule.rrulestr(text, dtstart=start)
    assert list(islice(window.local_starts(after), 20)) == list(islice(plain.xafter(after, inc=True), 20))
