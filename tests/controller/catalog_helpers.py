"""Lab-like devices and the real advisories (shared/catalog beside the repository) for the catalog tests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from collector.model import Identity, Observation, SoftwareComponent
from lab.devices import LAB_DEVICES
from tests.catalog.conftest import CATALOG_DATA, CSAF_DIR

CSAF = CSAF_DIR  # the real advisories in the shared folder beside the repository
KEV = CATALOG_DATA / "kev" / "known_exploited_vulnerabilities.json"

VOIP = "cisco-sa-voip-phones-rce-dos-rB6EeRXs"  # CVE-2020-3161, in KEV; first fixed 11.7(1)
CSRF = "cisco-sa-20190320-ip-phone-csrf"  # first fixed 12.5(1)SR1
IPPHONE = "cisco-sa-ipphone-rce-dos-U2PsSkz3"  # affected versions listed, no fixed release
TCE = "cisco-sa-tce-roomos-dos-9V9jrC2q"
ROOMOS = "cisco-sa-roomos-dkjGFgRK"
TP = "cisco-sa-20161102-tp"

# The lab devices, an enterprise 8851 on an old load, and one nobody can identify.
DEVICES: list[tuple[str, str, str, str, str | None]] = [
    (d.id, d.vendor, d.family, d.model, d.firmware) for d in LAB_DEVICES
] + [
    ("sep-enterprise-8851", "cisco", "enterprise", "CP-8851", "sip88xx.11-5-1-18"),
    ("mystery-box", "unknown", "unknown", "unknown", None),
]
OLD_8851 = "sip88xx.11-5-1-18"
NEW_8851 = "sip88xx.12-5-1SR1-4"


def observation(device_id: str, vendor: str, family: str, model: str, firmware: str | None) -> Observation:
    software = [SoftwareComponent(name="firmware", version=firmware)] if firmware else []
    return Observation(
        device_id=device_id,
        driver="snmp",
        observed_at=datetime.now(UTC),
        identity=Identity(vendor=vendor, family=family, model=model, serial=f"SN-{device_id}"),
        software=software,
    )


def lab_observations() -> list[Observation]:
    return [observation(*device) for device in DEVICES]


def advisory_files(*ids: str) -> list[Path]:
    return [CSAF / f"{advisory_id}.json" for advisory_id in ids] if ids else sorted(CSAF.glob("*.json"))


async def get_json(session: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with session.get(url) as resp:
        body = await resp.text()
        assert resp.status == status, body
        return json.loads(body)


def by_device(findings: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """device_id → advisory_id → finding."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for finding in findings:
        out.setdefault(finding["device_id"], {})[finding["advisory_id"]] = finding
    return out


async def all_findings(session: aiohttp.ClientSession, base: str, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await get_json(session, f"{base}/api/v1/findings?limit=1000&offset={offset}{query}")
        items.extend(page["items"])
        offset = page["next_offset"]
    return items


async def poll(check: Any, timeout_s: float = 30.0) -> None:
    """Until ``await check()`` is true; TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)
