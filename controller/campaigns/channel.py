"""How the campaign runner reaches the agents: the one seam between planning and execution.

The runner asks a :class:`CommandChannel` to deliver an update request to the agent of a site;
the channel (``controller.commands``: an Ed25519-signed command over MQTT, QoS 1, with expiry
and nonce) returns the command's id at once and reports the driver's outcome later to the
callback registered with ``on_result`` (a :class:`ResultSink`'s method) under the job id it was
given. Deliberately small, so either side can change behind it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from collector.wire import ActionRequest, ActionResult


class ChannelUnavailable(Exception):
    """The command could not be handed to the broker (not connected, no enrolled agent for the site)."""


class CommandChannel(Protocol):
    async def send(self, site_id: str, request: ActionRequest, *, expires_at: datetime, job_id: str) -> str:
        """Sign and publish ``request`` for the agent of ``site_id``; the command id.

        Raises :class:`ChannelUnavailable` when it could not be published."""
        ...

    def on_result(self, callback: Callable[..., Awaitable[None] | None]) -> None:
        """Register ``callback(job_id, result, site_id=…, command_id=…)`` for what the agents report
        (the runner's ``on_result``): the site the result came from and the command it answers."""
        ...


class ResultSink(Protocol):
    async def on_result(
        self, job_id: str, result: ActionResult, *, site_id: str | None = None, command_id: str | None = None
    ) -> None:
        """What the agent's driver reported for the command sent under ``job_id``."""
        ...
