"""The driver/source contract: one-device drivers are told apart from sources and adapted, so
the agent runs every registered kind as a source."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from agent.sources import PollSink
from collector.base import Source
from collector.model import Observation, utcnow
from collector.sources import DriverSource, as_source_factory, is_source, reports_one_device
from tests.agent.drivers import CountingDriver, CountingOptions, ListingOptions, ListingSource


class Undeclared:
    """A source that does not say so: told apart by its collect signature."""

    kind: ClassVar[str] = "undeclared"
    options_model: ClassVar[type[BaseModel]] = CountingOptions
    example_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, source_id: str, options: CountingOptions) -> None:
        self.source_id = source_id
        self.options = options

    async def collect(self, sink: PollSink) -> None:
        sink.observe(Observation(device_id="x", driver=self.kind, observed_at=utcnow()))

    async def aclose(self) -> None:
        return None


class Codec(Undeclared):
    """A source of one device (an on-premises codec) that says so."""

    multi_device: ClassVar[bool] = False


class Neighbourly(CountingDriver):
    def neighbours(self) -> list[Observation]:
        return [Observation(device_id="switch-2", driver="lldp", observed_at=utcnow(), reachable=False)]


def test_drivers_and_sources_are_told_apart() -> None:
    assert not is_source(CountingDriver)
    assert is_source(ListingSource)
    assert is_source(Undeclared)  # says nothing about its devices: collect(self, sink) decides
    assert is_source(Codec)  # a source of one device is still a source
    assert not is_source(object)
    assert reports_one_device(Codec("c", CountingOptions()))
    assert not reports_one_device(ListingSource("t", ListingOptions()))
    assert reports_one_device(DriverSource("d", CountingDriver("d", CountingOptions())))


def test_a_source_class_is_used_as_it_is() -> None:
    assert as_source_factory(ListingSource) is ListingSource


async def test_a_driver_is_adapted_to_a_one_device_source() -> None:
    factory = as_source_factory(CountingDriver)
    assert factory is not CountingDriver
    assert factory.kind == "counting"
    assert factory.options_model is CountingOptions
    assert factory.example_options == CountingDriver.example_options
    source = factory("codec-7", CountingOptions(firmware="9.1"))
    assert isinstance(source, Source)
    assert isinstance(source, DriverSource)
    assert source.devices() == frozenset({"codec-7"})
    sink = PollSink()
    await source.collect(sink)
    await source.collect(sink)
    assert [(o.device_id, o.firmware_version(), o.metrics["poll"]) for o in sink.observations] == [
        ("codec-7", "9.1", 1.0),
        ("codec-7", "9.1", 2.0),
    ]
    assert sink.errors == {}
    assert source.neighbours() == []
    driver = source.driver
    assert isinstance(driver, CountingDriver)
    await source.aclose()
    assert driver.closed


async def test_an_adapted_driver_keeps_reporting_its_neighbours() -> None:
    source = as_source_factory(Neighbourly)("switch-1", CountingOptions())
    assert isinstance(source, DriverSource)
    assert [o.device_id for o in source.neighbours()] == ["switch-2"]


async def test_a_source_fills_the_sink_with_devices_and_errors() -> None:
    source = ListingSource("tenant-a", ListingOptions(errors={"room-2": "HTTP 404 (request id r-1)"}))
    sink = PollSink()
    await source.collect(sink)
    assert [o.device_id for o in sink.observations] == ["room-1", "room-3"]
    assert [(d, [e.message for e in errs]) for d, errs in sink.errors.items()] == [
        ("room-2", ["HTTP 404 (request id r-1)"])
    ]
