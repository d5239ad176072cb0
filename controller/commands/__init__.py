"""Signed commands from the controller to agents: the key, the channel, and how to build one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from controller.commands.channel import ChannelUnavailable, CommandChannel, CommandMetrics
from controller.commands.keys import KeyFileError, create_key, load_key, public_text

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from controller.settings import ControllerSettings

log = structlog.get_logger(__name__)

__all__ = [
    "ChannelUnavailable",
    "CommandChannel",
    "CommandMetrics",
    "KeyFileError",
    "channel_from_settings",
    "create_key",
    "load_key",
    "open_channel",
    "public_text",
]


def channel_from_settings(
    settings: ControllerSettings, metrics: CommandMetrics | None = None
) -> CommandChannel:
    """The channel the controller runs; raises :class:`KeyFileError` naming ``commands.key_file``'s
    path when the key cannot be used."""
    return CommandChannel(
        settings.mqtt,
        load_key(settings.commands.key_file),
        publish_timeout_s=settings.commands.publish_timeout_s,
        remember_results=settings.commands.remember_results,
        metrics=metrics,
    )


def open_channel(settings: ControllerSettings, registry: CollectorRegistry) -> CommandChannel | None:
    """The daemon's channel, or None when the key cannot be used: the controller then runs
    without commands (campaigns start no job), which it says once, naming the key file."""
    try:
        return channel_from_settings(settings, CommandMetrics(registry))
    except KeyFileError as err:
        log.warning(
            "commands_disabled",
            reason=f"commands.key_file: {err}",
            hint="fernwart controller key create --config FILE",
        )
        return None
