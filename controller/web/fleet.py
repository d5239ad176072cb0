"""A first HTML page listing the fleet (server-rendered, no scripts); the console comes later."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from controller.auth import Permission
from controller.storage import DeviceFilter
from controller.web.auth import principal, requires
from controller.web.console import session_bar
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
.stale,.offline{{color:#a00}}.unknown{{color:#777}}
</style></head><body>
{bar}<h1>Fleet</h1><p>{total} devices, {agents} agents ({offline} offline). Showing the first {shown}.</p>
<h2>Agents</h2>
<table><thead><tr>{agent_head}</tr></thead><tbody>
{agent_rows}
</tbody></table>
<h2>Devices</h2>
<table><thead><tr>{head}</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


_AGENT_COLUMNS = (
    ("site_id", "Site"),
    ("agent_id", "Agent"),
    ("state", "Status"),
    ("state_reason", "Why"),
    ("last_seen", "Last seen (UTC)"),
    ("last_seq", "Last seq"),
    ("missing", "Missing seq ranges"),
    ("dropped", "Dropped"),
    ("outbox_rows", "Outbox"),
)


def _agent_cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "missing":
        return escape(", ".join(f"{boot}:{first}-{last}" for boot, first, last in value or []))
    return _cell(row, key)


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if key == "last_seen":
        return escape(value.strftime("%Y-%m-%d %H:%M:%S"))
    return escape(str(value))


@requires(Permission.READ)
async def page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store = state.store
    who = principal(request)
    scope = who.tenant if who.scoped else None
    devices, total = await store.list_devices(DeviceFilter(tenant=scope, limit=1000))
    agents = [a for a in await store.list_agents() if who.sees(state.tenant_of(a["site_id"]))]
    head = "".join(f"<th>{escape(title)}</th>" for _key, title in _COLUMNS)
    rows = "\n".join(
        f'<tr class="{escape(row["status"])}">'
        + "".join(f"<td>{_cell(row, key)}</td>" for key, _ in _COLUMNS)
        + "</tr>"
        for row in devices
    )
    agent_head = "".join(f"<th>{escape(title)}</th>" for _key, title in _AGENT_COLUMNS)
    agent_rows = "\n".join(
        f'<tr class="{escape(agent["state"])}">'
        + "".join(f"<td>{_agent_cell(agent, key)}</td>" for key, _ in _AGENT_COLUMNS)
        + "</tr>"
        for agent in agents
    )
    html = _PAGE.format(
        agent_head=agent_head,
        agent_rows=agent_rows,
        bar=session_bar(request),
        total=total,
        agents=len(agents),
        offline=sum(1 for agent in agents if agent["state"] == "offline"),
        shown=len(devices),
        head=head,
        rows=rows,
    )
    return web.Response(text=html, content_type="text/html")
