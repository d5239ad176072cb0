"""Maintenance windows: an RFC 5545 recurrence in a time zone, minus holidays and blackout dates.

Pure: :func:`next_windows` depends only on its arguments. python-dateutil expands the RRULE on
naive local date-times; each occurrence is then placed in the window's zone by RFC 5545 §3.3.5
(:func:`~controller.scheduler.timeutil.resolve_local`) and its end is the start plus the duration
(hours and minutes exact elapsed time, so a PT2H window that starts at 01:30 on a fall-back night
ends two real hours later).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import dateutil.rrule

from controller.scheduler.timeutil import Duration, resolve_local

# An occurrence loop that finds nothing usable stops after this many candidates.
MAX_SCAN = 5000
# dateutil walks every period from DTSTART, matching or not: a rule that can never match
# (FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30) walks to the year 9999 before it ends. Expansion stops
# this far after the scan's start, and a window's start lies in these years (a start in 9999
# would overflow its end, one in 0001 would make every expansion walk two thousand years).
SCAN_YEARS = 100
START_YEARS = (1970, 2200)
# Periods dateutil counts in a fixed number of seconds: expansion of a rule without COUNT starts
# at the last period boundary before the scan instead of at DTSTART (same occurrences, because
# every BY* part of such a rule is relative to the period, and its defaults come from DTSTART's
# minute and second, which a shift by whole periods keeps).
_FIXED_PERIOD_S = {
    dateutil.rrule.DAILY: 86_400,
    dateutil.rrule.HOURLY: 3_600,
    dateutil.rrule.MINUTELY: 60,
    dateutil.rrule.SECONDLY: 1,
}
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
_FORBIDDEN = re.compile(r"(^|[;\n])\s*(DTSTART|RDATE|EXDATE|EXRULE)\b", re.IGNORECASE)


def compile_rrule(text: str, start: datetime, tz: ZoneInfo) -> dateutil.rrule.rrule:
    """Compile an RRULE value (``FREQ=WEEKLY;BYDAY=TU``, optional ``RRULE:`` prefix) on a naive ``start``.

    An ``UNTIL`` in UTC (``…Z``, as RFC 5545 §3.3.10 requires with a zoned DTSTART) is converted to
    local time, because dateutil expands naive date-times. Raises ``ValueError``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected an RRULE such as FREQ=WEEKLY;BYDAY=TU")
    body = text.strip().removeprefix("RRULE:").removeprefix("rrule:")
    if _FORBIDDEN.search(body) or "\n" in body:
        raise ValueError("give only the RRULE value: the start comes from `start`, no DTSTART/RDATE/EXDATE")
    until = _UNTIL_UTC.search(body)
    if until is not None:
        instant = datetime.strptime(until.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        local = instant.astimezone(tz).replace(tzinfo=None)
        body = body[: until.start()] + f"UNTIL={local:%Y%m%dT%H%M%S}" + body[until.end() :]
    try:
        rule = dateutil.rrule.rrulestr(body, dtstart=start, forceset=False)
    except (ValueError, TypeError, KeyError, IndexError) as err:
        raise ValueError(f"invalid RRULE {text!r}: {err}") from err
    if not isinstance(rule, dateutil.rrule.rrule):
        raise ValueError(f"invalid RRULE {text!r}: expected a single rule")  # noqa: TRY004 - bad input, not a bug
    if _day_probe(rule, start).after(start, inc=True) is None:
        raise ValueError(f"invalid RRULE {text!r}: no day ever matches it (e.g. the 30th of February)")
    return rule


def _part(rule: dateutil.rrule.rrule, name: str) -> Any:
    """A compiled rule's part (``freq``, ``interval``, ``count``, ``until``, ``original_rule``):
    dateutil keeps them in private attributes and offers no getter."""
    return getattr(rule, f"_{name}")


_DAY_PARTS = ("bymonth", "bymonthday", "byyearday", "byweekno", "byeaster", "byweekday")


def _day_probe(rule: dateutil.rrule.rrule, start: datetime) -> dateutil.rrule.rrule:
    """A rule with ``rule``'s day filters that dateutil expands a year at a time.

    dateutil walks a rule of days, hours, minutes or seconds period by period, matching or not,
    up to the year 9999 when no day can match: seconds of CPU for one expansion. Yearly and
    monthly rules are that cheap walk themselves; finer ones are probed as a yearly rule of their
    day filters (a weekday without ordinal means the same in both), every weekday when they name
    none, so dateutil's defaults from DTSTART's date do not narrow the probe.
    """
    if _part(rule, "freq") in {dateutil.rrule.YEARLY, dateutil.rrule.MONTHLY}:
        return rule
    parts = {k: v for k, v in _part(rule, "original_rule").items() if k in _DAY_PARTS}
    if not parts.keys() - {"bymonth"}:
        parts["byweekday"] = tuple(range(7))
    return dateutil.rrule.rrule(
        dateutil.rrule.YEARLY, dtstart=start.replace(hour=0, minute=0, second=0), **parts
    )


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One recurring window of one customer, optionally narrowed to some of its sites."""

    customer: str
    start: datetime  # naive local date-time in ``timezone``: the RRULE's DTSTART
    rrule: str
    duration: Duration
    timezone: ZoneInfo
    sites: frozenset[str] | None = None  # None: every site of the customer
    exclude_holidays: bool = True
    blackout: frozenset[date] = frozenset()
    name: str = ""  # for people: "windows[3]" or a label
    _rule: dateutil.rrule.rrule | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None:
            raise ValueError("start: expected a local date-time without offset")
        if not START_YEARS[0] <= self.start.year <= START_YEARS[1]:
            raise ValueError(f"start: expected a year from {START_YEARS[0]} to {START_YEARS[1]}")
        if self.duration.at_most() <= timedelta(0):
            raise ValueError("duration: must be longer than zero")
        object.__setattr__(self, "_rule", compile_rrule(self.rrule, self.start, self.timezone))

    def applies_to(self, customer: str, site: str) -> bool:
        return customer == self.customer and (self.sites is None or site in self.sites)

    @property
    def rule(self) -> dateutil.rrule.rrule:
        return cast("dateutil.rrule.rrule", self._rule)

    def local_starts(self, after: datetime) -> Iterator[datetime]:
        """Naive local occurrence starts at or after the naive ``after``, in order, up to
        :data:`SCAN_YEARS` after ``after`` (so no rule makes the expansion walk for seconds)."""
        rule = self.rule
        changes: dict[str, Any] = {}
        step_s = _FIXED_PERIOD_S.get(_part(rule, "freq"), 0) * _part(rule, "interval")
        if step_s and _part(rule, "count") is None and after > self.start:
            periods = int((after - self.start).total_seconds()) // step_s
            changes["dtstart"] = self.start + timedelta(seconds=periods * step_s)
        try:
            horizon = after.replace(year=after.year + SCAN_YEARS)
        except ValueError:  # 29 February, or past the year 9999
            horizon = after + timedelta(days=365 * SCAN_YEARS)
        until = _part(rule, "until")
        if until is None or until > horizon:
            changes["until"] = horizon
        with warnings.catch_warnings():  # COUNT with UNTIL: dateutil ends at whichever comes first
            warnings.simplefilter("ignore", DeprecationWarning)
            return rule.replace(**changes).xafter(after, inc=True)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One concrete window: aware ``start`` and ``end`` in the window's zone."""

    start: datetime
    end: datetime
    window: MaintenanceWindow

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)


def excluded(window: MaintenanceWindow, local_day: date, holidays: Container[date]) -> bool:
    """Is a window whose local start date is ``local_day`` excluded (blackout, or holiday when excluded)?"""
    return local_day in window.blackout or (window.exclude_holidays and local_day in holidays)


def next_windows(
    window: MaintenanceWindow,
    now: datetime,
    n: int,
    *,
    holidays: Container[date] = frozenset(),
    until: datetime | None = None,
) -> list[Occurrence]:
    """The first ``n`` occurrences that start at or after ``now`` and are not excluded.

    ``now`` and ``until`` are aware. ``until`` (optional) bounds the start; the scan also stops
    after :data:`MAX_SCAN` candidates, so a rule whose every date is excluded ends. ``holidays``
    are the customer's public holidays (used when the window excludes them).
    """
    if now.tzinfo is None or (until is not None and until.tzinfo is None):
        raise ValueError("now and until must be aware datetimes")
    tz = window.timezone
    # Start a day early on the naive local axis: around a DST change the naive order and the real
    # order differ by at most the offset change.
    local_now = now.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
    found: list[Occurrence] = []
    if n <= 0:
        return found
    scanned = 0
    for local_start in window.local_starts(local_now):
        start = resolve_local(local_start, tz)
        if start < now:  # at most a day of candidates (the early start above)
            continue
        scanned += 1
        if scanned > MAX_SCAN or (until is not None and start > until):
            break
        if excluded(window, start.date(), holidays):
            continue
        found.append(Occurrence(start, window.duration.after(start), window))
        if len(found) >= n:
            break
    return found
