"""Does a customer's Webex integration / service app grant what fernwart needs? (onboarding)

Webex has no token-introspection endpoint in the reference, and access tokens are opaque, so the
granted scopes are found the documented way: each read capability is tried once with the
smallest request that needs its scope (403 = scope missing), and write access to the cloud xAPI
is read from the devices' ``permissions`` — "what *the caller* may do via xAPI" (webex-device.json
``Device.permissions``: ``xapi:readonly``/``xapi:all``). Nothing is changed on any device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from collector.errors import AuthFailed, DriverError, Forbidden
from collector.http.paging import link_pages
from collector.webex import devices as dv
from collector.webex.source import WebexSource

GRANTED, MISSING, UNVERIFIED = "granted", "missing", "unverified"


@dataclass(frozen=True)
class Requirement:
    capability: str
    scope: str
    enables: str
    status: str = UNVERIFIED
    detail: str = ""


CAPABILITIES = (
    Requirement("inventory", "spark-admin:devices_read", "the device list: model, serial, software, channel"),
    Requirement("status", "spark:xapi_statuses", "RoomOS detail: upgrade status, uptime, peripherals"),
    Requirement("restart", "spark:xapi_commands", "restart through SystemUnit.Boot"),
    Requirement("update", "spark:xapi_commands", "upgrade through Webex.Software.Upgrade"),
    Requirement("logs", "spark:xapi_commands", "log bundles through Logging.SendLogs"),
    Requirement(
        "calling",
        "spark-admin:telephony_config_read",
        "Webex Calling phone details (activation, upgrade channel enabled)",
    ),
)


def _with(req: Requirement, status: str, detail: str) -> Requirement:
    return Requirement(req.capability, req.scope, req.enables, status, detail[:300])


async def _try(req: Requirement, probe: Any) -> Requirement:
    try:
        await probe
    except Forbidden as err:
        return _with(req, MISSING, str(err))
    except AuthFailed:
        raise
    except DriverError as err:
        return _with(req, UNVERIFIED, f"could not tell: {err}")
    return _with(req, GRANTED, "answered")


CHECK_PAGES = 10


def _rooms(listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in listing if dv.has_xapi(r, write=False) and dv.is_connected(r)]


def _phones(listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in listing if r.get("callingDeviceId")]


async def _listing(source: WebexSource, params: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """Page on (Link: rel="next") until a connected xAPI room and a Calling phone were seen, at
    most CHECK_PAGES pages: the first page alone (an org listing rooms first) made the calling
    check say "no Webex Calling phone" in an org that has some."""
    listing: list[dict[str, Any]] = []
    pages = 0
    async for page in link_pages(source.api, "/devices", params, max_pages=CHECK_PAGES):
        pages += 1
        listing.extend(r for r in page if isinstance(r, dict))
        if _rooms(listing) and _phones(listing):
            break
    return listing, pages


async def check(source: WebexSource) -> dict[str, Any]:
    """Run the checks; raises :class:`AuthFailed` when no token is obtained or it is refused."""
    params = {"max": "100"} | ({"orgId": source.options.org_id} if source.options.org_id else {})
    results: dict[str, Requirement] = {}
    inventory = CAPABILITIES[0]
    try:
        listing, pages = await _listing(source, params)
        results["inventory"] = _with(inventory, GRANTED, f"{len(listing)} devices on {pages} page(s) read")
    except Forbidden as err:
        listing, pages = [], 0
        results["inventory"] = _with(inventory, MISSING, str(err))
    rooms, phones = _rooms(listing), _phones(listing)
    read = f"{len(listing)} devices on {pages} page(s) read"
    for req in CAPABILITIES[1:]:
        if req.capability == "status":
            if rooms:
                probe = source.status(str(rooms[0]["id"]), ("SystemUnit.Uptime",))
                results[req.capability] = await _try(req, probe)
            else:
                results[req.capability] = _with(
                    req, UNVERIFIED, f"no connected device with cloud xAPI to ask ({read})"
                )
        elif req.capability == "calling":
            if phones:
                probe = source.api.get_json(f"/telephony/config/devices/{phones[0]['callingDeviceId']}")
                results[req.capability] = await _try(req, probe)
            else:
                results[req.capability] = _with(
                    req, UNVERIFIED, f"no Webex Calling phone in the listing ({read})"
                )
        else:
            xapi = [r for r in listing if "xapi" in (r.get("capabilities") or [])]
            writable = [r for r in xapi if dv.has_xapi(r, write=True)]
            if writable:
                detail = f"{len(writable)} of {len(xapi)} xAPI devices grant xapi:all"
                results[req.capability] = _with(req, GRANTED, detail)
            elif xapi:
                detail = "no device grants xapi:all to this app (read-only at most)"
                results[req.capability] = _with(req, MISSING, detail)
            else:
                results[req.capability] = _with(req, UNVERIFIED, "no device with cloud xAPI in the listing")
    missing = [r for r in results.values() if r.status == MISSING]
    return {
        "vendor": "webex",
        "token": "obtained",
        "capabilities": [asdict(r) for r in results.values()],
        "missing": [f"{r.scope} ({r.capability}): needed for {r.enables}" for r in missing],
        "requests": source.api.requests_made,
    }
