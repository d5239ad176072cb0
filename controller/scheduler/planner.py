"""The planner: one job (or one hold, with its reason) per device. Pure.

For each device in inventory order: scope → target (firmware_catalog.targets) → update class →
the first usable window of its customer and site. A window occurrence is usable when it starts
within the horizon, its local start date is not excluded, and the customer's notice for it (the
latest moment inside working hours at least ``notice_lead`` before the start) is not before
``now``. A feature update also needs an approval of (family, target) valid when the window starts;
a security update never waits for one.

Waves: per (customer, family, target) the first ``canary`` devices that get a window form wave 1;
the others (wave 2) get the first usable window that starts after every wave-1 window of their
group has ended. ``canary=0``: one wave.

Cost: windows are expanded once per (customer, set of windows of a site), notices once per
(customer, window start), targets once per (vendor, product, version); the rest is per device.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from controller.scheduler.policy import CustomerPolicy, UpdateClass, notice_time, security_advisories
from controller.scheduler.update_paths import Execution, execution_for
from controller.scheduler.windows import MaintenanceWindow, Occurrence, next_windows
from firmware_catalog import Device, TargetChoice, TargetSelector, VersionParseError, parse_version

ReasonCode = Literal[
    "scheduled", "up_to_date", "out_of_scope", "no_approval", "no_window", "unknown_version", "no_target"
]
DEFAULT_HORIZON_DAYS = 60
DEFAULT_CANARY = 1
# Upper bound of occurrences per window within the horizon (a window every 15 minutes for 60 days).
_MAX_OCCURRENCES = 6000


@dataclass(frozen=True, slots=True)
class InventoryDevice:
    device_id: str
    vendor: str
    product: str
    software_version: str
    customer: str
    site: str
    in_scope: bool = True
    # The family the driver reported (firmware_catalog.vocabulary), used before the product-name
    # rules as the matcher does: a Webex Calling phone reports "Cisco 8845" / "14-2-1MPP", which
    # only its reported family "mpp" places.
    family: str | None = None

    def as_device(self) -> Device:
        return Device(self.device_id, self.vendor, self.product, self.software_version, self.family)


@dataclass(frozen=True, slots=True)
class Slot:
    """A usable window occurrence and the customer's notice time for it."""

    occurrence: Occurrence
    notice_at: datetime


@dataclass(frozen=True, slots=True)
class PlannedJob:
    device_id: str
    action: Literal["update", "hold"]
    reason_code: ReasonCode
    reason: str
    update_class: UpdateClass | None = None
    target: str | None = None
    target_rule: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    wave: int | None = None
    execution: Execution | None = None
    notice_at: datetime | None = None
    approved_by: str | None = None
    window: str | None = None
    advisories: tuple[str, ...] = ()  # the advisories that make it a security update

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "action": self.action,
            "update_class": self.update_class,
            "target": self.target,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "wave": self.wave,
            "execution": self.execution,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "target_rule": self.target_rule,
            "notice_at": self.notice_at.isoformat() if self.notice_at else None,
            "approved_by": self.approved_by,
            "window": self.window,
            "advisories": list(self.advisories),
        }


class Planner:
    """Plans a fleet against windows and policies at ``now`` (aware)."""

    def __init__(
        self,
        windows: Sequence[MaintenanceWindow],
        policies: Mapping[str, CustomerPolicy],
        selector: TargetSelector,
        *,
        now: datetime,
        horizon_days: int = DEFAULT_HORIZON_DAYS,
        canary: int = DEFAULT_CANARY,
        package_host: Mapping[str, bool] | None = None,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if canary < 0 or horizon_days < 0:
            raise ValueError("canary and horizon_days must not be negative")
        self.windows = list(windows)
        self.policies = policies
        self.selector = selector
        self.now = now
        self.until = now + timedelta(days=horizon_days)
        self.canary = canary
        self.package_host = dict(package_host or {})
        self._by_customer: dict[str, list[int]] = {}
        for index, window in enumerate(self.windows):
            self._by_customer.setdefault(window.customer, []).append(index)
        self._site_windows: dict[tuple[str, str], tuple[int, ...]] = {}
        self._slots: dict[tuple[str, tuple[int, ...]], list[Slot]] = {}
        self._slot_starts: dict[tuple[str, tuple[int, ...]], list[datetime]] = {}
        self._notices: dict[tuple[str, datetime], datetime | None] = {}
        self._approved: dict[tuple[str, str, str], dict[int, str | None]] = {}
        self._waves: dict[tuple[str, str, str], tuple[int, datetime | None]] = {}

    # -- public ---------------------------------------------------------------------------------
    def plan(self, devices: Sequence[InventoryDevice]) -> list[PlannedJob]:
        """One job per device, in the given order. Raises ``KeyError`` for a customer without policy."""
        plain = [device.as_device() for device in devices]
        seen: set[tuple[str, str, str]] = set()
        for device in plain:
            # The fleet's reported versions extend the release catalog before any target is chosen.
            combo = (device.vendor, device.product, device.software_version)
            if combo in seen:
                continue
            seen.add(combo)
            identity, version, _why = self.selector.matcher.identify(device)
            if version is not None and identity.scheme is not None:
                self.selector.releases.add_reported(identity.scheme, version)
        return [self.plan_device(device, as_device) for device, as_device in zip(devices, plain, strict=True)]

    def plan_device(  # noqa: C901, PLR0911, PLR0912 - the steps of the module docstring, one hold each
        self, device: InventoryDevice, as_device: Device | None = None
    ) -> PlannedJob:
        policy = self.policies[device.customer]
        if not device.in_scope:
            return _hold(device, "out_of_scope", "outside the contract scope: no update of any class")
        choice = self.selector.choose(as_device or device.as_device())
        if choice.problem is not None:
            return _hold(device, choice.problem, choice.reason)
        assert choice.target is not None
        assert choice.current is not None
        assert choice.family is not None
        target = str(choice.target)
        if choice.up_to_date:
            why = f"current version {choice.current} is at or above the target {target} ({choice.reason})"
            return _hold(device, "up_to_date", why, target=target, rule=choice.rule)
        security = security_advisories(choice.verdicts, choice.at_target, policy.security_min_cvss)
        update_class: UpdateClass = "security" if security else "feature"
        slots = self._usable(device.customer, device.site)
        group = (device.customer, choice.family, target)
        planned, gate = self._waves.get(group, (0, None))
        wave = 1 if self.canary == 0 or planned < self.canary else 2
        if wave == 1 or gate is None:
            candidates = slots
        else:
            starts = self._starts(device.customer, device.site)
            candidates = slots[bisect_left(starts, gate) :]
        approved_by: str | None = None
        if update_class == "feature":
            approvals = self._approvals(policy, choice, device.site)
            chosen = next((s for s in candidates if approvals.get(id(s)) is not None), None)
            if chosen is None:
                if candidates:
                    why = (
                        f"feature update to {target} needs the customer's approval; "
                        "none is valid in a usable window"
                    )
                    return _hold(
                        device, "no_approval", why, target=target, rule=choice.rule, cls=update_class
                    )
                return self._no_window(device, target, choice, update_class, wave)
            approved_by = approvals[id(chosen)]
        else:
            chosen = candidates[0] if candidates else None
            if chosen is None:
                return self._no_window(device, target, choice, update_class, wave)
        occurrence = chosen.occurrence
        if wave == 1 and self.canary:
            end = occurrence.end if gate is None or occurrence.end > gate else gate
            self._waves[group] = (planned + 1, end)
        execution, how = execution_for(
            choice.family, package_host=self.package_host.get(device.customer, True)
        )
        if update_class == "security":
            why = f"security update to {target}: {', '.join(security)} ({choice.reason}); no approval needed"
        else:
            why = f"feature update to {target} approved by {approved_by} ({choice.reason})"
        return PlannedJob(
            device_id=device.device_id,
            action="update",
            reason_code="scheduled",
            reason=f"{why}; {execution}: {how}",
            update_class=update_class,
            target=target,
            target_rule=choice.rule,
            start=occurrence.start,
            end=occurrence.end,
            wave=wave,
            execution=execution,
            notice_at=chosen.notice_at,
            approved_by=approved_by,
            window=occurrence.window.name,
            advisories=tuple(security),
        )

    # -- internals ------------------------------------------------------------------------------
    def _no_window(
        self, device: InventoryDevice, target: str, choice: TargetChoice, update_class: UpdateClass, wave: int
    ) -> PlannedJob:
        days = (self.until - self.now).days
        after = " after the canary wave" if wave == 2 else ""
        why = f"no usable window{after} within {days} days for {device.customer}/{device.site}"
        return _hold(device, "no_window", why, target=target, rule=choice.rule, cls=update_class)

    def _usable(self, customer: str, site: str) -> list[Slot]:
        key = (customer, site)
        indices = self._site_windows.get(key)
        if indices is None:
            indices = self._site_windows[key] = tuple(
                i for i in self._by_customer.get(customer, ()) if self.windows[i].applies_to(customer, site)
            )
        slots = self._slots.get((customer, indices))
        if slots is None:
            slots = self._slots[(customer, indices)] = self._expand(self.policies[customer], indices)
        return slots

    def _expand(self, policy: CustomerPolicy, indices: tuple[int, ...]) -> list[Slot]:
        slots: list[Slot] = []
        for index in indices:
            window = self.windows[index]
            for occurrence in next_windows(
                window, self.now, _MAX_OCCURRENCES, holidays=policy.holidays, until=self.until
            ):
                notice = self._notice(policy, occurrence.start)
                if notice is not None and notice >= self.now:
                    slots.append(Slot(occurrence, notice))
        slots.sort(key=lambda s: (s.occurrence.start, s.occurrence.end))
        return slots

    def _starts(self, customer: str, site: str) -> list[datetime]:
        key = (customer, self._site_windows[(customer, site)])
        found = self._slot_starts.get(key)
        if found is None:
            found = self._slot_starts[key] = [s.occurrence.start for s in self._slots[key]]
        return found

    def _notice(self, policy: CustomerPolicy, start: datetime) -> datetime | None:
        key = (policy.customer, start)
        if key not in self._notices:
            self._notices[key] = notice_time(policy, start)
        return self._notices[key]

    def _approvals(self, policy: CustomerPolicy, choice: TargetChoice, site: str) -> dict[int, str | None]:
        """id(slot) → who approved (family, target) validly at the slot's start, or None."""
        assert choice.family is not None
        assert choice.target is not None
        key = (policy.customer, site, f"{choice.family}\0{choice.target.scheme}\0{choice.target}")
        found = self._approved.get(key)
        if found is None:
            matching = [
                a for a in policy.approvals if a.family == choice.family and _same(a.version, choice.target)
            ]
            found = {}
            for slot in self._usable(policy.customer, site):
                start = slot.occurrence.start
                approval = next((a for a in matching if a.valid_at(start, policy.timezone)), None)
                found[id(slot)] = approval.approved_by if approval is not None else None
            self._approved[key] = found
        return found


def _same(text: str, target: Any) -> bool:
    try:
        return bool(parse_version(target.scheme, text) == target)
    except VersionParseError:
        return False


def _hold(
    device: InventoryDevice,
    code: ReasonCode,
    reason: str,
    *,
    target: str | None = None,
    rule: str | None = None,
    cls: UpdateClass | None = None,
) -> PlannedJob:
    return PlannedJob(
        device_id=device.device_id,
        action="hold",
        reason_code=code,
        reason=reason,
        update_class=cls,
        target=target,
        target_rule=rule,
    )
