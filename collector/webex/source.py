"""``WebexSource``: one Webex organisation — every cloud-registered device in one paged listing.

A collect is ``GET /v1/devices`` page by page (``Link: rel="next"``, through the shared HTTP layer
:mod:`collector.http`: token refresh, budget, Retry-After, error translation with TrackingID),
then, for each connected RoomOS device the caller may read through the cloud xAPI, one
``GET /v1/xapi/status`` with at most 10 expressions (documented limit) for version detail, upgrade
status, uptime, peripherals and diagnostics. Webex Calling phones are observed from the listing
(their firmware in ``software``); ``read_calling_details`` adds their telephony record.

Whole-source failures raise (token refused, listing unreachable or malformed); one device's
failed status read is an error on that device's observation and the others are still collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
from pydantic import ValidationError

from collector.actions import ActionRequest, ActionResult
from collector.base import Sink
from collector.errors import AuthFailed, BadResponse, DriverError
from collector.http import (
    AccessToken,
    ApiClient,
    RefreshTokenGrant,
    RequestBudget,
    RetryPolicy,
    StaticToken,
    TokenCache,
    link_pages,
)
from collector.http.auth import TokenSource
from collector.model import Observation, utcnow
from collector.webex import devices as dv
from collector.webex.acts import WebexActs
from collector.webex.options import WebexOptions
from collector.webex.tokens import ServiceAppToken
from collector.xapi import status as st

# ≤ 10 per request (vendor-apis.md §2.3).
STATUS_NAMES = (
    "SystemUnit.Software.*",
    "SystemUnit.Uptime",
    "SystemUnit.ProductId",
    "SystemUnit.Hardware.Module.SerialNumber",
    "Provisioning.Software.UpgradeStatus.*",
    "Peripherals.*",
    "Diagnostics.*",
)


class WebexSource(WebexActs):
    kind: ClassVar[str] = "webex"
    multi_device: ClassVar[bool] = True
    options_model: ClassVar[type[WebexOptions]] = WebexOptions
    example_options: ClassVar[dict[str, Any]] = {
        "client_id": "C0123456789abcdef",
        "client_secret": "example-client-secret",
        "refresh_token": "example-refresh-token",
        "org_id": "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9leGFtcGxl",
    }

    def __init__(self, source_id: str, options: WebexOptions) -> None:
        self.source_id = source_id
        self.options = options
        self.records: dict[str, dict[str, Any]] = {}  # our device id -> last /v1/devices item
        self._session: aiohttp.ClientSession | None = None
        self._api: ApiClient | None = None

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def api(self) -> ApiClient:
        """The org's one client (built on first use, inside the running loop)."""
        if self._api is None:
            self._session = aiohttp.ClientSession()
            policy = RetryPolicy(retries=self.options.retries, min_s=self.options.retry_min_s)
            common: dict[str, Any] = {
                "vendor": "webex",
                "base_url": self.options.base_url,
                "policy": policy,
                "deadline_s": self.options.request_deadline_s,
                "client_request_id_header": None,
            }
            self._api = ApiClient(
                self._session,
                auth=self._token_source(ApiClient(self._session, **common)),
                budget=RequestBudget(self.options.rate_per_s, self.options.burst),
                **common,
            )
        return self._api

    def _token_source(self, token_api: ApiClient) -> TokenSource:
        o = self.options
        if o.service_app:
            assert o.integration_token is not None
            assert o.application_id is not None
            assert o.client_id is not None
            assert o.client_secret is not None
            assert o.target_org_id is not None  # the options validator guarantees the set
            assert self._session is not None  # built by .api just before
            app_api = ApiClient(
                self._session,
                vendor="webex",
                base_url=o.base_url,
                auth=StaticToken(o.integration_token),
                client_request_id_header=None,
            )
            first = ServiceAppToken(
                app_api,
                token_api,
                application_id=o.application_id,
                client_id=o.client_id,
                client_secret=o.client_secret,
                target_org_id=o.target_org_id,
            )
            return TokenCache(_refused_grant_is_auth_failed(first))
        if o.refresh_token is not None and o.client_id is not None and o.client_secret is not None:
            grant = RefreshTokenGrant(
                token_api,
                client_id=o.client_id,
                client_secret=o.client_secret,
                refresh_token=o.refresh_token,
                path="/access_token",
            )
            return TokenCache(_refused_grant_is_auth_failed(grant))
        assert o.access_token is not None  # the options validator guarantees one way
        return StaticToken(o.access_token)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._api = None

    # --- collect -----------------------------------------------------------------------------

    async def collect(self, sink: Sink) -> None:
        params = {"max": str(self.options.page_size)}
        if self.options.org_id:
            params["orgId"] = self.options.org_id
        # The whole listing first: a failure there is the source's (raised as is, not wrapped in
        # a TaskGroup's ExceptionGroup); the per-device reads after it never raise DriverError.
        records = [
            record
            async for page in link_pages(self.api, "/devices", params)
            for record in page
            if isinstance(record, dict) and isinstance(record.get("id"), str)
        ]
        # The last listing is the truth (a removed device cannot be acted on); swapped whole, so
        # an action running beside a poll never sees a half-built map.
        self.records = {dv.device_id(record["id"]): record for record in records}
        gate = asyncio.Semaphore(self.options.concurrency)
        async with asyncio.TaskGroup() as tasks:
            for record in records:
                tasks.create_task(self._observe(record, sink, gate))

    async def _observe(self, record: dict[str, Any], sink: Sink, gate: asyncio.Semaphore) -> None:
        our_id = dv.device_id(record["id"])
        found = dv.software(record)
        errors: list[str] = []
        tree: dict[str, Any] = {}
        details: dict[str, str] = {}
        async with gate:
            if self.options.read_xapi_status and dv.has_xapi(record, write=False) and dv.is_connected(record):
                try:
                    tree = await self.status(record["id"], STATUS_NAMES)
                except DriverError as err:
                    errors.append(f"xapi status: {err}"[:1024])
            if self.options.read_calling_details and record.get("callingDeviceId"):
                try:
                    details = await self._calling(str(record["callingDeviceId"]))
                except DriverError as err:
                    errors.append(f"telephony device: {err}"[:1024])
        try:
            observation = self._observation(our_id, record, found, tree, details, errors)
        except ValidationError as err:
            # One odd record (a field longer than our model allows) costs that device, not the org.
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"])) or "record"
            sink.device_error(
                our_id, f"unusable device record: {where}: {first['msg']}"[:1024], reachable=True
            )
            return
        sink.observe(observation)

    async def status(self, webex_id: str, names: tuple[str, ...]) -> dict[str, Any]:
        params = [("deviceId", webex_id), *(("name", n) for n in names)]
        url = self.api.url_for("/xapi/status").with_query(params)
        body = await self.api.get_json(url)
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise BadResponse(f"webex GET /xapi/status for {dv.device_id(webex_id)}: no result object")
        return result

    async def _calling(self, calling_id: str) -> dict[str, str]:
        body = await self.api.get_json(f"/telephony/config/devices/{calling_id}")
        if not isinstance(body, dict):
            return {}
        keep = ("activationState", "upgradeChannelEnabled", "model", "manufacturer")
        return {f"calling_{k}": str(body[k])[:1024] for k in keep if k in body}

    def _observation(  # noqa: PLR0917 - the parts of one device's read, each named
        self,
        our_id: str,
        record: dict[str, Any],
        found: st.Firmware | None,
        tree: dict[str, Any],
        details: dict[str, str],
        errors: list[str],
    ) -> Observation:
        health = dv.health(record)
        software = dv.components(st.firmware(tree) or found)
        peripherals = st.peripherals(tree)
        software += st.peripheral_software(peripherals)[: 64 - len(software)]
        reasons = [*health.reasons, *st.diagnostics(tree)][:64]
        upgrade = st.upgrade_state(tree)
        raw = dv.raw_fields(record) | details
        if upgrade is not None:
            raw["upgrade_status"] = upgrade.label
        return Observation(
            device_id=our_id,
            driver=self.kind,
            observed_at=utcnow(),
            reachable=dv.is_connected(record),
            identity=dv.identity(record, st.firmware(tree) or found),
            software=software,
            health=health.model_copy(update={"reasons": reasons}),
            uptime_s=st.uptime_s(tree),
            peripherals=peripherals,
            raw=raw,
            errors=errors[:64],
            management="webex-cloud",
            connection=dv.connection(record),
            upgrade_channel=str(record["upgradeChannel"]).lower() if record.get("upgradeChannel") else None,
            console_url=self.options.console_url,
        )

    # Acts: see collector/webex/acts.py
    async def act(self, request: ActionRequest) -> ActionResult:
        return await self.perform(request)


def _refused_grant_is_auth_failed(
    grant: Callable[[], Awaitable[AccessToken]],
) -> Callable[[], Awaitable[AccessToken]]:
    """Webex answers a revoked or expired refresh token with 400 and its own envelope (no OAuth
    ``error`` code), which the HTTP layer reports as BadResponse; for the source that means the
    customer must consent again, i.e. AuthFailed (vendor-apis.md §5.6)."""

    async def fetch() -> AccessToken:
        try:
            return await grant()
        except BadResponse as err:
            if " answered 4" not in str(err):  # a 2xx without a usable token stays BadResponse
                raise
            raise AuthFailed(f"token refresh refused, the integration needs consent again: {err}") from None

    return fetch
