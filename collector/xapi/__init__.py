"""The on-premises RoomOS/CE codec source (HTTP XML API, Basic auth, one request per second)."""

from collector.xapi.options import XapiOptions
from collector.xapi.source import XapiSource

__all__ = ["XapiOptions", "XapiSource"]
