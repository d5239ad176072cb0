"""The contract as data: customers, working hours, approvals, update classes, notice times.

Pure functions over plain data. Update classes (issue 15, item 3):

* ``security``: the current version has an ``affected`` finding that is in KEV or has CVSS at or
  above the customer's ``security_min_cvss``, and that advisory does not call the target version
  affected. The provider decides; no approval is needed.
* ``feature``: every other update; needs the customer's approval of (family, target version),
  valid when the window starts.
* ``fault_repair``: a patch applied while fixing an incident, outside the windows if need be,
  only with an incident reference and a named operator (:func:`fault_repair_job`).

Devices outside the contract scope get no update of any class.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from controller.scheduler.timeutil import Duration, PublicHolidays, resolve_local

UpdateClass = Literal["security", "feature", "fault_repair"]
DEFAULT_TIMEZONE = "Europe/Vienna"
DEFAULT_HOLIDAYS = "AT"
DEFAULT_WORKING_HOURS = "Mon-Fri 08:00-17:00"
DEFAULT_SECURITY_MIN_CVSS = 7.0
DEFAULT_NOTICE_LEAD = "P1D"
# How far back the notice search looks for a working day (a year of holidays cannot hide them all).
_NOTICE_SEARCH_DAYS = 400

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(
    r"^(?P<d1>[a-z]{3})(?:\s*-\s*(?P<d2>[a-z]{3}))?\s+(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})$",
    re.ASCII | re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Opening hours per weekday (0 = Monday): closed intervals of local wall-clock time."""

    by_weekday: tuple[tuple[tuple[time, time], ...], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """``"Mon-Fri 08:00-17:00"``; several spans separated by commas (``"Mon-Fri 08:00-12:00, Mon-Thu
        13:00-17:00"``). Raises ``ValueError``."""
        days: list[list[tuple[time, time]]] = [[] for _ in _DAYS]
        if not isinstance(text, str) or not text.strip():
            raise ValueError('expected working hours such as "Mon-Fri 08:00-17:00"')
        for part in text.split(","):
            match = _SPAN.match(part.strip())
            if match is None:
                raise ValueError(
                    f'expected "<Day>[-<Day>] HH:MM-HH:MM" such as "Mon-Fri 08:00-17:00", got {part!r}'
                )
            try:
                first = _DAYS.index(match["d1"].lower())
                last = _DAYS.index((match["d2"] or match["d1"]).lower())
                opens = time(int(match["h1"]), int(match["m1"]))
                closes = time(int(match["h2"]), int(match["m2"]))
            except ValueError as err:
                raise ValueError(f"{part.strip()!r}: unknown day or invalid time ({err})") from err
            if closes <= opens:
                raise ValueError(f"{part.strip()!r}: closing time must be after opening time")
            if last < first:
                raise ValueError(f"{part.strip()!r}: day range must run forward (Mon-Fri)")
            for day in range(first, last + 1):
                days[day].append((opens, closes))
        ordered = tuple(tuple(sorted(spans)) for spans in days)
        return cls(ordered, text.strip())

    def spans(self, day: date) -> tuple[tuple[time, time], ...]:
        return self.by_weekday[day.weekday()]


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str
    role: str = ""


@dataclass(frozen=True, slots=True)
class Approval:
    """The customer's approval of one (family, version) for feature updates."""

    family: str
    version: str
    approved_by: str
    approved_at: datetime  # aware
    expires: date | None = None  # valid through this day, in the customer's time zone

    def valid_at(self, instant: datetime, tz: ZoneInfo) -> bool:
        if instant < self.approved_at:
            return False
        return self.expires is None or instant.astimezone(tz).date() <= self.expires


@dataclass(frozen=True, slots=True)
class CustomerPolicy:
    """One customer's contract: time zone, calendar, working hours, thresholds, approvals."""

    customer: str
    timezone: ZoneInfo
    holidays: PublicHolidays
    working_hours: WorkingHours
    security_min_cvss: float = DEFAULT_SECURITY_MIN_CVSS
    notice_lead: Duration = field(default_factory=lambda: Duration(1, timedelta(0), DEFAULT_NOTICE_LEAD))
    approvals: tuple[Approval, ...] = ()
    contacts: tuple[Contact, ...] = ()
    sites: tuple[str, ...] = ()  # known sites (informational; inventory sites need not be listed)
    name: str = ""

    def is_working_day(self, day: date) -> bool:
        return bool(self.working_hours.spans(day)) and day not in self.holidays

    def approval_for(self, family: str, version: str, at: datetime) -> Approval | None:
        """An approval of (family, version) valid at ``at``, or None."""
        for approval in self.approvals:
            if (
                approval.family == family
                and approval.version == version
                and approval.valid_at(at, self.timezone)
            ):
                return approval
        return None


def notice_time(policy: CustomerPolicy, window_start: datetime) -> datetime | None:
    """The latest moment inside the customer's working hours at or before ``window_start - notice_lead``.

    Working hours are closed intervals of local time on working days (public holidays are not
    working days). ``notice_lead`` is taken as exact elapsed time (a day is 24 hours), so the notice
    is always at least that long before the window. None when no working hour exists in the
    400 days before.
    """
    latest = (window_start.astimezone(UTC) - policy.notice_lead.elapsed()).astimezone(policy.timezone)
    day = latest.date()
    for _ in range(_NOTICE_SEARCH_DAYS):
        if policy.is_working_day(day):
            for opens, closes in reversed(policy.working_hours.spans(day)):
                open_at = resolve_local(datetime.combine(day, opens), policy.timezone)
                if open_at > latest:
                    continue
                close_at = resolve_local(datetime.combine(day, closes), policy.timezone)
                return min(latest, close_at)
        day -= timedelta(days=1)
    return None


def in_working_hours(policy: CustomerPolicy, instant: datetime) -> bool:
    local = instant.astimezone(policy.timezone)
    if not policy.is_working_day(local.date()):
        return False
    for opens, closes in policy.working_hours.spans(local.date()):
        open_at = resolve_local(datetime.combine(local.date(), opens), policy.timezone)
        close_at = resolve_local(datetime.combine(local.date(), closes), policy.timezone)
        if open_at <= instant <= close_at:
            return True
    return False


class FindingLike(Protocol):
    """What classification reads of a finding (firmware_catalog's Verdict and Finding fit)."""

    @property
    def advisory_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def kev(self) -> bool: ...
    @property
    def cvss(self) -> float | None: ...


def security_advisories(
    current: Iterable[FindingLike], at_target: Iterable[FindingLike], min_cvss: float
) -> list[str]:
    """Advisories that make an update to the target a security update (see the module docstring)."""
    target_status = {f.advisory_id: f.status for f in at_target}
    return [
        f.advisory_id
        for f in current
        if f.status == "affected"
        and (f.kev or (f.cvss is not None and f.cvss >= min_cvss))
        and target_status.get(f.advisory_id, "unknown") != "affected"
    ]


def update_class(
    current: Sequence[FindingLike], at_target: Sequence[FindingLike], min_cvss: float
) -> UpdateClass:
    """``security`` or ``feature`` for a planned update (fault repair is chosen by the operator)."""
    return "security" if security_advisories(current, at_target, min_cvss) else "feature"


class PolicyError(ValueError):
    """A request the contract does not allow (e.g. a fault repair without an incident reference)."""


@dataclass(frozen=True, slots=True)
class FaultRepairJob:
    """A patch applied while fixing an incident; runs now, outside the windows if need be."""

    device_id: str
    target: str
    incident: str
    operator: str
    at: datetime
    update_class: UpdateClass = "fault_repair"


def fault_repair_job(
    device_id: str, target: str, *, incident: str, operator: str, at: datetime, in_scope: bool = True
) -> FaultRepairJob:
    """Record a fault-repair update. Raises :class:`PolicyError` without an incident reference or a
    named operator, or for a device outside the contract scope."""
    problems = []
    if not in_scope:
        problems.append(f"device {device_id} is outside the contract scope")
    if not isinstance(incident, str) or not incident.strip():
        problems.append("a fault repair needs an incident reference")
    if not isinstance(operator, str) or not operator.strip():
        problems.append("a fault repair needs a named operator")
    if not isinstance(target, str) or not target.strip():
        problems.append("a fault repair needs a target version")
    if at.tzinfo is None:
        problems.append("the time of a fault repair must be aware")
    if problems:
        raise PolicyError("; ".join(problems))
    return FaultRepairJob(device_id, target.strip(), incident.strip(), operator.strip(), at.astimezone(UTC))
