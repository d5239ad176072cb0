"""The windows and policy files (TOML) as the planner reads them; the controller stores the same schema.

``parse_windows`` and ``parse_policy`` take already-parsed documents (``tomllib.loads``) and raise
:class:`DataError` with every problem at once, one line each, naming its key path
(``windows[2].rrule: invalid RRULE …``). The README documents both files with a full example.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from controller.scheduler.policy import (
    DEFAULT_HOLIDAYS,
    DEFAULT_NOTICE_LEAD,
    DEFAULT_SECURITY_MIN_CVSS,
    DEFAULT_TIMEZONE,
    DEFAULT_WORKING_HOURS,
    Approval,
    Contact,
    CustomerPolicy,
    WorkingHours,
)
from controller.scheduler.timeutil import PublicHolidays, parse_duration, zone
from controller.scheduler.windows import MaintenanceWindow

T = TypeVar("T")


class DataError(Exception):
    """An input file is invalid. ``errors`` holds one line per problem, each naming its key path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_CONTROL = re.compile(r"[\x01-\x1f\x7f]")  # NUL: the column check names it with the rest


def _printable(value: str) -> str:
    """Names go into e-mail headers, subjects and webhook bodies: a CR or LF in one would end a
    header (header injection; Python's e-mail refuses it, so the notice could never be sent)."""
    if _CONTROL.search(value):
        raise ValueError("contains a control character (CR, LF, tab, ...)")
    return value


Printable = Annotated[str, AfterValidator(_printable)]


class WindowEntry(_Strict):
    customer: str = Field(min_length=1)
    sites: list[str] | None = None
    start: datetime  # local date-time, no offset: the RRULE's DTSTART
    rrule: str
    duration: str  # ISO 8601, e.g. "PT2H"
    timezone: str | None = None  # default: the customer's
    exclude_holidays: bool = True
    blackout: list[date] = []
    name: str = ""


class WindowsFile(_Strict):
    windows: list[WindowEntry] = []


class ContactEntry(_Strict):
    name: Printable = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s\x01-\x1f\x7f]+@[^@\s\x01-\x1f\x7f]+$")
    role: Printable = ""


class ApprovalEntry(_Strict):
    family: str = Field(min_length=1)
    version: str = Field(min_length=1)
    approved_by: str = Field(min_length=1)
    approved_at: datetime  # with offset; a local date-time is read in the customer's zone
    expires: date | None = None  # valid through this day, in the customer's zone


class CustomerEntry(_Strict):
    name: Printable = ""
    timezone: str = DEFAULT_TIMEZONE
    holidays: str = DEFAULT_HOLIDAYS  # "AT", "US", "DE-BY"
    working_hours: str = DEFAULT_WORKING_HOURS
    security_min_cvss: float = Field(DEFAULT_SECURITY_MIN_CVSS, ge=0, le=10)
    notice_lead: str = DEFAULT_NOTICE_LEAD
    # On-premises RoomOS pulls packages from an HTTP(S) host; without one its updates are manual.
    package_host: bool = True
    sites: list[str] = []
    contacts: list[ContactEntry] = []
    approvals: list[ApprovalEntry] = []


class PolicyFile(_Strict):
    customers: dict[str, CustomerEntry] = {}


def _loc(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def _validation_lines(err: ValidationError) -> list[str]:
    lines = []
    for item in err.errors(include_url=False):
        kind = item["type"]
        message = (
            "unknown key"
            if kind == "extra_forbidden"
            else "field required"
            if kind == "missing"
            else str(item["msg"]).removeprefix("Value error, ")
        )
        lines.append(f"{_loc(item['loc'])}: {message}")
    return lines


class Customers(dict[str, CustomerPolicy]):
    """Customer id → policy; ``package_host`` per customer beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.package_host: dict[str, bool] = {}


def parse_policy(raw: Mapping[str, Any]) -> Customers:
    """The policy document → customer policies. Raises :class:`DataError`."""
    try:
        parsed = PolicyFile.model_validate(raw)
    except ValidationError as err:
        raise DataError(_validation_lines(err)) from None
    errors: list[str] = []
    customers = Customers()
    calendars: dict[str, PublicHolidays] = {}
    for cid, entry in parsed.customers.items():
        where = f"customers.{cid}"
        problems = len(errors)
        tz = _check(errors, f"{where}.timezone", zone, entry.timezone)
        calendar = calendars.get(entry.holidays.upper())
        if calendar is None:
            calendar = _check(errors, f"{where}.holidays", PublicHolidays, entry.holidays)
            if calendar is not None:
                calendars[calendar.code] = calendar
        hours = _check(errors, f"{where}.working_hours", WorkingHours.parse, entry.working_hours)
        lead = _check(errors, f"{where}.notice_lead", parse_duration, entry.notice_lead)
        approvals = []
        for item in entry.approvals:
            at = item.approved_at
            if at.tzinfo is None:
                if tz is None:
                    continue
                at = at.replace(tzinfo=tz)
            approvals.append(Approval(item.family, item.version, item.approved_by, at, item.expires))
        if len(errors) > problems or tz is None or calendar is None or hours is None or lead is None:
            continue
        customers[cid] = CustomerPolicy(
            customer=cid,
            timezone=tz,
            holidays=calendar,
            working_hours=hours,
            security_min_cvss=entry.security_min_cvss,
            notice_lead=lead,
            approvals=tuple(approvals),
            contacts=tuple(Contact(c.name, c.email, c.role) for c in entry.contacts),
            sites=tuple(entry.sites),
            name=entry.name,
        )
        customers.package_host[cid] = entry.package_host
    if errors:
        raise DataError(errors)
    return customers


def parse_windows(raw: Mapping[str, Any], customers: Mapping[str, CustomerPolicy]) -> list[MaintenanceWindow]:
    """The windows document → windows; a window's zone defaults to the customer's.

    Raises :class:`DataError`.
    """
    try:
        parsed = WindowsFile.model_validate(raw)
    except ValidationError as err:
        raise DataError(_validation_lines(err)) from None
    errors: list[str] = []
    windows: list[MaintenanceWindow] = []
    for index, entry in enumerate(parsed.windows):
        where = f"windows[{index}]"
        policy = customers.get(entry.customer)
        if policy is None:
            errors.append(
                f"{where}.customer: {entry.customer!r} has no [customers.{entry.customer}] in the policy"
            )
            continue
        problems = len(errors)
        tz = _check(errors, f"{where}.timezone", zone, entry.timezone) if entry.timezone else policy.timezone
        duration = _check(errors, f"{where}.duration", parse_duration, entry.duration)
        if entry.start.tzinfo is not None:
            errors.append(
                f"{where}.start: expected a local date-time without offset (the zone is `timezone`)"
            )
        if len(errors) > problems or tz is None or duration is None:
            continue
        try:
            windows.append(
                MaintenanceWindow(
                    customer=entry.customer,
                    start=entry.start,
                    rrule=entry.rrule,
                    duration=duration,
                    timezone=tz,
                    sites=frozenset(entry.sites) if entry.sites is not None else None,
                    exclude_holidays=entry.exclude_holidays,
                    blackout=frozenset(entry.blackout),
                    name=entry.name or where,
                )
            )
        except ValueError as err:
            text = str(err)
            key = text.split(":", 1)[0] if text.startswith(("duration:", "start:")) else "rrule"
            errors.append(f"{where}.{key}: {text.removeprefix(key + ': ')}")
    if errors:
        raise DataError(errors)
    return windows


def _check(errors: list[str], where: str, parse: Callable[[Any], T], value: Any) -> T | None:
    try:
        result: T = parse(value)
    except ValueError as err:
        errors.append(f"{where}: {err}")
        return None
    return result
