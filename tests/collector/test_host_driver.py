"""The host driver reads this machine."""

from __future__ import annotations

import asyncio
import socket

import psutil
import pytest
from pydantic import ValidationError

from collector.host import HostDriver, HostOptions
from collector.model import HealthStatus


async def test_host_driver_reads_this_machine(tmp_path) -> None:
    driver = HostDriver("agent-host", HostOptions(disk_paths=["/", str(tmp_path)]))
    async with asyncio.timeout(10):
        first = await driver.collect()
        second = await driver.collect()
    await driver.aclose()
    for obs in (first, second):
        assert obs.driver == "host"
        assert obs.identity.hostname == socket.gethostname()
        assert obs.metrics["memory_total_bytes"] == psutil.virtual_memory().total
        assert 0.0 <= obs.metrics["cpu_busy_ratio"] <= 1.0
        assert 0.0 < obs.metrics["disk_used_ratio:/"] < 1.0
        assert f"disk_free_bytes:{tmp_path}"[:64] in obs.metrics
        assert obs.uptime_s is not None
        assert obs.uptime_s > 0
        assert {c.name for c in obs.software} == {"os", "python"}
        assert obs.errors == []


async def test_missing_disk_is_an_error_not_a_failure(tmp_path) -> None:
    driver = HostDriver("agent-host", HostOptions(disk_paths=[str(tmp_path / "absent")]))
    obs = await driver.collect()
    assert len(obs.errors) == 1
    assert "absent" in obs.errors[0]
    assert "memory_used_ratio" in obs.metrics


async def test_full_disk_threshold_degrades(tmp_path) -> None:
    # Any real filesystem is fuller than a ratio just above zero.
    obs = await HostDriver("agent-host", HostOptions(disk_paths=["/"], disk_warn_ratio=1e-9)).collect()
    assert obs.health.status is HealthStatus.DEGRADED
    assert [r.code for r in obs.health.reasons] == ["disk_full"]


def test_options_are_strict() -> None:
    with pytest.raises(ValidationError):
        HostOptions.model_validate({"disk_path": ["/"]})
