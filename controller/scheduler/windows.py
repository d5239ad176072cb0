"""Maintenance windows: an RFC 5545 recurrence in a time zone, minus holidays and blackout dates.

Pure: :func:`next_windows` depends only on its arguments. python-dateutil expands the RRULE on
naive local date-times; each occurrence is then placed in the window's zone by RFC 5545 §3.3.5
(:func:`~controller.scheduler.timeutil.resolve_local`) and its end is the start plus the duration
(hours and minutes exact elapsed time, so a PT2H window that starts at 01:30 on a fall-back night
ends two real hours later).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import dateutil.rrule

from controller.scheduler.timeutil import Duration, resolve_local

# An occurrence loop that finds nothing usable stops after this many candidates.
MAX_SCAN = 5000
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
    return rule


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
        if self.duration.at_most() <= timedelta(0):
            raise ValueError("duration: must be longer than zero")
        object.__setattr__(self, "_rule", compile_rrule(self.rrule, self.start, self.timezone))

    def applies_to(self, customer: str, site: str) -> bool:
        return customer == self.customer and (self.sites is None or site in self.sites)

    @property
    def rule(self) -> dateutil.rrule.rrule:
        return cast("dateutil.rrule.rrule", self._rule)

    def local_starts(self, after: datetime) -> Iterator[datetime]:
        """Naive local occurrence starts at or after the naive ``after``, in order."""
        return self.rule.xafter(after, inc=True)


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
    for scanned, local_start in enumerate(window.local_starts(local_now)):
        if scanned >= MAX_SCAN:
            break
        start = resolve_local(local_start, tz)
        if until is not None and start > until:
            break
        if start < now or excluded(window, start.date(), holidays):
            continue
        found.append(Occurrence(start, window.duration.after(start), window))
        if len(found) >= n:
            break
    return found
