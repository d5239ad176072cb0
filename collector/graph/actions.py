"""Restart and update through Graph, followed to their end state; a manual step where no API can.

- Restart: Intune ``POST /v1.0/deviceManagement/managedDevices/{id}/rebootNow`` (204 = accepted
  only), followed through the device's ``deviceActionResults`` entry ``rebootNow``
  (``pending`` → ``active`` → ``done`` | ``failed`` | ``canceled`` | ``notSupported``). The entry of
  an earlier reboot is told apart by its ``startDateTime``. A device only the beta API knows is
  restarted with ``POST /beta/teamwork/devices/{id}/restart``.
- Update: beta ``POST /teamwork/devices/{id}/updateSoftware`` (202 + relative ``Location`` naming
  the operation), followed through ``GET …/operations/{opId}`` (``queued`` → ``inProgress`` →
  ``successful``/``succeeded`` | ``failed`` | ``cancelled``, any case). A 409 means one is already
  queued: we follow that one. Where the tenant no longer answers (404/410) or never had the
  device there, the result is ``manual`` with the steps (vendor-update-paths.md §1.4, §2, §5).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.errors import Conflict, DriverError, NotFound, Throttled, Unreachable
from collector.graph.api import GraphApi
from collector.graph.inventory import TAC_CONSOLE, TEAMS_ROOMS, DeviceRef, lower, text, unwrap
from collector.graph.options import GraphOptions
from collector.http import ApiClient
from collector.model import utcnow

log = structlog.get_logger(__name__)

_REBOOT_END = {"done": ActionState.SUCCEEDED, "failed": ActionState.FAILED, "canceled": ActionState.FAILED}
_REBOOT_END["notsupported"] = ActionState.FAILED
_OPERATION_END = {
    "successful": ActionState.SUCCEEDED,
    "succeeded": ActionState.SUCCEEDED,
    "failed": ActionState.FAILED,
    "cancelled": ActionState.FAILED,
    "canceled": ActionState.FAILED,
}
PRO_PORTAL = "https://portal.rooms.microsoft.com"


def _result(request: ActionRequest, state: ActionState, detail: str, **kw: Any) -> ActionResult:
    return ActionResult(
        device_id=request.device_id, action=request.action, state=state, detail=detail[:1024], **kw
    )


@dataclass(frozen=True)
class Context:
    """What an action needs of its source: the API, the options, the device, its capabilities."""

    api: GraphApi
    options: GraphOptions
    sleep: Callable[[float], Awaitable[None]]
    ref: DeviceRef | None
    capabilities: frozenset[str]
    why_manual: str | None = None  # a missing permission, when that is what makes it manual


async def act(source: Context, request: ActionRequest) -> ActionResult:
    ref = source.ref
    if ref is None:
        return _result(request, ActionState.FAILED, "device not seen in this source's last collect")
    can_restart = request.action is ActionKind.RESTART and "restart" in source.capabilities
    try:
        if can_restart and ref.intune_id:
            return await _reboot_intune(source, request, ref.intune_id)
        if can_restart and ref.teamwork_id:
            return await _teamwork_operation(source, request, ref.teamwork_id, "restart", None)
        if request.action is ActionKind.UPDATE and ref.teamwork_id and "update" in source.capabilities:
            return await _update(source, request, ref, ref.teamwork_id)
    except DriverError as err:
        return _result(request, ActionState.FAILED, str(err))
    return manual(request, ref, why=source.why_manual)


async def _update(source: Context, request: ActionRequest, ref: DeviceRef, teamwork_id: str) -> ActionResult:
    if not request.target_version:
        return _result(request, ActionState.FAILED, "an update needs target_version")
    body = {"softwareType": "teamsClient", "softwareVersion": request.target_version}
    try:
        return await _teamwork_operation(source, request, teamwork_id, "updateSoftware", body)
    except NotFound as err:  # 404/410: the beta API is gone for this tenant
        log.info("graph_update_api_gone", device=ref.device_id, error=str(err))
        return manual(request, ref, why=str(err))


_MTR_UPDATE = (
    (
        "No API can install Teams Rooms app {target} on {name}: the app updates from the Microsoft Store"
        " or through Teams Rooms Pro update rings."
    ),
    (
        "Teams Rooms Pro Management portal ({pro}) > Rooms > {name} > Updates: put the room in a ring"
        " that offers {target}, or approve the pending update for its ring."
    ),
    (
        "Without Pro: on the device, sign in as the local admin, open Microsoft Store > Library and"
        " update 'Microsoft Teams Rooms' (or follow 'Manually update a Teams Rooms device', Microsoft Learn)."
    ),
    "fernwart confirms the new version with its next inventory.",
)
_ANDROID_UPDATE = (
    (
        "No API can update the Teams app or firmware of {name} (Microsoft retired the teamworkDevice"
        " API; Intune does not update Teams Android devices)."
    ),
    (
        "Teams admin center ({tac}) > Teams devices > the device's category > {name} > Update: pick"
        " Teams app {target} (and the firmware it needs), then Update now or schedule it."
    ),
    "A firmware rollback on Android Teams devices needs a factory reset.",
)
_MTR_LOGS = (
    (
        "Teams Rooms Pro Management portal ({pro}) > Rooms > {name} > Collect logs,"
        " or Intune > Devices > {name} > Collect diagnostics."
    ),
)
_ANDROID_LOGS = ("Teams admin center ({tac}) > Teams devices > {name} > Download device logs.",)
_RESTART = (
    "Restart {name} at the device, or in Intune (intune.microsoft.com) > Devices > {name} > Restart.",
)
# (action, is Teams Rooms on Windows) → (console, steps); {name}, {target}, {pro}, {tac} filled in.
_MANUAL: dict[tuple[ActionKind, bool], tuple[str, tuple[str, ...]]] = {
    (ActionKind.UPDATE, True): (PRO_PORTAL, _MTR_UPDATE),
    (ActionKind.UPDATE, False): (TAC_CONSOLE, _ANDROID_UPDATE),
    (ActionKind.LOGS, True): (PRO_PORTAL, _MTR_LOGS),
    (ActionKind.LOGS, False): (TAC_CONSOLE, _ANDROID_LOGS),
    (ActionKind.RESTART, True): (TAC_CONSOLE, _RESTART),
    (ActionKind.RESTART, False): (TAC_CONSOLE, _RESTART),
}


def manual(request: ActionRequest, ref: DeviceRef, why: str | None = None) -> ActionResult:
    """What the operator must do, and where, when no API can (vendor-update-paths.md §5)."""
    console, templates = _MANUAL[(request.action, ref.family == TEAMS_ROOMS)]
    values = {
        "name": ref.name,
        "target": request.target_version or "the target version",
        "pro": PRO_PORTAL,
        "tac": TAC_CONSOLE,
    }
    steps = [t.format(**values) for t in templates]
    detail = f"manual step required: {steps[0]}" + (f" ({why})" if why else "")
    return _result(request, ActionState.MANUAL, detail, manual_steps=steps, console_url=console)


def _remaining(deadline: datetime) -> float:
    return (deadline - utcnow()).total_seconds()


def _last_reboot(body: Any) -> tuple[str | None, str | None]:
    """(startDateTime, actionState) of the newest ``rebootNow`` entry of a managedDevice."""
    results = body.get("deviceActionResults") if isinstance(body, Mapping) else None
    newest: tuple[str | None, str | None] = (None, None)
    for entry in results if isinstance(results, list) else []:
        if isinstance(entry, Mapping) and lower(entry.get("actionName")) == "rebootnow":
            start = text(entry.get("startDateTime"), 64) or ""
            if newest[0] is None or start > newest[0]:
                newest = (start, text(entry.get("actionState"), 64))
    return newest


async def _reboot_intune(source: Context, request: ActionRequest, intune_id: str) -> ActionResult:
    v1 = source.api.v1
    path = f"/deviceManagement/managedDevices/{intune_id}"
    params = {"$select": "id,deviceActionResults"}
    baseline, _ = _last_reboot(await v1.get_json(path, params))
    response = await v1.request("POST", f"{path}/rebootNow")
    operation_id = f"rebootNow request-id {response.request_id}" if response.request_id else None
    history: list[str] = ["requested"]
    while True:
        start, state = await _poll(v1, path, params, _last_reboot)
        if start is not None and start != baseline and state:
            if history[-1] != state:
                history.append(state)
            end = _REBOOT_END.get(state.lower())
            if end is not None:
                return _result(
                    request, end, f"Intune rebootNow: {state}", operation_id=operation_id, history=history
                )
        if _remaining(request.deadline) <= source.options.action_poll_s:
            return _result(
                request,
                ActionState.TIMED_OUT,
                f"Intune rebootNow still {history[-1]} at the deadline",
                operation_id=operation_id,
                history=history,
            )
        await source.sleep(source.options.action_poll_s)


async def _poll(client: ApiClient, path: str, params: Mapping[str, str] | None, read: Any) -> Any:
    """One read of an action's state; a throttled or unanswered read counts as "no news yet"."""
    try:
        return read(await client.get_json(path, params))
    except (Throttled, Unreachable) as err:
        log.info("graph_action_poll_failed", path=path, error=str(err))
        return read(None)


def _operation_state(body: Any) -> tuple[str | None, Mapping[str, Any]]:
    op = unwrap(body)
    return text(op.get("status"), 64), op


async def _teamwork_operation(
    source: Context, request: ActionRequest, teamwork_id: str, verb: str, body: Mapping[str, str] | None
) -> ActionResult:
    beta = source.api.beta
    base = f"/teamwork/devices/{teamwork_id}"
    history: list[str] = ["requested"]
    try:
        response = await beta.request("POST", f"{base}/{verb}", json_body=body)
        location = response.headers.get("Location", "")
        operation_id = location.rstrip("/").rsplit("/", 1)[-1] or None
    except Conflict as err:
        history.append("conflict: one already queued")
        operation_id = await _queued_operation(
            beta, base, "softwareUpdate" if verb == "updateSoftware" else "deviceRestart"
        )
        if operation_id is None:
            return _result(request, ActionState.FAILED, str(err), history=history)
    if operation_id is None:
        return _result(
            request,
            ActionState.FAILED,
            f"{verb}: accepted, but no operation in the Location header",
            history=history,
        )
    path = f"{base}/operations/{operation_id}"
    while True:
        state, op = await _poll(beta, path, None, _operation_state)
        if state:
            if history[-1] != state:
                history.append(state)
            end = _OPERATION_END.get(state.lower())
            if end is not None:
                error = op.get("error")
                why = f": {error.get('code')}: {error.get('message')}" if isinstance(error, Mapping) else ""
                return _result(
                    request,
                    end,
                    f"Teams device operation {state}{why}",
                    operation_id=operation_id,
                    history=history,
                )
        if _remaining(request.deadline) <= source.options.action_poll_s:
            return _result(
                request,
                ActionState.TIMED_OUT,
                f"operation still {history[-1]} at the deadline",
                operation_id=operation_id,
                history=history,
            )
        await source.sleep(source.options.action_poll_s)


async def _queued_operation(beta: ApiClient, base: str, kind: str) -> str | None:
    """The id of the newest unfinished operation of ``kind`` (after a 409)."""
    try:
        body = await beta.get_json(f"{base}/operations")
    except DriverError:
        return None
    ops = body.get("value") if isinstance(body, Mapping) else None
    pending = [
        op
        for op in (ops if isinstance(ops, list) else [])
        if isinstance(op, Mapping)
        and lower(op.get("operationType")) == kind.lower()
        and lower(op.get("status")) not in _OPERATION_END
        and text(op.get("id"))
    ]
    if not pending:
        return None
    newest = max(pending, key=lambda op: str(op.get("createdDateTime") or ""))
    return str(newest["id"])
