"""kind → driver class, read from the ``fernwart.collectors`` entry-point group.

Only configured kinds are imported; an unknown kind is a config error listing the known ones.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collector.base import DriverFactory

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


@functools.cache
def load_driver(kind: str) -> DriverFactory:
    """Import and return the driver class registered for ``kind``."""
    ep = _entry_points().get(kind)
    if ep is None:
        raise UnknownDriverError(kind, known_kinds())
    return cast("DriverFactory", ep.load())
