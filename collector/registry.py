"""kind → driver or source class, read from the ``fernwart.collectors`` entry-point group.

An entry may be a one-device driver (``collect() -> Observation``, :class:`collector.base.Driver`)
or a source (``collect(sink)``, :class:`collector.base.Source`); :func:`load_source` gives the
agent a source either way (see :mod:`collector.sources`). Only configured kinds are imported; an
unknown kind is a config error listing the known ones.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, cast

from collector.sources import as_source_factory

if TYPE_CHECKING:
    from collector.base import DriverFactory, SourceFactory

GROUP = "fernwart.collectors"


class UnknownDriverError(LookupError):
    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__(f"unknown driver kind {kind!r}; known kinds: {', '.join(known)}")
        self.kind = kind
        self.known = known


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    # Scanning installed distributions costs milliseconds; a 1,000-device config asks 1,000 times.
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def known_kinds() -> list[str]:
    return sorted(_entry_points())


def entry_point(kind: str) -> EntryPoint:
    """The registered entry point of ``kind`` (not imported); raises :class:`UnknownDriverError`."""
    ep = _entry_points().get(kind)
    if ep is None:
        raise UnknownDriverError(kind, known_kinds())
    return ep


@functools.cache
def load_driver(kind: str) -> DriverFactory | SourceFactory:
    """Import and return the class registered for ``kind``, as registered (driver or source)."""
    return cast("DriverFactory | SourceFactory", entry_point(kind).load())


@functools.cache
def load_source(kind: str) -> SourceFactory:
    """The source class for ``kind``: the registered class, or a one-device driver adapted."""
    return as_source_factory(load_driver(kind))
