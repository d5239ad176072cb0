"""Small in-test drivers: real classes that satisfy collector.base.Driver (one device) or
collector.base.Source (many) and produce real Observations. The agent takes them through its
injectable ``driver_factory``."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr

from collector.actions import ActionRequest, ActionResult, ActionState
from collector.base import Sink
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


class ListingOptions(BaseModel):
    """A tenant-like source: what it lists, and how it fails (for fault tests)."""

    model_config = ConfigDict(extra="forbid")

    devices: list[str] = ["room-1", "room-2", "room-3"]
    firmware: str = "11.0"
    client_secret: SecretStr | None = None
    offline: list[str] = []  # listed, but the vendor says not connected
    errors: dict[str, str] = {}  # device → a per-device error (sink.device_error)
    fail: str | None = None  # None | "unreachable" | "auth" | "crash" | "hang_after_first"


class ListingSource:
    """A multi-device source: each collect lists its devices into the sink, as a tenant does.
    It can restart a device (Acts), recording what it was asked."""

    multi_device: ClassVar[bool] = True
    kind: ClassVar[str] = "listing"
    options_model: ClassVar[type[BaseModel]] = ListingOptions
    example_options: ClassVar[dict[str, Any]] = {"devices": ["room-1"], "client_secret": "example-secret"}

    def __init__(self, source_id: str, options: ListingOptions) -> None:
        self.source_id = source_id
        self.options = options
        self.polls = 0
        self.closed = False
        self.requests: list[ActionRequest] = []

    async def collect(self, sink: Sink) -> None:
        self.polls += 1
        options = self.options
        match options.fail:
            case "unreachable":
                raise Unreachable(f"{self.source_id}: login.example did not answer")
            case "auth":
                raise AuthFailed(f"{self.source_id}: token refused (request id req-1)")
            case "crash":
                raise KeyError("value")
        for index, device_id in enumerate(options.devices):
            if index == 1 and options.fail == "hang_after_first":
                await asyncio.Event().wait()
            if device_id in options.errors:
                sink.device_error(device_id, options.errors[device_id])
                continue
            sink.observe(
                Observation(
                    device_id=device_id,
                    driver=self.kind,
                    observed_at=utcnow(),
                    reachable=device_id not in options.offline,
                    identity=Identity(vendor="test", model="room"),
                    software=[SoftwareComponent(name="firmware", version=options.firmware)],
                )
            )

    def capabilities(self, device_id: str) -> frozenset[str]:
        return frozenset({"restart"}) if device_id in self.options.devices else frozenset()

    async def act(self, request: ActionRequest) -> ActionResult:
        self.requests.append(request)
        return ActionResult(
            device_id=request.device_id, action=request.action, state=ActionState.SUCCEEDED, history=["done"]
        )

    async def aclose(self) -> None:
        self.closed = True


def source_lookup(kind: str) -> Any:
    """A settings lookup that knows the counting driver and the listing source."""
    known = {CountingDriver.kind: CountingDriver, ListingSource.kind: ListingSource}
    if kind not in known:
        raise UnknownDriverError(kind, sorted(known))
    return known[kind]
