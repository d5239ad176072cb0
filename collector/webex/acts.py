"""What the Webex cloud can do to a device, and what only an operator in Control Hub can.

RoomOS devices with cloud xAPI and ``xapi:all`` for the caller (vendor-update-paths.md §3):

- restart: ``POST /v1/xapi/command/SystemUnit.Boot`` (Action Restart), followed until the device
  answers with a lower ``SystemUnit.Uptime``;
- update: ``POST /v1/xapi/command/Webex.Software.Upgrade`` — "upgrade to the software version the
  Cloud dictates" [D command; I that the cloud accepts it], followed through
  ``Provisioning.Software.UpgradeStatus``; the version is the device channel's, so when it is not
  the requested one the result says so (failed, with the version the device now runs);
- logs: ``POST /v1/xapi/command/Logging.SendLogs``, whose ``LogId`` is the operation id.

Webex Calling phones (MPP) have no REST reboot, upgrade or log call (§3.5): every action on them
is a manual step naming where in Control Hub to do it. So is any action on a device without
xAPI write permission, or when the cloud refuses the upgrade command.
"""

from __future__ import annotations

from typing import Any, Protocol

from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.errors import BadResponse, Conflict, DriverError, Forbidden, NotFound
from collector.http import ApiClient
from collector.webex import devices as dv
from collector.webex.options import WebexOptions
from collector.xapi import status as st
from collector.xapi.follow import expired, follow_restart, follow_upgrade

FOLLOW_NAMES = ("SystemUnit.Software.*", "SystemUnit.Uptime", "Provisioning.Software.UpgradeStatus.*")

_PHONE_STEPS = {
    ActionKind.RESTART: [
        "Webex Calling phones have no restart API (vendor-update-paths.md §3.5)",
        "Control Hub > Devices: open the phone, Actions > Reboot device",
    ],
    ActionKind.UPDATE: [
        "Phone firmware follows the Webex Calling platform and its upgrade channel; no API sets it",
        (
            "Control Hub > Calling > Device settings (or Devices > Software): choose the channel or"
            " upgrade window; the phone upgrades in its nightly resync"
        ),
    ],
    ActionKind.LOGS: [
        (
            "Control Hub > Devices: open the phone and use Actions > Send logs (or the phone's menu:"
            " Settings > Problem report)"
        ),
    ],
}


class _Org(Protocol):
    options: WebexOptions
    records: dict[str, dict[str, Any]]

    @property
    def api(self) -> ApiClient: ...

    async def status(self, webex_id: str, names: tuple[str, ...]) -> dict[str, Any]: ...


class WebexActs:
    """Mixed into :class:`~collector.webex.source.WebexSource`; acts on devices seen by collect."""

    def capabilities(self: _Org, device_id: str) -> frozenset[str]:
        record = self.records.get(device_id)
        if record is None or not dv.has_xapi(record, write=True):
            return frozenset()
        return frozenset({ActionKind.RESTART.value, ActionKind.UPDATE.value, ActionKind.LOGS.value})

    async def perform(self: _Org, request: ActionRequest) -> ActionResult:  # noqa: PLR0911 - one per outcome
        record = self.records.get(request.device_id)
        if record is None:
            return _result(request, ActionState.FAILED, "device not seen in this organisation's last listing")
        if not dv.has_xapi(record, write=True):
            steps = _PHONE_STEPS[request.action] if record.get("type") == "phone" else _no_xapi_steps(record)
            what = record.get("product") or "this device"
            return _result(
                request,
                ActionState.MANUAL,
                f"no API can {request.action.value} {what} from here",
                manual_steps=steps,
                console_url=self.options.console_url,
            )
        if expired(request.deadline):
            return _result(request, ActionState.TIMED_OUT, "the deadline had passed; nothing was sent")
        try:
            return await _run(self, request, record)
        except (Forbidden, NotFound) as err:
            if request.action is not ActionKind.UPDATE:
                return _result(request, ActionState.FAILED, str(err))
            return _result(
                request,
                ActionState.MANUAL,
                f"the cloud refused the upgrade command: {err}",
                manual_steps=_upgrade_steps(record),
                console_url=self.options.console_url,
            )
        except Conflict as err:
            return _result(request, ActionState.FAILED, f"another operation is in progress: {err}")
        except DriverError as err:
            return _result(request, ActionState.FAILED, str(err))


async def _run(org: _Org, request: ActionRequest, record: dict[str, Any]) -> ActionResult:
    webex_id = str(record["id"])

    async def read() -> dict[str, Any]:
        return await org.status(webex_id, FOLLOW_NAMES)

    deadline, interval = request.deadline, org.options.follow_interval_s
    if request.action is ActionKind.LOGS:
        reply = await _command(org.api, webex_id, "Logging.SendLogs", {})
        log_id = str(reply.get("LogId") or "") or None
        return _result(
            request, ActionState.SUCCEEDED, "logs sent to Cisco", operation_id=log_id, history=["accepted"]
        )
    if request.action is ActionKind.RESTART:
        before = st.uptime_s(await read())
        op = await _command(org.api, webex_id, "SystemUnit.Boot", {"Action": "Restart", "Force": "True"})
        outcome = await follow_restart(read, uptime_before=before, deadline=deadline, interval_s=interval)
    else:
        running = dv.software(record)
        op = await _command(org.api, webex_id, "Webex.Software.Upgrade", {})
        outcome = await follow_upgrade(
            read, url=None, target=request.target_version, deadline=deadline, interval_s=interval
        )
        if running is not None:
            outcome.history.insert(0, f"from {running.version}")
    return _result(
        request,
        outcome.state,
        outcome.detail,
        operation_id=str(op.get("_tracking") or "") or None,
        history=outcome.history,
    )


async def _command(api: ApiClient, webex_id: str, name: str, arguments: dict[str, str]) -> dict[str, Any]:
    response = await api.request(
        "POST", f"/xapi/command/{name}", json_body={"deviceId": webex_id, "arguments": arguments}
    )
    body = response.body
    if not isinstance(body, dict):
        raise BadResponse(f"webex POST /xapi/command/{name}: expected a JSON object")
    result = body.get("result")
    out = dict(result) if isinstance(result, dict) else {}
    out["_tracking"] = response.request_id
    return out


def _upgrade_steps(record: dict[str, Any]) -> list[str]:
    channel = record.get("upgradeChannel") or "its channel"
    return [
        (
            f"Control Hub > Devices > Software: the device follows {channel}; choose the channel"
            " that carries the wanted release"
        ),
        "or open the device in Control Hub and start the software upgrade there",
    ]


def _no_xapi_steps(record: dict[str, Any]) -> list[str]:
    return [
        (
            "This device does not offer cloud xAPI to fernwart (capability 'xapi' with permission"
            " 'xapi:all' is missing)"
        ),
        *_upgrade_steps(record),
    ]


def _result(request: ActionRequest, state: ActionState, detail: str, **extra: Any) -> ActionResult:
    return ActionResult(
        device_id=request.device_id, action=request.action, state=state, detail=detail[:1024], **extra
    )
