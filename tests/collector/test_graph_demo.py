"""The demo's Microsoft source entry is a valid source config that reads the fake tenant."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from collector.graph import GraphOptions, GraphSource
from fernwart_cli import demo_tenants
from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import fixture_tenant
from runtime.secrets import resolve_secrets
from tests.collector.graph_helpers import ListSink
from tests.e2e.test_demo import _devices, _token
from tests.fixtures.net import free_port

LISTED_INTUNE = (
    "4b1f0c2e-7d3a-4e59-9a61-0c8d2f5e7a01",
    "8e2a6d71-1c4b-4f0a-b7e3-5d9c0a1f2b02",
    "c3d5e7f9-2a4b-4c6d-8e0f-1a3b5c7d9e03",
)
BAR_TEAMWORK = "6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f02"


async def test_demo_source_entry_reads_the_simulated_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = fixture_tenant()
    async with FakeGraph([tenant]).running() as fake:
        info = {
            "url": fake.url,
            "tenants": [
                {
                    "tenant_id": tenant.tenant_id,
                    "client_id": tenant.client_id,
                    "client_secret": tenant.client_secret,
                }
            ],
        }
        text = demo_tenants.graph_source_config(info, 15.0)
        assert tenant.client_secret not in text  # the secret travels in the agent's environment
        for name, value in demo_tenants.agent_env(info).items():
            monkeypatch.setenv(name, value)
        (entry,) = tomllib.loads(text)["sources"]
        options, problems = resolve_secrets(entry["options"], "sources[0].options")
        assert problems == {}
        assert entry["kind"] == GraphSource.kind
        source = GraphSource(entry["id"], GraphOptions.model_validate(options))
        sink = ListSink()
        try:
            async with asyncio.timeout(20):
                await source.collect(sink)
        finally:
            await source.aclose()
    assert len(sink.observations) == 4


@pytest.mark.slow
def test_the_demo_agent_polls_the_simulated_tenant(tmp_path: Path) -> None:
    """``fernwart demo`` end to end: the Microsoft tenant's Teams devices reach the REST API."""
    http_port = free_port()
    state = tmp_path / "demo"
    argv = [sys.executable, "-m", "fernwart_cli.main", "demo", "--state-dir", str(state), "--interval", "5"]
    proc = subprocess.Popen(
        [*argv, "--http-port", str(http_port), "--broker-port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{http_port}"
    graph: dict[str, dict[str, object]] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(graph) < 4:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            graph = {k: v for k, v in _devices(url, _token(state)).items() if v.get("driver") == "graph"}
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert sorted(graph) == sorted([*(f"intune-{i}" for i in LISTED_INTUNE), f"teams-{BAR_TEAMWORK}"])
    assert {v["family"] for v in graph.values()} == {"teams-rooms", "teams-android"}
    assert code == 0
