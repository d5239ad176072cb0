"""End to end: MQTT ingest of lab-like devices, ``fernwart catalog import``/``list`` as processes,
findings over REST, a firmware update through ingest, a restart; a trusted provider URL import."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collector.wire import AgentState
from tests.catalog.test_provider import Provider, _publish_rolie, provider  # noqa: F401 (fixture)
from tests.controller.catalog_helpers import (
    CSAF,
    CSRF,
    IPPHONE,
    KEV,
    NEW_8851,
    TCE,
    VOIP,
    advisory_files,
    all_findings,
    by_device,
    get_json,
    lab_observations,
    observation,
    poll,
)
from tests.controller.conftest import Harness, make_batch, make_status

FERNWART = str(Path(sys.executable).parent / "fernwart")
pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


async def _cli(*argv: str, token: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FERNWART,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FERNWART_TOKEN": token},
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _ingest_lab(h: Harness) -> None:
    await h.send_status(make_status("site-1", "agent-1", state=AgentState.ONLINE))
    await h.send_batch(make_batch("site-1", "agent-1", 0, lab_observations()))


async def test_cli_import_list_findings_update_and_restart(
    make_harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make_harness()
    await _ingest_lab(h)
    async with aiohttp.ClientSession(headers=h.auth) as session:

        async def devices_stored() -> bool:
            page = await get_json(session, f"{h.http_url}/api/v1/devices")
            return bool(page["total"] == 9)

        await poll(devices_stored)

        code, out, err = await _cli(
            "catalog", "import", str(CSAF), "--kev", str(KEV), "--controller", h.http_url, "--json",
            token=h.token,
        )
        assert code == 0, err
        results = json.loads(out)
        assert [r["status"] for r in results] == [201] * 6 + [200]
        assert results[-1]["response"]["entries"] == 98
        code, out, err = await _cli("catalog", "list", "--controller", h.http_url, "--json", token=h.token)
        assert code == 0, err
        listed = json.loads(out)
        assert {item["id"] for item in listed["items"]} == {p.stem for p in advisory_files()}
        code, out, _ = await _cli("catalog", "list", "--controller", h.http_url, token=h.token)
        assert f"{VOIP}\tCVE-2020-3161\t9.8\tKEV\t1\t" in out

        found = by_device(await all_findings(session, h.http_url))
        assert found["ber-konf-2-12"][TCE]["status"] == "affected"
        assert found["sep-enterprise-8851"][VOIP]["status"] == "affected"
        before = await all_findings(session, h.http_url)

        # The phone is updated; the agent reports the new load through MQTT.
        update = observation("sep-enterprise-8851", "cisco", "enterprise", "CP-8851", NEW_8851)
        await h.send_batch(make_batch("site-1", "agent-1", 1, [update]))

        async def rematched() -> bool:
            mine = by_device(await all_findings(session, h.http_url))["sep-enterprise-8851"]
            return bool(mine[VOIP]["status"] == "fixed" and mine[CSRF]["status"] == "fixed")

        await poll(rematched)
        mine = by_device(await all_findings(session, h.http_url))["sep-enterprise-8851"]
        assert mine[IPPHONE]["status"] == "affected"  # 12.5(1)SR1 is among its listed versions
        after_update = await all_findings(session, h.http_url)
        assert after_update != before

        h.stop.set()
        async with asyncio.timeout(30):
            await h.task
        restarted = await make_harness()
        code, out, _ = await _cli(
            "catalog", "list", "--controller", restarted.http_url, "--json", token=restarted.token
        )
        assert code == 0
        assert len(json.loads(out)["items"]) == 6
        reloaded = await all_findings(session, restarted.http_url)

        def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in f.items() if k != "updated_at"} for f in items]

        assert strip(reloaded) == strip(after_update)


async def test_cli_imports_from_a_trusted_provider_url(
    make_harness: Callable[..., Awaitable[Harness]],
    provider: Provider,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    h = await make_harness()
    await _ingest_lab(h)
    docs = advisory_files(VOIP, CSRF)
    broken = tmp_path / "broken.json"
    broken.write_text('{"document": {"category": "csaf_base"}}')
    _publish_rolie(provider, [*docs, broken])
    url = provider.base + "/.well-known/csaf/provider-metadata.json"
    state = tmp_path / "state.json"
    code, out, err = await _cli(
        "catalog", "import", url, "--state", str(state), "--controller", h.http_url, "--json", token=h.token
    )
    assert code == 1, err  # the broken document was rejected, the others went in
    results = json.loads(out)
    assert sorted(r["status"] for r in results) == [201, 201, 422]
    rejected = next(r for r in results if r["status"] == 422)
    assert rejected["file"].endswith("/rolie/broken.json")
    assert rejected["response"]["errors"][0]["path"]
    async with aiohttp.ClientSession(headers=h.auth) as session:
        listing = await get_json(session, f"{h.http_url}/api/v1/advisories")
        assert {item["id"] for item in listing["items"]} == {VOIP, CSRF}
        assert {item["source"] for item in listing["items"]} == {
            f"{provider.base}/rolie/{doc.name}" for doc in docs
        }
    # Incremental: nothing changed at the provider, nothing is sent again.
    code, out, err = await _cli(
        "catalog", "import", url, "--state", str(state), "--controller", h.http_url, "--json", token=h.token
    )
    assert json.loads(out) == []
    assert "unchanged since the last fetch" in err
