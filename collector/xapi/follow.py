"""Following a restart or an upgrade to its end state, by reading the status tree again.

Shared by the on-premises codec (its own ``/status.xml``) and the Webex cloud (``/v1/xapi/status``
for one device): ``read`` returns the status tree, or raises :class:`Unreachable` while the device
is away (rebooting). The loop ends at the request's deadline with ``timed_out`` — the operation's
outcome is then unknown, and the result says so instead of guessing.

- Restart succeeded: the device answers again with a lower ``SystemUnit.Uptime`` than before.
- Upgrade: ``Provisioning.Software.UpgradeStatus`` of *this* upgrade (its URL or a change seen
  after the command) reaches ``Succeeded`` — then the running version must be the target — or
  ``Failed``/``InstallationFailed`` (schema 26.4.1 value set, vendor-update-paths.md §4.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.actions import ActionState
from collector.errors import Unreachable
from collector.model import utcnow
from collector.xapi.status import firmware, roomos_firmware, upgrade_state, uptime_s

ReadStatus = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Outcome:
    state: ActionState
    detail: str
    history: list[str] = field(default_factory=list)

    def note(self, entry: str) -> None:
        if not self.history or self.history[-1] != entry:
            self.history.append(entry[:1024])


def expired(deadline: datetime) -> bool:
    """True when an action's deadline has passed: it is then not started at all."""
    return _left_s(deadline) <= 0


def _left_s(deadline: datetime) -> float:
    return (deadline - utcnow()).total_seconds()


async def _pause(deadline: datetime, interval_s: float) -> bool:
    """Sleep one interval (never past the deadline); False when the deadline has passed."""
    left = _left_s(deadline)
    if left <= 0:
        return False
    await asyncio.sleep(min(interval_s, left))
    return _left_s(deadline) > 0


async def follow_restart(
    read: ReadStatus, *, uptime_before: float | None, deadline: datetime, interval_s: float
) -> Outcome:
    outcome = Outcome(ActionState.TIMED_OUT, "the device did not come back before the deadline", ["accepted"])
    went_away = False
    while await _pause(deadline, interval_s):
        try:
            tree = await read()
        except Unreachable:
            went_away = True
            outcome.note("unreachable")
            continue
        uptime = uptime_s(tree)
        restarted = (uptime is not None and uptime_before is not None and uptime < uptime_before) or (
            uptime_before is None and went_away
        )
        if restarted:
            outcome.note("back")
            up = f", up {uptime:.0f} s" if uptime is not None else ""
            return Outcome(ActionState.SUCCEEDED, f"restarted{up}", outcome.history)
        outcome.note("waiting")
    return outcome


async def follow_upgrade(
    read: ReadStatus, *, url: str | None, target: str | None, deadline: datetime, interval_s: float
) -> Outcome:
    """``url`` identifies this upgrade in the status (on-premises); ``None`` for cloud upgrades,
    where only a state seen after the command counts."""
    outcome = Outcome(ActionState.TIMED_OUT, "the upgrade had not ended at the deadline", ["accepted"])
    seen_running = False
    while await _pause(deadline, interval_s):
        try:
            tree = await read()
        except Unreachable:
            outcome.note("unreachable")
            continue
        state = upgrade_state(tree)
        if state is None:
            outcome.note("no upgrade status")
            continue
        ours = seen_running or (url is not None and state.url == url)
        if state.status.lower() == "inprogress":
            seen_running = True
        if not ours and not seen_running:
            outcome.note(f"before start: {state.label}")
            continue
        outcome.note(state.label)
        if state.failed:
            message = f": {state.message}" if state.message else ""
            return Outcome(
                ActionState.FAILED, f"the device reported {state.status}{message}", outcome.history
            )
        if state.done:
            return _verify(tree, target, outcome.history)
    return outcome


def _verify(tree: dict[str, Any], target: str | None, history: list[str]) -> Outcome:
    running = firmware(tree)
    shown = running.version if running else "an unreadable version"
    if target is None:
        return Outcome(ActionState.SUCCEEDED, f"upgrade succeeded, now running {shown}", history)
    wanted = roomos_firmware(target) or roomos_firmware(f"RoomOS {target}")
    if running is not None and wanted is not None and _numbers(running.version) == _numbers(wanted.version):
        return Outcome(ActionState.SUCCEEDED, f"upgrade succeeded, now running {shown}", history)
    return Outcome(
        ActionState.FAILED, f"the device reported Succeeded but runs {shown}, not {target}", history
    )


def _numbers(version: str) -> tuple[int, ...]:
    digits = version.lower().removeprefix("roomos").strip().lstrip("cet")
    parts = [int(p) for p in digits.split(".") if p.isdigit()]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
