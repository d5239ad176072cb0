"""Shared pieces of the Graph contract tests: a recording sink and a source pointed at a fake."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collector.graph import GraphOptions, GraphSource
from collector.model import Observation
from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import FakeTenant


@dataclass
class ListSink:
    observations: dict[str, Observation] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def observe(self, observation: Observation) -> None:
        assert observation.device_id not in self.observations, "a device observed twice in one collect"
        self.observations[observation.device_id] = observation

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        self.errors[device_id] = message


class Sleeps:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def source_for(
    fake: FakeGraph, tenant: FakeTenant, sleeps: Sleeps | None = None, **options: Any
) -> GraphSource:
    opts = GraphOptions.model_validate(
        {
            "tenant_id": tenant.tenant_id,
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
            "graph_url": fake.url,
            "login_url": fake.url,
            "rate_per_s": 1000,
            "burst": 1000,
            "action_poll_s": 5,
            **options,
        }
    )
    return GraphSource("ms-contoso", opts, sleep=sleeps or Sleeps())
