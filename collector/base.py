"""The driver protocol: a driver is small and knows only its device.

The agent's ``Poller`` owns scheduling, deadlines, up/down state and metrics; a driver does one
read per :meth:`Driver.collect` call and returns a normalized :class:`~collector.model.Observation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from collector.model import Observation

if TYPE_CHECKING:
    from collector.actions import ActionRequest, ActionResult


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


# --- Sources: the contract that fits cloud APIs (Step 6) -----------------------------------------
#
# A *source* is what one driver instance reads: an SNMP target (one device), a Microsoft tenant
# or a Webex organisation (thousands of devices, one token, one rate limit), an on-premises codec.
# ``collect(sink)`` reads the source once and adds any number of observations and per-device
# errors to the sink. A failure of the whole source (token refused, API unreachable) is raised as
# before (:class:`~collector.errors.Unreachable`, :class:`~collector.errors.AuthFailed`); a
# failure of one device is ``sink.device_error`` and the other devices are still collected.


class Sink(Protocol):
    """Where a source's collect puts what it read. Synchronous and cheap: it only queues."""

    def observe(self, observation: Observation) -> None:
        """One device's read. ``observation.device_id`` is the device's stable id in this site."""
        ...

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        """One device could not be read (or only partly). ``message`` names what failed, with
        the vendor's request id where it gave one; it never contains a secret."""
        ...


@runtime_checkable
class Source(Protocol):
    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]
    example_options: ClassVar[dict[str, Any]]

    async def collect(self, sink: Sink) -> None:
        """Read the source once into ``sink``; raise only when nothing at all could be read."""
        ...

    async def aclose(self) -> None: ...


class SourceFactory(Protocol):
    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]
    example_options: ClassVar[dict[str, Any]]

    def __call__(self, source_id: str, options: BaseModel) -> Source: ...


@runtime_checkable
class Acts(Protocol):
    """A source whose vendor API can act on its devices (restart, update, log bundle).

    See :mod:`collector.actions` for the request and result shapes."""

    def capabilities(self, device_id: str) -> frozenset[str]:
        """The actions this source can perform on the device *automatically* (``restart``,
        ``update``, ``logs``). An action not listed is answered with a manual step."""
        ...

    async def act(self, request: ActionRequest) -> ActionResult:
        """Perform the action and follow it to its end state (or the request's deadline)."""
        ...
