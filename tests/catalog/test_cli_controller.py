"""``fernwart catalog import`` / ``list`` against a loopback server that implements the assumed API.

Assumed controller contract (documented in the report): ``POST /api/v1/advisories`` takes one CSAF
document as the JSON body and answers 201/200 with a JSON object, 422 with the rejection;
``GET /api/v1/advisories`` answers ``{"items": [{"id", "title", "cves", "cvss", ...}]}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fernwart_cli.main import main
from firmware_catalog import Catalog, DocumentError
from tests.catalog.conftest import CSAF_DIR


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def controller() -> AsyncIterator[str]:
    catalog = Catalog()

    async def post(request: web.Request) -> web.Response:
        try:
            advisory, change = catalog.add(await request.read(), "request")
        except DocumentError as err:
            return web.json_response(
                {"document": err.document, "path": err.path, "reason": err.reason}, status=422
            )
        return web.json_response({"id": advisory.id, "change": change}, status=201)

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response({"items": [a.summary() for a in catalog]})

    app = web.Application()
    app.router.add_post("/api/v1/advisories", post)
    app.router.add_get("/api/v1/advisories", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _cli(argv: list[str]) -> int:
    async with asyncio.timeout(60):
        return await asyncio.to_thread(main, argv)


async def test_import_then_list(controller: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for source in CSAF_DIR.glob("*.json"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "zz-bad.json").write_text('{"document": {}}')
    assert await _cli(["catalog", "import", str(tmp_path), "--controller", controller, "--json"]) == 1
    results: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in results] == [201] * 6 + [422]
    assert await _cli(["catalog", "list", "--controller", controller, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["items"]) == 6
    assert await _cli(["catalog", "list", "--controller", controller]) == 0
    assert "cisco-sa-voip-phones-rce-dos-rB6EeRXs\tCVE-2020-3161\t9.8" in capsys.readouterr().out


async def test_controller_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERNWART_CONTROLLER_URL", f"http://127.0.0.1:{_free_port()}")
    assert await _cli(["catalog", "list"]) == 69  # EX_UNAVAILABLE, as in every command
    assert "fernwart catalog:" in capsys.readouterr().err
