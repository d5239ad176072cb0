"""The demo's Microsoft source entry is a valid source config that reads the fake tenant."""

from __future__ import annotations

import asyncio
import tomllib

import pytest

from collector.graph import GraphOptions, GraphSource
from fernwart_cli import demo_tenants
from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import fixture_tenant
from runtime.secrets import resolve_secrets
from tests.collector.graph_helpers import ListSink


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
