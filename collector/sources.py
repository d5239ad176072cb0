"""One-device drivers as sources: the adapter that lets the agent poll every driver one way.

A :class:`~collector.base.Driver` reads one device (``collect() -> Observation``); a
:class:`~collector.base.Source` reads whatever its vendor API lists (``collect(sink)``). The
agent only runs sources: :func:`as_source_factory` wraps a driver class in a source class whose
one device is the source itself (its id is the configured device id), so the SNMP, host and LLDP
drivers keep their small contract and an existing ``[[devices]]`` entry is a one-device source.

Which of the two a registered class is, is decided by :func:`is_source` from its ``collect``
signature (a source's takes the sink), so a driver written to either contract works. The
``multi_device`` class flag says how many devices a source reports (an on-premises codec is a
source of one device), not which contract it follows.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from collector.base import ReportsNeighbours

if TYPE_CHECKING:
    from pydantic import BaseModel

    from collector.base import Driver, DriverFactory, Sink, SourceFactory
    from collector.model import Observation


_SELF_AND_SINK = 2  # the unbound collect of a source: (self, sink)


class Collecting(Protocol):
    """What the agent's poller needs of a source instance (a :class:`~collector.base.Source`
    or a :class:`DriverSource` around a driver instance)."""

    async def collect(self, sink: Sink) -> None: ...

    async def aclose(self) -> None: ...


def is_source(factory: object) -> bool:
    """True when ``factory`` makes sources (``collect(self, sink)``), False for one-device drivers
    (``collect(self) -> Observation``). Told apart by the ``collect`` signature: a source may be
    of one device too (an on-premises codec, ``multi_device = False``), so that flag says how
    many devices a source reports, not which contract it follows."""
    collect = getattr(factory, "collect", None)
    if collect is None:
        return False
    try:
        parameters = list(inspect.signature(collect).parameters.values())
    except (TypeError, ValueError):  # a builtin or a C extension: not a driver of ours
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= _SELF_AND_SINK


def reports_one_device(source: object) -> bool:
    """A source of one device (a ``[[devices]]`` driver, an on-premises codec): its device's
    state lines say all there is, no separate source lines are logged."""
    return getattr(source, "multi_device", True) is False


class DriverSource:
    """A one-device driver seen as a source: each collect observes the driver's one device.

    Errors are not caught: a driver's ``Unreachable``/``AuthFailed`` is the whole source's
    failure, which the poller turns into the device's down observation as before. A driver that
    reports neighbours (LLDP) keeps doing so through :meth:`neighbours`."""

    multi_device: ClassVar[bool] = False

    def __init__(self, source_id: str, driver: Driver) -> None:
        self.source_id = source_id
        self.driver = driver

    def devices(self) -> frozenset[str]:
        """The devices this source reports, known before the first poll: its one device."""
        return frozenset({self.source_id})

    async def collect(self, sink: Sink) -> None:
        sink.observe(await self.driver.collect())

    def neighbours(self) -> list[Observation]:
        if isinstance(self.driver, ReportsNeighbours):
            return self.driver.neighbours()
        return []

    async def aclose(self) -> None:
        await self.driver.aclose()


class _AdaptedSource(DriverSource):
    """Base of the classes :func:`as_source_factory` makes: built from options, like a source."""

    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]
    example_options: ClassVar[dict[str, Any]]
    driver_factory: ClassVar[DriverFactory]

    def __init__(self, source_id: str, options: BaseModel) -> None:
        super().__init__(source_id, self.driver_factory(source_id, options))


def as_source_factory(factory: DriverFactory | SourceFactory) -> SourceFactory:
    """``factory`` itself when it makes sources, else a :class:`DriverSource` class around it."""
    if is_source(factory):
        return cast("SourceFactory", factory)
    driver_factory = cast("DriverFactory", factory)
    adapted = type(
        f"DriverSource[{driver_factory.kind}]",
        (_AdaptedSource,),
        {
            "kind": driver_factory.kind,
            "options_model": driver_factory.options_model,
            "example_options": driver_factory.example_options,
            "driver_factory": driver_factory,
            "__doc__": f"The {driver_factory.kind} driver as a one-device source.",
        },
    )
    return cast("SourceFactory", adapted)
