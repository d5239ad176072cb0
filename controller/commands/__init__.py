"""Signed commands from the controller to agents: the key, the channel, and how to build one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.commands.channel import ChannelUnavailable, CommandChannel, CommandMetrics
from controller.commands.keys import KeyFileError, create_key, load_key, public_text

if TYPE_CHECKING:
    from controller.settings import ControllerSettings

__all__ = [
    "ChannelUnavailable",
    "CommandChannel",
    "CommandMetrics",
    "KeyFileError",
    "channel_from_settings",
    "create_key",
    "load_key",
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
