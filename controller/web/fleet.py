"""A first HTML page listing the fleet (server-rendered, no scripts); the console comes later."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from controller.storage import DeviceFilter
from controller.web.state import STATE

_COLUMNS = (
    ("tenant", "Tenant"),
    ("site_id", "Site"),
    ("device_id", "Device"),
    ("vendor", "Vendor"),
    ("model", "Model"),
    ("firmware_version", "Firmware"),
    ("health", "Health"),
    ("status", "Status"),
    ("last_seen", "Last seen (UTC)"),
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fernwart fleet</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
th,td{{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}}
.stale{{color:#a00}}.unknown{{color:#777}}
</style></head><body>
<h1>Fleet</h1><p>{total} devices, {agents} agents ({offline} offline). Showing the first {shown}.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if key == "last_seen":
        return escape(value.strftime("%Y-%m-%d %H:%M:%S"))
    return escape(str(value))


async def page(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    devices, total = await store.list_devices(DeviceFilter(limit=1000))
    agents = await store.list_agents()
    head = "".join(f"<th>{escape(title)}</th>" for _key, title in _COLUMNS)
    rows = "\n".join(
        f'<tr class="{escape(row["status"])}">'
        + "".join(f"<td>{_cell(row, key)}</td>" for key, _ in _COLUMNS)
        + "</tr>"
        for row in devices
    )
    html = _PAGE.format(
        total=total,
        agents=len(agents),
        offline=sum(1 for agent in agents if agent["state"] == "offline"),
        shown=len(devices),
        head=head,
        rows=rows,
    )
    return web.Response(text=html, content_type="text/html")
