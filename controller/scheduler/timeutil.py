"""Local times, durations and public holidays: the calendar arithmetic the planner relies on.

Pure functions. Local date-times follow RFC 5545 §3.3.5: a local time that does not exist (the
clock springs forward over it) means the instant with the UTC offset *before* the gap; a local
time that occurs twice (the clock falls back) means the first occurrence. ISO 8601 durations
follow RFC 5545 §3.3.6: weeks and days are nominal (the same wall-clock time on a later day),
hours, minutes and seconds are exact elapsed time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``. Raises ``ValueError`` for an unknown or malformed name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown IANA time zone {name!r}") from err


def resolve_local(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive local date-time names in ``tz`` (RFC 5545 §3.3.5), as an aware datetime in ``tz``.

    Repeated local time (fall back): the first occurrence (``fold=0``). Nonexistent local time
    (spring forward): interpreted with the offset before the gap, so 02:30 on the Vienna spring-
    forward night is 01:30 UTC, shown as 03:30+02:00. PEP 495 gives exactly these two meanings
    to ``fold=0``; the round trip through UTC makes the result show the real wall-clock time.
    """
    if local.tzinfo is not None:
        raise ValueError("expected a naive local date-time")
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d{1,4})W|(?:(?P<days>\d{1,4})D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d{1,5})H)?(?:(?P<minutes>\d{1,6})M)?(?:(?P<seconds>\d{1,7})S)?)?)$",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 / RFC 5545 duration: ``days`` nominal, ``exact`` elapsed time."""

    days: int
    exact: timedelta
    text: str

    def after(self, start: datetime) -> datetime:
        """``start`` (aware) plus this duration, in ``start``'s zone."""
        tz = start.tzinfo
        if not isinstance(tz, ZoneInfo):
            return start + timedelta(days=self.days) + self.exact
        moment = start
        if self.days:
            moment = resolve_local(start.replace(tzinfo=None) + timedelta(days=self.days), tz)
        return (moment.astimezone(UTC) + self.exact).astimezone(tz)

    def elapsed(self) -> timedelta:
        """The duration as elapsed time, a day counted as 24 hours (for lead times)."""
        return timedelta(days=self.days) + self.exact

    def at_most(self) -> timedelta:
        """An upper bound of the elapsed time (a nominal day is at most 25 hours)."""
        return timedelta(hours=25 * self.days) + self.exact

    def __str__(self) -> str:
        return self.text


def parse_duration(text: str) -> Duration:
    """Parse ``PT2H``, ``PT90M``, ``P1D``, ``P1DT12H``, ``P2W``. Raises ``ValueError``.

    Years and months are refused: their length depends on the calendar and no window needs them.
    """
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or text.strip() in {"P", "PT"}:
        raise ValueError(
            f"expected an ISO 8601 duration such as PT2H, PT90M, P1D or P1DT12H (no years or months), "
            f"got {text!r}"
        )
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    days = parts["weeks"] * 7 + parts["days"]
    exact = timedelta(hours=parts["hours"], minutes=parts["minutes"], seconds=parts["seconds"])
    return Duration(days, exact, text.strip())


_HOLIDAY_CODE = re.compile(r"^(?P<country>[A-Z]{2,3})(?:-(?P<subdiv>[A-Z0-9]{1,10}))?$", re.ASCII)


class PublicHolidays:
    """The public holidays of a country and optional subdivision (``"AT"``, ``"DE-BY"``, ``"US-NY"``)."""

    __slots__ = ("_days", "code")

    def __init__(self, code: str) -> None:
        match = _HOLIDAY_CODE.match(code.strip().upper()) if isinstance(code, str) else None
        if match is None:
            raise ValueError(f"expected a country code with optional subdivision (AT, DE-BY), got {code!r}")
        try:
            self._days = holidays.country_holidays(match["country"], subdiv=match["subdiv"])
        except NotImplementedError as err:
            raise ValueError(f"no public-holiday calendar for country {match['country']!r}") from err
        except ValueError as err:
            raise ValueError(f"{code!r}: {err}") from err
        self.code = code.strip().upper()

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and day in self._days

    def name(self, day: date) -> str | None:
        found = self._days.get(day)
        return str(found) if found is not None else None
