"""The driver protocol: a driver is small and knows only its device.

The agent's ``Poller`` owns scheduling, deadlines, up/down state and metrics; a driver does one
read per :meth:`Driver.collect` call and returns a normalized :class:`~collector.model.Observation`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from collector.model import Observation


@runtime_checkable
class Driver(Protocol):
    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]
    # A documented example of this driver's options; a test validates it against options_model.
    example_options: ClassVar[dict[str, Any]]

    async def collect(self) -> Observation:
        """Read the device once.

        Raises :class:`~collector.errors.Unreachable` when nothing could be read and
        :class:`~collector.errors.AuthFailed` when credentials were refused. Partial failures
        (a table missing) are recorded in ``Observation.errors``, not raised.
        """
        ...

    async def aclose(self) -> None: ...


class DriverFactory(Protocol):
    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]
    example_options: ClassVar[dict[str, Any]]

    def __call__(self, device_id: str, options: BaseModel) -> Driver: ...


@runtime_checkable
class ReportsNeighbours(Protocol):
    """A driver whose device also sees other devices (a switch's LLDP neighbours).

    After each successful :meth:`Driver.collect`, the poller emits these observations too: the
    devices are on the network, not polled (``reachable`` False, health ``unknown``)."""

    def neighbours(self) -> list[Observation]:
        """The other devices the last collect saw; each call returns them once."""
        ...
