"""Host driver (psutil): the agent host's CPU, memory, disks and uptime."""

from collector.host.driver import HostDriver
from collector.host.options import HostOptions

__all__ = ["HostDriver", "HostOptions"]
