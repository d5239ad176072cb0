"""kind → driver class, read from the ``fernwart.collectors`` entry-point group.

Only configured kinds are imported; an unknown kind is a config error listing the known ones.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collector.base import DriverFactory

GROUP = "fernwart.collectors"


class UnknownDriverError(LookupError):
    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__(f"unknown driver kind {kind!r}; known kinds: {', '.join(known)}")
        self.kind = kind
        self.known = known


def known_kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_driver(kind: str) -> DriverFactory:
    """Import and return the driver class registered for ``kind``."""
    for ep in entry_points(group=GROUP):
        if ep.name == kind:
            return cast("DriverFactory", ep.load())
    raise UnknownDriverError(kind, known_kinds())
