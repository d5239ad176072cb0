"""The Webex cloud source: one organisation's devices, cloud xAPI status and commands."""

from collector.webex.options import WebexOptions
from collector.webex.source import WebexSource

__all__ = ["WebexOptions", "WebexSource"]
