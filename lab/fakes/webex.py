"""A fake Webex cloud (``https://webexapis.com/v1``) on loopback, for tests and ``make demo``.

It answers what fernwart uses, in the documented shapes (vendor-apis.md §2, fixtures in
``data/webex/``): ``GET /v1/devices`` paged by ``max``/``start`` with an RFC 5988 ``Link: <…>;
rel="next"`` header, ``GET /v1/devices/{id}``, ``GET /v1/xapi/status`` (≤10 ``name=``),
``POST /v1/xapi/command/{name}`` (``SystemUnit.Boot``, ``Webex.Software.Upgrade``,
``Logging.SendLogs``), ``GET /v1/telephony/config/devices/{callingDeviceId}`` and
``POST /v1/access_token`` (``grant_type=refresh_token``). Errors use the Webex envelope
``{message, errors[{description}], trackingId}`` and a ``TrackingID`` header.

Faults are switched at run time through :class:`WebexFaults`; every request is counted in
:attr:`FakeWebex.requests` so tests can assert there was no request storm.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lab.fakes.webex_org import FakeCloudDevice, load

SCOPES_ALL = frozenset(
    {
        "spark-admin:devices_read",
        "spark:xapi_statuses",
        "spark:xapi_commands",
        "spark-admin:telephony_config_read",
    }
)


_SCOPES = web.RequestKey("scopes", frozenset)


@dataclass
class WebexFaults:
    page_max: int = 100  # the endpoint's maximum page size; a larger max= is clamped to it
    next_link_quirk: str = "none"  # "max_null" or "drop_filter" (WebexPythonSDK #168)
    throttle: int = 0  # the next N requests answer 429
    retry_after: str | None = "1"  # the 429's Retry-After header; None leaves it out
    throttle_empty_body: bool = False  # 429 with no body (documented for some services)
    token_uses: int | None = None  # a new access token expires after this many requests
    conflict: int = 0  # the next N xAPI commands answer 409
    malformed: set[str] = field(default_factory=set)  # "devices", "status": truncated JSON
    slow_s: float = 0.0  # every answer waits this long first
    offline: set[str] = field(default_factory=set)  # device ids whose xAPI answers 503


@dataclass
class _Token:
    scopes: frozenset[str]
    uses_left: int | None


class FakeWebex:
    def __init__(
        self,
        devices: list[FakeCloudDevice],
        *,
        access_token: str = "fake-webex-access",  # noqa: S107 - a fake's fixed credential
        refresh_token: str = "fake-webex-refresh",  # noqa: S107
        client_id: str = "fake-client",
        client_secret: str = "fake-client-secret",  # noqa: S107
        scopes: frozenset[str] = SCOPES_ALL,
        application_id: str = "fake-service-app",
        integration_token: str = "fake-integration-token",  # noqa: S107
    ) -> None:
        self.devices = {d.id: d for d in devices}
        self.calling = {d.record["callingDeviceId"]: d for d in devices if "callingDeviceId" in d.record}
        self.faults = WebexFaults()
        self.requests: Counter[str] = Counter()
        self.refresh_token = refresh_token
        self.client = (client_id, client_secret)
        self.scopes = scopes
        self.application_id = application_id
        self._tokens = {
            access_token: _Token(scopes, None),
            integration_token: _Token(frozenset({"spark:applications_token"}), None),
        }
        self._ids = itertools.count(1)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def expire_tokens(self) -> None:
        """Every access token handed out so far is now expired (401 until refreshed)."""
        self._tokens.clear()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/access_token", self._access_token)
        app.router.add_post("/v1/applications/{id}/token", self._service_app_token)
        app.router.add_get("/v1/devices", self._list_devices)
        app.router.add_get("/v1/devices/{id}", self._get_device)
        app.router.add_get("/v1/xapi/status", self._status)
        app.router.add_post("/v1/xapi/command/{name}", self._command)
        app.router.add_get("/v1/telephony/config/devices/{id}", self._telephony_device)
        app.router.add_get("/v1/people/me", self._me)
        return app

    # --- plumbing ----------------------------------------------------------------------------

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        tracking = f"ROUTER_FAKE-{next(self._ids):06d}"
        body = {"message": message, "errors": [{"description": message}], "trackingId": tracking}
        return web.json_response(body, status=status, headers={"TrackingID": tracking, **(headers or {})})

    def _json(self, body: Any, *, kind: str = "", headers: dict[str, str] | None = None) -> web.Response:
        tracking = f"ROUTER_FAKE-{next(self._ids):06d}"
        all_headers = {"TrackingID": tracking, **(headers or {})}
        if kind in self.faults.malformed:
            return web.Response(
                text='{"items": [{"id": ', content_type="application/json", headers=all_headers
            )
        return web.json_response(body, headers=all_headers)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        if self.faults.slow_s:
            await asyncio.sleep(self.faults.slow_s)
        if self.faults.throttle > 0:
            self.faults.throttle -= 1
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after is not None else {}
            if self.faults.throttle_empty_body:
                return web.Response(status=429, headers=headers)
            return self._error(429, "Too Many Requests", headers)
        if request.path == "/v1/access_token":
            response: web.StreamResponse = await handler(request)
            return response
        token = self._authorised(request)
        if token is None:
            return self._error(401, load("error_401.json")["message"])
        request[_SCOPES] = token.scopes
        return await handler(request)  # type: ignore[no-any-return]

    def _authorised(self, request: web.Request) -> _Token | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self._tokens.get(value) if scheme == "Bearer" else None
        if token is None:
            return None
        if token.uses_left is not None:
            if token.uses_left <= 0:
                del self._tokens[value]
                return None
            token.uses_left -= 1
        return token

    def _require(self, request: web.Request, scope: str) -> web.Response | None:
        if scope in request[_SCOPES]:
            return None
        return self._error(403, f"The requested resource needs the {scope} scope")

    # --- handlers ----------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return self._error(400, "unsupported grant_type")
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return self._error(401, "invalid client credentials")
        if form.get("refresh_token") != self.refresh_token:
            return self._error(400, "The refresh token provided is expired, revoked, malformed, or invalid.")
        body = load("token_refresh_response.json")
        body["access_token"] = f"fake-webex-access-{secrets.token_hex(8)}"
        body["refresh_token"] = self.refresh_token  # Webex may rotate it; the fake keeps one
        self._tokens[body["access_token"]] = _Token(self.scopes, self.faults.token_uses)
        return web.json_response(body)

    async def _service_app_token(self, request: web.Request) -> web.Response:
        """webex-admin.json: an integration token with spark:applications_token asks for the
        service app's token in one org; JSON body {clientId, clientSecret, targetOrgId}."""
        if (denied := self._require(request, "spark:applications_token")) is not None:
            return denied
        if request.match_info["id"] != self.application_id:
            return self._error(404, "Application not found")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "The request body is not JSON")
        if (body.get("clientId"), body.get("clientSecret")) != self.client or not body.get("targetOrgId"):
            return self._error(400, "clientId, clientSecret and targetOrgId are required and must match")
        answer = load("token_service_app.json")
        answer["access_token"] = f"fake-webex-access-{secrets.token_hex(8)}"
        answer["refresh_token"] = self.refresh_token
        self._tokens[answer["access_token"]] = _Token(self.scopes, self.faults.token_uses)
        return web.json_response(answer)

    async def _me(self, request: web.Request) -> web.Response:
        return self._json({"id": "fake-person", "orgId": request.query.get("orgId", ""), "type": "appuser"})

    async def _list_devices(self, request: web.Request) -> web.Response:
        if (denied := self._require(request, "spark-admin:devices_read")) is not None:
            return denied
        query = request.query
        try:
            size = min(int(query.get("max", "100")), self.faults.page_max)
            start = int(query.get("start", "0"))
        except ValueError:
            return self._error(400, "max and start must be integers")
        wanted = [d for d in self.devices.values() if _matches(d.record, query)]
        page = wanted[start : start + size]
        headers = {}
        if start + size < len(wanted):
            params = dict(query) | {"start": str(start + size), "max": str(size)}
            if self.faults.next_link_quirk == "max_null":
                params["max"] = "null"
            elif self.faults.next_link_quirk == "drop_filter":
                params = {k: v for k, v in params.items() if k in {"max", "start"}}
            url = request.url.with_query(params)
            headers["Link"] = f'<{url}>; rel="next"'
        return self._json({"items": [d.record for d in page]}, kind="devices", headers=headers)

    async def _get_device(self, request: web.Request) -> web.Response:
        if (denied := self._require(request, "spark-admin:devices_read")) is not None:
            return denied
        device = self.devices.get(request.match_info["id"])
        if device is None:
            return self._error(404, "Device not found")
        return self._json(device.record)

    def _xapi_device(self, device_id: str | None, *, write: bool) -> FakeCloudDevice | web.Response:
        device = self.devices.get(device_id or "")
        if device is None:
            return self._error(404, "Device not found")
        if not device.has_xapi or ("xapi:all" if write else "xapi") not in " ".join(
            device.record["permissions"]
        ):
            return self._error(403, "The device does not allow this xAPI access")
        if device.id in self.faults.offline or device.away:
            device.tick()
            return self._error(503, "The device is not reachable")
        return device

    async def _status(self, request: web.Request) -> web.Response:
        if (denied := self._require(request, "spark:xapi_statuses")) is not None:
            return denied
        names = request.query.getall("name", [])
        if not names or len(names) > 10:
            return self._error(400, "Between 1 and 10 status expressions are allowed")
        device = self._xapi_device(request.query.get("deviceId"), write=False)
        if isinstance(device, web.Response):
            return device
        result: dict[str, Any] = {}
        for name in names:
            if not _select(device.status, name.split("."), result):
                return self._error(400, load("error_400.json")["message"])
        body = {"deviceId": device.id, "result": copy.deepcopy(result)}
        device.tick()  # after the read: the read that ends an upgrade still shows its last phase
        return self._json(body, kind="status")

    async def _command(self, request: web.Request) -> web.Response:
        if (denied := self._require(request, "spark:xapi_commands")) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "The request body is not JSON")
        device = self._xapi_device(body.get("deviceId"), write=True)
        if isinstance(device, web.Response):
            return device
        if self.faults.conflict > 0:
            self.faults.conflict -= 1
            return self._error(409, "Another command is in progress on this device")
        name = request.match_info["name"]
        device.commands.append(name)
        arguments = body.get("arguments", {})
        result: dict[str, Any] = {}
        if name == "SystemUnit.Boot":
            device.boot()
        elif name == "Webex.Software.Upgrade":
            device.start_upgrade()
        elif name == "Logging.SendLogs":
            result = load("xapi_command_sendlogs_response.json")["result"] | {
                "LogId": f"fake-{secrets.token_hex(6)}"
            }
        else:
            return self._error(400, f"Unknown command {name}")
        return self._json({"deviceId": device.id, "arguments": arguments, "result": result})

    async def _telephony_device(self, request: web.Request) -> web.Response:
        if (denied := self._require(request, "spark-admin:telephony_config_read")) is not None:
            return denied
        device = self.calling.get(request.match_info["id"])
        if device is None:
            return self._error(404, "Device not found")
        body = load("telephony_device_get.json") | {
            "id": request.match_info["id"],
            "mac": str(device.record["mac"]).replace(":", ""),
        }
        return self._json(body)


_FILTERS = ("connectionStatus", "product", "type", "serial", "software", "upgradeChannel", "mac")


def _matches(record: dict[str, Any], query: Any) -> bool:
    return all(str(record.get(key)) == query[key] for key in _FILTERS if key in query)


def _select(tree: dict[str, Any], path: list[str], into: dict[str, Any]) -> bool:
    """Copy the subtree ``path`` names (``SystemUnit.Software.*``, case-insensitive) into ``into``."""
    if not path or path == ["*"]:
        into.update(tree)
        return True
    key = next((k for k in tree if k.lower() == path[0].lower()), None)
    if key is None:
        return False
    value = tree[key]
    if isinstance(value, dict):
        return _select(value, path[1:], into.setdefault(key, {}))
    if len(path) > 1:
        return False
    into[key] = value
    return True
