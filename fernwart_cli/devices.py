"""``fernwart devices list [--json]``: a thin client of the controller's REST API.

Exit codes (fernwart_cli.exits): 0 listed, 2 unreadable token file, 69 (EX_UNAVAILABLE) controller
unreachable, 65 (EX_DATAERR) the controller refused the query (the reason is printed), 70
(EX_SOFTWARE) an unexpected answer, 77 (EX_NOPERM) the controller refused the API token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

from fernwart_cli import exits
from fernwart_cli.credentials import (
    CredentialError,
    add_token_argument,
    api_token,
    auth_headers,
    refused,
)

DEFAULT_URL = "http://127.0.0.1:8080"
EX_DATAERR, EX_UNAVAILABLE, EX_SOFTWARE = exits.DATAERR, exits.UNAVAILABLE, exits.SOFTWARE
EX_NOPERM = exits.NOPERM
_COLUMNS = (
    "id",
    "tenant",
    "site_id",
    "device_id",
    "vendor",
    "model",
    "firmware_version",
    "status",
    "last_seen",
)


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def fetch_devices(
    base_url: str, filters: dict[str, str], *, timeout_s: float = 10.0, token: str | None = None
) -> list[dict[str, Any]]:
    """All devices matching ``filters``, following the pages. Raises :class:`ApiError`."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    url = base_url.rstrip("/") + "/api/v1/devices"
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s), headers=auth_headers(token)
        ) as session:
            while offset is not None:
                params = {**filters, "limit": "1000", "offset": str(offset)}
                async with session.get(url, params=params) as response:
                    if response.status in {401, 403}:
                        raise ApiError(EX_NOPERM, refused(response.status))
                    body = await response.json(content_type=None)
                    if response.status in {400, 422}:
                        problems = "; ".join(
                            f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}"
                            for e in body.get("errors", [])
                        )
                        raise ApiError(EX_DATAERR, f"controller refused the query: {problems}")
                    if response.status != 200:
                        raise ApiError(EX_SOFTWARE, f"{url}: HTTP {response.status}")
                items.extend(body["items"])
                offset = body.get("next_offset")
    except (aiohttp.ClientConnectionError, TimeoutError) as err:
        raise ApiError(EX_UNAVAILABLE, f"cannot reach the controller at {base_url}: {err}") from None
    except (aiohttp.ContentTypeError, ValueError, KeyError, TypeError) as err:
        raise ApiError(EX_SOFTWARE, f"{url}: unexpected answer: {err}") from None
    return items


def _table(items: list[dict[str, Any]]) -> str:
    rows = [[str(item.get(col) if item.get(col) is not None else "-") for col in _COLUMNS] for item in items]
    widths = [
        max(len(col), *(len(row[i]) for row in rows)) if rows else len(col) for i, col in enumerate(_COLUMNS)
    ]
    lines = ["  ".join(col.upper().ljust(widths[i]) for i, col in enumerate(_COLUMNS))]
    lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def list_devices(args: argparse.Namespace) -> int:
    base_url = args.controller or os.environ.get("FERNWART_CONTROLLER_URL") or DEFAULT_URL
    filters = {
        key: value
        for key, value in (
            ("tenant", args.tenant),
            ("site", args.site),
            ("vendor", args.vendor),
            ("status", args.status),
        )
        if value is not None
    }
    try:
        token = api_token(args)
    except CredentialError as err:
        sys.stderr.write(f"fernwart devices: {err}\n")
        return exits.USAGE
    try:
        items = asyncio.run(fetch_devices(base_url, filters, token=token))
    except ApiError as err:
        sys.stderr.write(f"fernwart devices: {err}\n")
        return err.code
    if args.json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    else:
        sys.stdout.write(_table(items) + "\n")
    return exits.OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("devices", help="query the controller's device inventory")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list devices (all pages)")
    listing.add_argument(
        "--controller",
        metavar="URL",
        help=f"controller base URL (env FERNWART_CONTROLLER_URL, default {DEFAULT_URL})",
    )
    add_token_argument(listing)
    listing.add_argument("--json", action="store_true", help="print the devices as a JSON array")
    listing.add_argument("--tenant")
    listing.add_argument("--site")
    listing.add_argument("--vendor")
    listing.add_argument("--status", choices=("unknown", "active", "stale"))
    listing.set_defaults(func=list_devices)
