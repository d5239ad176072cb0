"""Small in-test drivers: real classes that satisfy collector.base.Driver and return real
Observations. The agent takes them through its injectable ``driver_factory``."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr

from collector.errors import AuthFailed, Unreachable
from collector.model import Identity, Observation, SoftwareComponent, utcnow
from collector.registry import UnknownDriverError


class CountingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    firmware: str = "1.0"
    community: SecretStr | None = None
    # Behaviour switches for fault tests.
    fail: str | None = None  # None | "unreachable" | "auth" | "hang" | "crash"


class CountingDriver:
    """Each collect returns an observation whose ``metrics["poll"]`` counts 1, 2, 3, …"""

    kind: ClassVar[str] = "counting"
    options_model: ClassVar[type[BaseModel]] = CountingOptions
    example_options: ClassVar[dict[str, Any]] = {"firmware": "1.0"}

    def __init__(self, device_id: str, options: CountingOptions) -> None:
        self.device_id = device_id
        self.options = options
        self.polls = 0
        self.closed = False

    async def collect(self) -> Observation:
        self.polls += 1
        match self.options.fail:
            case "unreachable":
                raise Unreachable(f"{self.device_id}: no answer")
            case "auth":
                raise AuthFailed(f"{self.device_id}: community refused")
            case "hang":
                await asyncio.Event().wait()
            case "crash":
                raise ZeroDivisionError("driver bug")
        return Observation(
            device_id=self.device_id,
            driver=self.kind,
            observed_at=utcnow(),
            identity=Identity(vendor="test", model="counter"),
            software=[SoftwareComponent(name="firmware", version=self.options.firmware)],
            metrics={"poll": float(self.polls)},
        )

    async def aclose(self) -> None:
        self.closed = True


def lookup(kind: str) -> Any:
    """A settings lookup that knows only the counting driver."""
    if kind != CountingDriver.kind:
        raise UnknownDriverError(kind, [CountingDriver.kind])
    return CountingDriver


class DriverPool:
    """driver_factory for AgentService that remembers the drivers it made."""

    def __init__(self) -> None:
        self.drivers: dict[str, CountingDriver] = {}

    def __call__(self, device: Any) -> CountingDriver:
        options = device.driver_options or CountingOptions.model_validate(device.options)
        driver = CountingDriver(device.id, options)
        self.drivers[device.id] = driver
        return driver
