"""The demo's planned campaign: a contract for the demo tenant, a campaign, its plan, printed.

Seeded through the REST API as an operator would (``fernwart contracts import`` and
``fernwart campaign create`` / ``plan``): the lab site belongs to the demo customer (Berlin time,
Berlin's public holidays, office hours Mon-Fri 08:00-17:00, notices one day ahead), maintenance
windows on Tuesday and Thursday nights, and the customer's approval of RoomOS 26.2.2.2 for
feature updates. The campaign targets RoomOS 26.2.2.2 and lets the catalog's rule pick the other
families' targets; its stored plan says which device, which window, which class, and why.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from fernwart_cli.campaigns_online import plan_lines

DEMO_TARGETS = {"roomos": "26.2.2.2", "ce": "26.2.2.2"}


def contract(tenant: str, site: str) -> dict[str, Any]:
    """The demo customer's policy and windows, in the schema of the policy and windows files."""
    policy = {
        "customers": {
            tenant: {
                "name": "Demo Kunde GmbH",
                "timezone": "Europe/Berlin",
                "holidays": "DE-BE",
                "working_hours": "Mon-Fri 08:00-17:00",
                "security_min_cvss": 7.0,
                "notice_lead": "P1D",
                "sites": [site],
                "contacts": [
                    {"name": "Erika Muster", "email": "erika.muster@demo.example", "role": "IT lead"}
                ],
                "approvals": [
                    {
                        "family": "roomos",
                        "version": "26.2.2.2",
                        "approved_by": "Erika Muster",
                        "approved_at": "2026-01-05T10:00:00+01:00",
                    }
                ],
            }
        }
    }
    windows = {
        "windows": [
            {
                "customer": tenant,
                "name": "Tue/Thu night",
                "start": "2026-01-06T22:00:00",
                "rrule": "FREQ=WEEKLY;BYDAY=TU,TH",
                "duration": "PT3H",
            }
        ]
    }
    return {"policy": policy, "windows": windows}


def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URL the demo built
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read() or b"null")


def wait_for_devices(url: str, token: str, tenant: str, count: int, timeout_s: float = 90.0) -> int:
    """Until the controller knows the firmware of ``count`` devices of the tenant (the agent's first
    polls); the number it knows when ``timeout_s`` has passed otherwise."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        status, page = _call("GET", f"{url}/api/v1/devices?tenant={tenant}&limit=1000", token)
        items = page.get("items", []) if status == 200 and isinstance(page, dict) else []
        seen = sum(1 for item in items if item.get("firmware_version"))
        if seen >= count:
            return seen
        time.sleep(0.5)
    return seen


def seed_and_plan(url: str, token: str, tenant: str, site: str) -> list[str]:
    """Store the contract, create the campaign, store its plan; the lines to print."""
    status, body = _call("PUT", f"{url}/api/v1/contracts", token, contract(tenant, site))
    if status != 200:
        return [f"campaign: the demo contract was refused (HTTP {status}): {body}"]
    spec = {"name": "Demo: RoomOS 26.2.2.2 and security fixes", "customer": tenant, "targets": DEMO_TARGETS}
    status, created = _call("POST", f"{url}/api/v1/campaigns", token, spec)
    if status != 201:
        return [f"campaign: not created (HTTP {status}): {created}"]
    status, plan = _call("POST", f"{url}/api/v1/campaigns/{created['id']}/plan", token)
    if status != 200:
        return [f"campaign {created['id']}: not planned (HTTP {status}): {plan}"]
    where = "Europe/Berlin, holidays DE-BE, Mon-Fri 08:00-17:00"
    cid = created["id"]
    return [
        f"contract: {tenant} ({where}), windows Tue/Thu 22:00 for 3 h",
        *plan_lines(plan),
        f"  API: {url}/api/v1/campaigns/{cid}/jobs",
        f"  CLI: fernwart campaign plan --campaign {cid} --dry-run",
    ]


def show_campaign(url: str, token: str, tenant: str, site: str, devices: int) -> str:
    """The lab's planned campaign, once the agent reported the firmware of ``devices`` devices."""
    known = wait_for_devices(url, token, tenant, devices)
    lines = [f"\nplanned campaign for the lab ({known} devices reported their firmware):"]
    return "\n".join(lines + seed_and_plan(url, token, tenant, site)) + "\n"
