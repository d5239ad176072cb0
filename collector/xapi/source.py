"""``XapiSource``: one on-premises RoomOS/CE codec, read and acted on through its own xAPI.

One ``collect`` is one ``GET /status.xml`` (the codec serves one request per second; a request per
subtree would make a poll take seconds): software version, upgrade status, peripherals and their
firmware, diagnostics. Actions go through ``/putxml`` and are followed by reading the status
again (:mod:`collector.xapi.follow`), all through the source's one pacer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError

from collector.actions import ActionKind, ActionRequest, ActionResult, ActionState
from collector.base import Sink
from collector.errors import BadResponse, DriverError, Unreachable
from collector.model import (
    Health,
    HealthReason,
    HealthStatus,
    Identity,
    Observation,
    Severity,
    SoftwareComponent,
    utcnow,
)
from collector.xapi import status as st
from collector.xapi.client import XapiClient
from collector.xapi.follow import Outcome, expired, follow_restart, follow_upgrade
from collector.xapi.options import XapiOptions


class XapiSource:
    kind: ClassVar[str] = "xapi"
    multi_device: ClassVar[bool] = False
    options_model: ClassVar[type[XapiOptions]] = XapiOptions
    example_options: ClassVar[dict[str, Any]] = {
        "host": "10.20.30.50",
        "user": "fernwart",
        "password": "example-codec-password",
        "package_base_url": "https://files.example.net/roomos",
    }

    def __init__(self, source_id: str, options: XapiOptions, client: XapiClient | None = None) -> None:
        self.source_id = source_id
        self.options = options
        self.device_id = options.device_id or source_id
        self.client = client or XapiClient(options)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def collect(self, sink: Sink) -> None:
        """One read; raises :class:`Unreachable`/:class:`AuthFailed`/:class:`BadResponse` when the
        codec cannot be read at all (one device: there is nothing else to keep)."""
        tree = await self.client.status()
        try:
            observation = self.observation(tree)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"])) or "status"
            raise BadResponse(
                f"{self.options.host} /status.xml: unusable value at {where}: {first['msg']}"
            ) from None
        sink.observe(observation)

    def observation(self, tree: dict[str, Any]) -> Observation:
        found = st.firmware(tree)
        software: list[SoftwareComponent] = []
        errors: list[str] = []
        if found is not None:
            software.append(SoftwareComponent(name="firmware", version=found.version, scheme=found.scheme))
        else:
            errors.append("SystemUnit.Software: no RoomOS/CE version found")
        peripherals = st.peripherals(tree)
        software += st.peripheral_software(peripherals)[: 64 - len(software)]
        reasons = st.diagnostics(tree)
        upgrade = st.upgrade_state(tree)
        if upgrade is not None and upgrade.failed:
            reasons.append(
                HealthReason(
                    code="upgrade_failed",
                    message=f"last upgrade {upgrade.status}: {upgrade.message or 'no message'}"[:1024],
                    severity=Severity.WARNING,
                )
            )
        worst = {r.severity for r in reasons}
        status = (
            HealthStatus.DOWN
            if Severity.CRITICAL in worst
            else HealthStatus.DEGRADED
            if Severity.WARNING in worst
            else HealthStatus.OK
        )
        raw = {
            key: value[:8192]
            for key, value in {
                "software_display_name": st.text(tree, "SystemUnit", "Software", "DisplayName"),
                "software_version": st.text(tree, "SystemUnit", "Software", "Version"),
                "upgrade_status": upgrade.label if upgrade else None,
                "upgrade_message": upgrade.message if upgrade else None,
            }.items()
            if value
        }
        return Observation(
            device_id=self.device_id,
            driver=self.kind,
            observed_at=utcnow(),
            identity=Identity(
                vendor="cisco",
                family=found.family if found else "unknown",
                model=st.text(tree, "SystemUnit", "ProductId") or "unknown",
                serial=st.text(tree, "SystemUnit", "Hardware", "Module", "SerialNumber"),
                hostname=self.options.host,
            ),
            software=software,
            health=Health(status=status, reasons=reasons),
            uptime_s=st.uptime_s(tree),
            peripherals=peripherals,
            raw=raw,
            errors=errors,
            management="xapi",
            connection="connected",
        )

    # --- Acts --------------------------------------------------------------------------------

    def capabilities(self, device_id: str) -> frozenset[str]:
        if device_id != self.device_id:
            return frozenset()
        actions = {ActionKind.RESTART.value, ActionKind.LOGS.value}
        if self.options.package_base_url:
            actions.add(ActionKind.UPDATE.value)
        return frozenset(actions)

    async def act(self, request: ActionRequest) -> ActionResult:
        if request.device_id != self.device_id:
            return _result(
                request, ActionState.FAILED, f"{request.device_id} is not this codec ({self.device_id})"
            )
        if expired(request.deadline):
            return _result(request, ActionState.TIMED_OUT, "the deadline had passed; nothing was sent")
        try:
            if request.action is ActionKind.RESTART:
                return await self._restart(request)
            if request.action is ActionKind.UPDATE:
                return await self._update(request)
            reply = await self.client.command("Logging.SendLogs", {})
        except DriverError as err:
            return _result(request, ActionState.FAILED, str(err))
        log_id = reply.get("LogId")
        return _result(
            request, ActionState.SUCCEEDED, "logs sent to Cisco", operation_id=log_id, history=["accepted"]
        )

    async def _restart(self, request: ActionRequest) -> ActionResult:
        try:
            before = st.uptime_s(await self.client.status())
        except (Unreachable, BadResponse):
            before = None
        await self.client.command("SystemUnit.Boot", {"Action": "Restart", "Force": "True"})
        outcome = await follow_restart(
            self.client.status,
            uptime_before=before,
            deadline=request.deadline,
            interval_s=self.options.follow_interval_s,
        )
        return _from_outcome(request, outcome)

    async def _update(self, request: ActionRequest) -> ActionResult:
        url = request.package_url or await self._package_url(request.target_version)
        if url is None:
            return _result(
                request,
                ActionState.MANUAL,
                "no package host is configured for this codec",
                manual_steps=[
                    "Download the RoomOS .k4.cop.sha512 package for this model from software.cisco.com",
                    "Put it on an HTTP(S) server the codec can reach (the customer's package host)",
                    (
                        "Set package_base_url in this source's options (or pass the package URL), then"
                        " retry; or upload it in the codec's web interface under Software"
                    ),
                ],
                console_url=f"{self.options.base_url}/web/software",
            )
        forced = "True" if self.options.upgrade_forced else "False"
        await self.client.command("SystemUnit.SoftwareUpgrade", {"URL": url, "Forced": forced})
        outcome = await follow_upgrade(
            self.client.status,
            url=url,
            target=request.target_version,
            deadline=request.deadline,
            interval_s=self.options.follow_interval_s,
        )
        return _from_outcome(request, outcome)

    async def _package_url(self, target: str | None) -> str | None:
        if not self.options.package_base_url or not target:
            return None
        name = st.text(await self.client.status(), "SystemUnit", "Software", "Name") or "s53200"
        digits = [p for p in target.lower().removeprefix("roomos").strip().lstrip("ce").split(".") if p]
        file = self.options.package_file.format(name=name, version_="_".join(digits))
        return f"{self.options.package_base_url.rstrip('/')}/{file}"


def _from_outcome(request: ActionRequest, outcome: Outcome) -> ActionResult:
    return _result(request, outcome.state, outcome.detail, history=outcome.history)


def _result(request: ActionRequest, state: ActionState, detail: str, **extra: Any) -> ActionResult:
    return ActionResult(
        device_id=request.device_id, action=request.action, state=state, detail=detail[:1024], **extra
    )
