"""``GraphSource``: one Microsoft tenant — Teams Rooms on Windows and Teams Android devices.

One collect reads, under one token and one request budget:

1. Intune ``GET /v1.0/deviceManagement/managedDevices`` (paged): every enrolled device. Fails
   the whole source when it fails (nothing else identifies the devices).
2. ``GET /v1.0/deviceManagement/detectedApps`` for the Teams Rooms app under each configured
   display name, then ``detectedApps/{id}/managedDevices`` for each version: device → app
   version (vendor-update-paths.md §1.2). A Windows device with the app is a Teams Room.
3. Where the tenant still answers the retired beta ``/teamwork/devices`` (capability check: a
   404/410 turns it off, re-checked daily), each device's ``health``: peripherals, sign-in and
   per-component versions. A device's health failing is an error on that device only.

Devices only the beta API knows (not enrolled in Intune) are reported too (``teams-<id>``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import structlog
from pydantic import ValidationError

from collector.actions import ActionKind, ActionRequest, ActionResult
from collector.base import Sink
from collector.errors import BadResponse, DriverError, Forbidden, NotFound, Throttled
from collector.graph import actions
from collector.graph.api import GraphApi, open_api
from collector.graph.inventory import (
    INTUNE_CONSOLE,
    TAC_CONSOLE,
    TEAMS_ANDROID,
    TEAMS_ROOMS,
    DeviceRef,
    Teamwork,
    build_observation,
    family_of,
    lower,
    text,
    unwrap,
)
from collector.graph.options import GraphOptions
from collector.http import jwt_claims, odata_pages
from collector.model import utcnow

log = structlog.get_logger(__name__)

MANAGED_SELECT = (
    "id,deviceName,operatingSystem,osVersion,model,manufacturer,serialNumber,lastSyncDateTime,"
    "complianceState,managementAgent,azureADDeviceId,ethernetMacAddress,wiFiMacAddress,deviceActionResults"
)
TEAMWORK_RECHECK_S = 24 * 3600.0
RESTART_ROLE = "DeviceManagementManagedDevices.PrivilegedOperations.All"  # Intune rebootNow
TEAMWORK_WRITE_ROLE = "TeamworkDevice.ReadWrite.All"  # beta restart, updateSoftware
# One device to observe: (ref, Intune managedDevice, Teams Rooms app version, beta teamworkDevice)
_Work = tuple[DeviceRef, Mapping[str, Any] | None, str | None, Mapping[str, Any] | None]
_ANDROID_TYPES = {"ipphone", "collaborationbar", "teamsdisplay", "touchconsole", "lowcostphone", "teamspanel"}


def device_id(prefix: str, vendor_id: str) -> str:
    """A stable id for MQTT topics: the vendor's id with anything outside ``[A-Za-z0-9._:-]`` dropped."""
    cleaned = "".join(c for c in vendor_id if (c.isascii() and c.isalnum()) or c in "._:-")[:120]
    return f"{prefix}-{cleaned}"


class GraphSource:
    kind: ClassVar[str] = "graph"
    multi_device: ClassVar[bool] = True
    options_model: ClassVar[type[GraphOptions]] = GraphOptions
    example_options: ClassVar[dict[str, Any]] = {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "9a1b2c3d-0000-4000-8000-00000000fe01",
        "client_secret": "example-secret-from-a-credential",
        "page_size": 100,
        "rate_per_s": 5,
    }

    def __init__(
        self,
        source_id: str,
        options: GraphOptions,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source_id = source_id
        self.options = options
        self._sleep = sleep
        self._api: GraphApi | None = None
        self._refs: dict[str, DeviceRef] = {}
        self._teamwork_off_until = 0.0  # monotonic; the beta API answered 404/410 (or 403)
        self.skipped = 0  # Intune devices that are no Teams device, last collect
        self._app_inventory_failing = False
        self._roles: frozenset[str] | None = None  # the token's application permissions (roles claim)

    @property
    def api(self) -> GraphApi:
        if self._api is None:
            self._api = open_api(self.options, sleep=self._sleep)
        return self._api

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    # --- collect ------------------------------------------------------------------------

    async def collect(self, sink: Sink) -> None:
        api = self.api
        before = api.requests_made
        top = str(self.options.page_size)
        managed = [
            d
            async for page in odata_pages(
                api.v1, "/deviceManagement/managedDevices", {"$select": MANAGED_SELECT, "$top": top}
            )
            for d in page
            if isinstance(d, Mapping) and text(d.get("id"))
        ]
        roles = jwt_claims((await api.tokens.current()).value).get("roles")
        self._roles = frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else None
        apps, app_error = await self._app_versions(api)
        teamwork = await self._teamwork_devices(api)
        work = self._plan(managed, apps, teamwork)
        semaphore = asyncio.Semaphore(self.options.concurrency)
        throttled: list[str] = []  # set once a health read is throttled past its retries
        observed_at = utcnow()

        async def one(
            ref: DeviceRef, md: Mapping[str, Any] | None, app: str | None, tw: Mapping[str, Any] | None
        ) -> None:
            errors = []
            if ref.family == TEAMS_ROOMS and md is not None and app is None:
                errors.append(f"Teams Rooms app version unknown: {app_error or 'not inventoried by Intune'}")
            view: Teamwork | None = None
            error: str | None = None
            if tw is not None and ref.teamwork_id:
                async with semaphore:
                    if throttled:  # the tenant said stop: no more health reads this poll
                        view, error = Teamwork(tw, {}), f"Teams device health skipped: {throttled[0]}"
                    else:
                        view, error = await self._health(api, tw, ref.teamwork_id, throttled)
                if error:
                    errors.append(error)
            try:
                sink.observe(
                    build_observation(
                        ref, md, app_version=app, teamwork=view, observed_at=observed_at, errors=errors
                    )
                )
            except ValidationError as err:
                sink.device_error(
                    ref.device_id, f"graph: device {ref.name!r} could not be read: {err.errors()[0]['msg']}"
                )

        await asyncio.gather(*(one(*item) for item in work))
        self._refs = {ref.device_id: ref for ref, *_ in work}
        log.info(
            "graph_collected",
            source=self.source_id,
            devices=len(work),
            skipped=self.skipped,
            teamwork=teamwork is not None,
            requests=api.requests_made - before,
        )

    def _plan(
        self, managed: list[Mapping[str, Any]], apps: dict[str, str], teamwork: list[Mapping[str, Any]] | None
    ) -> list[_Work]:
        """Which devices to observe: Intune's Teams devices (joined to the beta API's view by
        serial number), then devices only the beta API knows."""
        by_serial = {lower(hw_serial(d)): d for d in teamwork or [] if hw_serial(d)}
        makers = frozenset(m.lower() for m in self.options.android_manufacturers)
        work: list[_Work] = []
        joined: set[str] = set()
        self.skipped = 0
        for md in managed:
            intune_id = str(md["id"])
            tw = by_serial.get(lower(md.get("serialNumber"))) if md.get("serialNumber") else None
            has_app = intune_id in apps or (tw is not None and lower(tw.get("deviceType")) == "teamsroom")
            family = family_of(md, has_app=has_app, android_makers=makers)
            if family is None:
                self.skipped += 1
                continue
            if tw is not None:
                joined.add(str(tw.get("id")))
            ref = DeviceRef(
                device_id=device_id("intune", intune_id),
                family=family,
                name=text(md.get("deviceName"), 255) or intune_id,
                intune_id=intune_id,
                teamwork_id=text(tw.get("id"), 128) if tw else None,
                console_url=INTUNE_CONSOLE.format(id=intune_id),
            )
            work.append((ref, md, apps.get(intune_id), tw))
        for tw in teamwork or []:
            only = _teamwork_only_ref(tw) if str(tw.get("id")) not in joined and text(tw.get("id")) else None
            if only is not None:
                work.append((only, None, None, tw))
        return work

    async def _app_versions(self, api: GraphApi) -> tuple[dict[str, str], str | None]:
        """Managed-device id → Teams Rooms app version, and what went wrong if that is unknown."""
        names = {n.lower() for n in self.options.teams_rooms_app_names}
        quoted = " or ".join(
            f"displayName eq '{n.replace(chr(39), chr(39) * 2)}'" for n in self.options.teams_rooms_app_names
        )
        try:
            try:
                listed = [
                    a
                    async for page in odata_pages(
                        api.v1, "/deviceManagement/detectedApps", {"$filter": quoted}
                    )
                    for a in page
                ]
            except BadResponse:  # $filter support on detectedApps is undocumented: filter here
                listed = [
                    a async for page in odata_pages(api.v1, "/deviceManagement/detectedApps") for a in page
                ]
            versions: dict[str, str] = {}
            for app in listed:
                if (
                    not isinstance(app, Mapping)
                    or lower(app.get("displayName")) not in names
                    or not text(app.get("version"))
                ):
                    continue
                path = f"/deviceManagement/detectedApps/{app['id']}/managedDevices"
                async for page in odata_pages(api.v1, path, {"$select": "id"}):
                    for md in page:
                        if isinstance(md, Mapping) and text(md.get("id")):
                            key = str(md["id"])
                            versions[key] = _newer(versions.get(key), str(app["version"]))
        except DriverError as err:
            if not self._app_inventory_failing:  # logged when it starts failing, not every poll
                log.warning("graph_app_inventory_failed", source=self.source_id, error=str(err))
            self._app_inventory_failing = True
            return {}, str(err)
        if self._app_inventory_failing:
            log.info("graph_app_inventory_recovered", source=self.source_id)
        self._app_inventory_failing = False
        return versions, None

    async def _teamwork_devices(self, api: GraphApi) -> list[Mapping[str, Any]] | None:
        """The beta teamworkDevice listing, or None where the tenant no longer answers it."""
        if self.options.teamwork == "off" or time.monotonic() < self._teamwork_off_until:
            return None
        top = str(min(50, self.options.page_size))
        try:
            return [
                d
                async for page in odata_pages(api.beta, "/teamwork/devices", {"$top": top})
                for d in page
                if isinstance(d, Mapping)
            ]
        except (NotFound, Forbidden) as err:
            self._teamwork_off_until = time.monotonic() + TEAMWORK_RECHECK_S
            log.info(
                "graph_teamwork_unavailable",
                source=self.source_id,
                error=str(err),
                recheck_s=TEAMWORK_RECHECK_S,
            )
            return None

    async def _health(
        self, api: GraphApi, tw: Mapping[str, Any], teamwork_id: str, throttled: list[str]
    ) -> tuple[Teamwork | None, str | None]:
        """One device's beta health. A read throttled past its retries stops the others of this
        poll (``throttled``): hammering a tenant that said stop only lengthens its penalty."""
        try:
            body = await api.beta.get_json(f"/teamwork/devices/{teamwork_id}/health")
        except Throttled as err:
            throttled.append(str(err))
            return Teamwork(tw, {}), f"Teams device health not read: {err}"
        except NotFound:
            return Teamwork(tw, {}), None  # retired for this device: the listing still says enough
        except DriverError as err:
            return Teamwork(tw, {}), f"Teams device health not read: {err}"
        return Teamwork(tw, unwrap(body)), None

    # --- acts ---------------------------------------------------------------------------

    def capabilities(self, device_id: str) -> frozenset[str]:
        ref = self._refs.get(device_id)
        if ref is None:
            return frozenset()
        teamwork = ref.teamwork_id is not None and time.monotonic() >= self._teamwork_off_until
        found = set()
        if (ref.intune_id and self._granted(RESTART_ROLE)) or (
            not ref.intune_id and teamwork and self._granted(TEAMWORK_WRITE_ROLE)
        ):
            found.add("restart")
        if teamwork and self._granted(TEAMWORK_WRITE_ROLE):
            found.add("update")
        return frozenset(found)

    def _granted(self, role: str) -> bool:
        """Whether the token carries ``role``; True when its roles are unknown (not a JWT)."""
        return self._roles is None or role in self._roles

    def _why_manual(self, request: ActionRequest) -> str | None:
        """The permission whose absence makes ``request`` a manual step, if that is the reason."""
        ref = self._refs.get(request.device_id)
        if ref is None:
            return None
        if request.action is ActionKind.RESTART and ref.intune_id and not self._granted(RESTART_ROLE):
            return f"the app registration lacks the application permission {RESTART_ROLE}"
        if ref.teamwork_id and not self._granted(TEAMWORK_WRITE_ROLE):
            return f"the app registration lacks the application permission {TEAMWORK_WRITE_ROLE}"
        return None

    async def act(self, request: ActionRequest) -> ActionResult:
        context = actions.Context(
            self.api,
            self.options,
            self._sleep,
            self._refs.get(request.device_id),
            self.capabilities(request.device_id),
            self._why_manual(request),
        )
        return await actions.act(context, request)

    def ref(self, device_id: str) -> DeviceRef | None:
        return self._refs.get(device_id)


def hw_serial(tw: Mapping[str, Any]) -> str | None:
    hardware = tw.get("hardwareDetail")
    return text(hardware.get("serialNumber")) if isinstance(hardware, Mapping) else None


def _teamwork_only_ref(tw: Mapping[str, Any]) -> DeviceRef | None:
    kind = lower(tw.get("deviceType"))
    if kind in _ANDROID_TYPES:
        family = TEAMS_ANDROID
    elif kind in {"teamsroom", "surfacehub"}:
        family = TEAMS_ROOMS
    else:
        return None  # SIP and unknown devices run no Teams app
    teamwork_id = str(tw["id"])
    user = tw.get("currentUser")
    name = text(user.get("displayName"), 255) if isinstance(user, Mapping) else None
    return DeviceRef(
        device_id("teams", teamwork_id), family, name or teamwork_id, None, teamwork_id, TAC_CONSOLE
    )


def _newer(current: str | None, candidate: str) -> str:
    """Of two app versions of one device (two display names), the higher, numerically."""
    if current is None:
        return candidate

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(p) for p in version.rsplit("/", maxsplit=1)[-1].split(".") if p.isdigit())

    return max(current, candidate, key=key)
