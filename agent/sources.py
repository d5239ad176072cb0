"""What one poll of a source produced, and which source answers for which device.

:class:`PollSink` is the :class:`~collector.base.Sink` a poller hands to ``collect``: it only
records (observations in order, per-device errors), so a source's collect costs no I/O per
device. :class:`SourceSet` is the agent's map device → source, so a command for a device reaches
the :class:`~collector.base.Acts` of the source that reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from collector.base import Acts

if TYPE_CHECKING:
    from collector.model import Observation
    from collector.sources import Collecting


class Poller(Protocol):
    """What the set needs of a poller (:class:`agent.poller.Poller`, which imports this module)."""

    @property
    def source_id(self) -> str: ...
    @property
    def source(self) -> Collecting: ...
    def reports(self, device_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class DeviceError:
    message: str
    reachable: bool


@dataclass(slots=True)
class PollSink:
    """Everything one collect reported, in the order it came."""

    observations: list[Observation] = field(default_factory=list)
    errors: dict[str, list[DeviceError]] = field(default_factory=dict)

    def observe(self, observation: Observation) -> None:
        self.observations.append(observation)

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        self.errors.setdefault(device_id, []).append(DeviceError(message, reachable))


class SourceSet:
    """The agent's sources (one poller each), looked up by the devices they report."""

    def __init__(self) -> None:
        self._pollers: dict[str, Poller] = {}

    def add(self, poller: Poller) -> None:
        self._pollers[poller.source_id] = poller

    def __len__(self) -> int:
        return len(self._pollers)

    def source_of(self, device_id: str) -> str | None:
        """The id of the source that reports ``device_id`` (its last listing, or its one device
        before the first poll), or None. Several sources listing one device: the first
        configured wins (a config mistake)."""
        for source_id, poller in self._pollers.items():
            if poller.reports(device_id):
                return source_id
        return None

    def for_device(self, device_id: str) -> Acts | None:
        """The source that can act on ``device_id``, or None (unknown device, or a source whose
        driver cannot act, such as SNMP)."""
        source_id = self.source_of(device_id)
        if source_id is None:
            return None
        source = self._pollers[source_id].source
        return source if isinstance(source, Acts) else None
