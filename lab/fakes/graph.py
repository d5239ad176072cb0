"""A fake Microsoft login + Graph server on loopback, for the tests, the demo and the bench.

Follows the documented shapes (vendor-apis.md §1, vendor-update-paths.md §1, fixtures/graph and
fixtures/intune): the v2.0 token endpoint (client credentials; ``invalid_client`` on a wrong
secret), Intune ``managedDevices`` (paged with absolute ``@odata.nextLink`` + ``$skiptoken``,
``$select``, ``rebootNow`` → 204 and ``deviceActionResults`` that advance on each read),
``detectedApps`` (+ ``$filter`` on displayName, ``/managedDevices``), and the beta
``teamwork/devices`` tree (paged ``$top`` ≤ 50, ``health`` and operations wrapped in ``value`` as
documented, ``updateSoftware``/``restart`` → 202 with a relative ``Location``, 409 while one is
queued; an operation advances queued → inProgress → successful|failed on each read, and a
successful software update changes the device's version). Errors use the Graph envelope with a
``request-id``.

Faults (:class:`Faults`, switchable while running): 429 with or without ``Retry-After``, 503,
401 for every token issued so far (:meth:`FakeGraph.expire_tokens`), 404/410 for the whole beta
tree, malformed JSON or a hang on chosen paths, relative next links, no ``$filter`` support.
Every request is counted per route (:attr:`FakeGraph.requests`). ``python -m lab.fakes.graph_main``
serves it from the command line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lab.fakes.graph_data import FakeDevice, FakeTenant, advance_operation, detected_apps, now_iso
from lab.fakes.graph_teamwork import health_body, teamwork_body

READ_DEVICES = {"DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"}
PRIVILEGED = {"DeviceManagementManagedDevices.PrivilegedOperations.All"}
READ_TEAMWORK = {"TeamworkDevice.Read.All", "TeamworkDevice.ReadWrite.All"}
WRITE_TEAMWORK = {"TeamworkDevice.ReadWrite.All"}
_REBOOT_STEPS = {"pending": "active"}


@dataclass
class Faults:
    throttle: int = 0  # the next N Graph requests answer 429
    retry_after: str | None = "1"  # the 429's Retry-After (None: header absent)
    unavailable: int = 0  # the next N Graph requests answer 503
    throttle_routes: set[str] = field(default_factory=set)  # routes (see requests) that always answer 429
    beta_status: int | None = None  # 404 or 410: the retired beta teamwork tree
    malformed: set[str] = field(default_factory=set)  # request paths answering broken JSON
    hang: set[str] = field(default_factory=set)  # request paths that answer only after release()
    relative_next_links: bool = False  # the documented relative @odata.nextLink form
    filter_supported: bool = True  # False: $filter on detectedApps answers 400
    token_lifetime_s: int = 3599


class FakeGraph:
    def __init__(self, tenants: list[FakeTenant]) -> None:
        self.tenants = {t.tenant_id: t for t in tenants}
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self._tokens: dict[str, tuple[str, bool]] = {}  # token → (tenant id, still valid)
        self._released = asyncio.Event()
        self.url = ""
        self.app = web.Application()
        r = self.app.router
        r.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        r.add_get("/v1.0/deviceManagement/managedDevices", self._managed_devices)
        r.add_get("/v1.0/deviceManagement/managedDevices/{id}", self._managed_device)
        r.add_post("/v1.0/deviceManagement/managedDevices/{id}/rebootNow", self._reboot_now)
        r.add_get("/v1.0/deviceManagement/detectedApps", self._detected_apps)
        r.add_get("/v1.0/deviceManagement/detectedApps/{id}/managedDevices", self._detected_app_devices)
        r.add_get("/beta/teamwork/devices", self._teamwork_devices)
        r.add_get("/beta/teamwork/devices/{id}/health", self._teamwork_health)
        r.add_get("/beta/teamwork/devices/{id}/operations", self._operations)
        r.add_get("/beta/teamwork/devices/{id}/operations/{op}", self._operation)
        r.add_post("/beta/teamwork/devices/{id}/{verb:updateSoftware|restart}", self._teamwork_action)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 401 InvalidAuthenticationToken."""
        self._tokens = {token: (tenant, False) for token, (tenant, _) in self._tokens.items()}

    def release(self) -> None:
        """Let hung requests answer."""
        self._released.set()

    @asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[FakeGraph]:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        try:
            yield self
        finally:
            self.release()
            await runner.cleanup()

    # --- plumbing ------------------------------------------------------------------------

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        rid = str(uuid.uuid4())
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {"date": "2026-12-05T08:00:00", "request-id": rid, "client-request-id": rid},
            }
        }
        return web.json_response(body, status=status, headers={"request-id": rid, **(headers or {})})

    def _ok(self, body: Any, status: int = 200) -> web.Response:
        return web.json_response(body, status=status, headers={"request-id": str(uuid.uuid4())})

    async def _gate(
        self, request: web.Request, route: str, roles: set[str]
    ) -> tuple[FakeTenant | None, web.Response | None]:
        """Count, apply faults, check the token and its roles."""
        self.requests[route] += 1
        if request.path in self.faults.hang:
            await self._released.wait()
        if self.faults.throttle > 0 or route in self.faults.throttle_routes:
            self.faults.throttle = max(0, self.faults.throttle - 1)
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after is not None else {}
            return None, self._error(429, "TooManyRequests", "Please retry again later.", headers)
        if self.faults.unavailable > 0:
            self.faults.unavailable -= 1
            return None, self._error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        if request.path in self.faults.malformed:
            return None, web.Response(status=200, text='{"value": [{"id": ', content_type="application/json")
        auth = request.headers.get("Authorization", "")
        tenant_id, valid = self._tokens.get(auth.removeprefix("Bearer "), ("", False))
        if not valid:
            return None, self._error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        tenant = self.tenants[tenant_id]
        if not roles & set(tenant.roles):
            return None, self._error(
                403, "Forbidden", "Application is not authorized to perform this operation."
            )
        return tenant, None

    def _page(
        self, request: web.Request, items: list[Any], *, default_top: int, max_top: int
    ) -> dict[str, Any]:
        top = min(int(request.query.get("$top", default_top)), max_top)
        token = request.query.get("$skiptoken")
        start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        body: dict[str, Any] = {
            "@odata.context": f"{self.url}{request.path}/$metadata",
            "value": items[start : start + top],
        }
        if start + top < len(items):
            skip = base64.urlsafe_b64encode(str(start + top).encode()).decode()
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"} | {
                "$skiptoken": skip,
                "$top": str(top),
            }
            path = request.path if not self.faults.relative_next_links else request.path.split("/", 2)[2]
            link = request.url.with_query(query)
            body["@odata.nextLink"] = (
                ("/" + path + "?" + link.raw_query_string)
                if self.faults.relative_next_links
                else str(link.with_host(request.url.host or "127.0.0.1"))
            )
        return body

    # --- login -----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.requests["token"] += 1
        form = await request.post()
        tenant = self.tenants.get(request.match_info["tenant"])
        trace = {"trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}
        if tenant is None:
            return web.json_response(
                {
                    "error": "invalid_request",
                    "error_description": f"AADSTS90002: Tenant '{request.match_info['tenant']}' not found.",
                    **trace,
                },
                status=400,
            )
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != tenant.client_id
            or form.get("client_secret") != tenant.client_secret
        ):
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": (
                        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the"
                        " request is the client secret value, not the client secret ID."
                    ),
                    "error_codes": [7000215],
                    **trace,
                },
                status=401,
            )
        claims = {
            "aud": "https://graph.microsoft.com",
            "tid": tenant.tenant_id,
            "appid": tenant.client_id,
            "roles": list(tenant.roles),
            "exp": int(time.time()) + self.faults.token_lifetime_s,
            "jti": str(uuid.uuid4()),
        }
        token = (
            ".".join(
                base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                for part in ({"typ": "JWT", "alg": "none"}, claims)
            )
            + ".fake-signature"
        )
        self._tokens[token] = (tenant.tenant_id, True)
        lifetime = self.faults.token_lifetime_s
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        )

    # --- Intune ------------------------------------------------------------------------------

    async def _managed_devices(self, request: web.Request) -> web.Response:
        tenant, error = await self._gate(request, "managedDevices", READ_DEVICES)
        if tenant is None:
            return error  # type: ignore[return-value]
        select = [s for s in request.query.get("$select", "").split(",") if s]
        items = [_select(d.managed(), select) for d in tenant.devices if d.intune_id]
        return self._ok(self._page(request, items, default_top=100, max_top=1000))

    async def _managed_device(self, request: web.Request) -> web.Response:
        tenant, error = await self._gate(request, "managedDevice", READ_DEVICES)
        if tenant is None:
            return error  # type: ignore[return-value]
        device = tenant.by_intune(request.match_info["id"])
        if device is None:
            return self._error(404, "ResourceNotFound", "The managed device was not found.")
        select = [s for s in request.query.get("$select", "").split(",") if s]
        answer = self._ok(_select(device.managed(), select))  # rendered now, before the device moves on
        for entry in device.action_results:  # the device works through its actions as it is read
            state = entry["actionState"]
            entry["actionState"] = _REBOOT_STEPS.get(
                state, device.reboot_outcome if state == "active" else state
            )
        return answer

    async def _reboot_now(self, request: web.Request) -> web.Response:
        tenant, error = await self._gate(request, "rebootNow", PRIVILEGED)
        if tenant is None:
            return error  # type: ignore[return-value]
        device = tenant.by_intune(request.match_info["id"])
        if device is None:
            return self._error(404, "ResourceNotFound", "The managed device was not found.")
        now = now_iso()
        device.action_results = [e for e in device.action_results if e["actionName"] != "rebootNow"]
        device.action_results.append(
            {
                "actionName": "rebootNow",
                "actionState": "pending",
                "startDateTime": now,
                "lastUpdatedDateTime": now,
            }
        )
        return web.Response(status=204, headers={"request-id": str(uuid.uuid4())})

    async def _detected_apps(self, request: web.Request) -> web.Response:
        tenant, error = await self._gate(request, "detectedApps", READ_DEVICES)
        if tenant is None:
            return error  # type: ignore[return-value]
        apps = detected_apps(tenant)
        wanted = request.query.get("$filter")
        if wanted:
            if not self.faults.filter_supported:
                return self._error(400, "BadRequest", "Filtering on this property is not supported.")
            names = {part.split("'")[1].replace("''", "'") for part in wanted.split(" or ") if "'" in part}
            apps = [a for a in apps if a["displayName"] in names]
        return self._ok(
            self._page(
                request,
                [{k: v for k, v in a.items() if k != "_devices"} for a in apps],
                default_top=100,
                max_top=1000,
            )
        )

    async def _detected_app_devices(self, request: web.Request) -> web.Response:
        tenant, error = await self._gate(request, "detectedAppDevices", READ_DEVICES)
        if tenant is None:
            return error  # type: ignore[return-value]
        app = next((a for a in detected_apps(tenant) if a["id"] == request.match_info["id"]), None)
        if app is None:
            return self._error(404, "ResourceNotFound", "The detected app was not found.")
        items = [{"id": d.intune_id, "deviceName": d.name, "serialNumber": d.serial} for d in app["_devices"]]
        return self._ok(self._page(request, items, default_top=100, max_top=1000))

    # --- beta teamwork ---------------------------------------------------------------------

    async def _beta_gate(
        self, request: web.Request, route: str, roles: set[str]
    ) -> tuple[FakeTenant | None, web.Response | None]:
        tenant, error = await self._gate(request, route, roles)
        if error is None and self.faults.beta_status in {404, 410}:
            code = "ResourceNotFound" if self.faults.beta_status == 404 else "Gone"
            return None, self._error(
                self.faults.beta_status, code, "The teamworkDevice API has been retired."
            )
        return tenant, error

    def _teamwork_device(self, tenant: FakeTenant, request: web.Request) -> FakeDevice | None:
        return tenant.by_teamwork(request.match_info["id"])

    async def _teamwork_devices(self, request: web.Request) -> web.Response:
        tenant, error = await self._beta_gate(request, "teamworkDevices", READ_TEAMWORK)
        if tenant is None:
            return error  # type: ignore[return-value]
        items = [teamwork_body(d) for d in tenant.devices if d.teamwork_id]
        return self._ok(self._page(request, items, default_top=20, max_top=50))

    async def _teamwork_health(self, request: web.Request) -> web.Response:
        tenant, error = await self._beta_gate(request, "teamworkHealth", READ_TEAMWORK)
        if tenant is None:
            return error  # type: ignore[return-value]
        device = self._teamwork_device(tenant, request)
        if device is None:
            return self._error(404, "ResourceNotFound", "The device was not found.")
        return self._ok({"value": health_body(device)})  # wrapped, as documented

    async def _operations(self, request: web.Request) -> web.Response:
        tenant, error = await self._beta_gate(request, "operations", READ_TEAMWORK)
        if tenant is None:
            return error  # type: ignore[return-value]
        ops = tenant.operations.get(request.match_info["id"], [])
        return self._ok({"value": [{k: v for k, v in op.items() if not k.startswith("_")} for op in ops]})

    async def _operation(self, request: web.Request) -> web.Response:
        tenant, error = await self._beta_gate(request, "operation", READ_TEAMWORK)
        if tenant is None:
            return error  # type: ignore[return-value]
        device = self._teamwork_device(tenant, request)
        ops = tenant.operations.get(request.match_info["id"], [])
        op = next((o for o in ops if o["id"] == request.match_info["op"]), None)
        if device is None or op is None:
            return self._error(404, "ResourceNotFound", "The operation was not found.")
        answer = self._ok({"value": {k: v for k, v in op.items() if not k.startswith("_")}})
        advance_operation(device, op)  # the next read sees the next state
        return answer

    async def _teamwork_action(self, request: web.Request) -> web.Response:
        tenant, error = await self._beta_gate(request, request.match_info["verb"], WRITE_TEAMWORK)
        if tenant is None:
            return error  # type: ignore[return-value]
        device = self._teamwork_device(tenant, request)
        if device is None:
            return self._error(404, "ResourceNotFound", "The device was not found.")
        verb = request.match_info["verb"]
        kind = "softwareUpdate" if verb == "updateSoftware" else "deviceRestart"
        ops = tenant.operations.setdefault(device.teamwork_id or "", [])
        if any(o["operationType"] == kind and o["status"] in {"queued", "inProgress"} for o in ops):
            return self._error(409, "Conflict", "An operation of this type is already queued for the device.")
        body = await request.json() if verb == "updateSoftware" else {}
        op = {
            "id": str(uuid.uuid4()),
            "status": "queued",
            "operationType": kind,
            "createdDateTime": now_iso(),
            "startedDateTime": None,
            "completedDateTime": None,
            "_request": body,
        }
        ops.append(op)
        location = f"/teamwork/devices/{device.teamwork_id}/operations/{op['id']}"  # relative, as documented
        return web.Response(
            status=202,
            headers={"Location": location, "Content-Type": "text/plain", "request-id": str(uuid.uuid4())},
        )


def _select(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields} if fields else item
