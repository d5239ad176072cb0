"""sd_notify(3) over $NOTIFY_SOCKET: READY=1, STOPPING=1, WATCHDOG=1. A no-op without systemd."""

from __future__ import annotations

import contextlib
import os
import socket


def sd_notify(state: str) -> bool:
    """Send ``state``; True when a notify socket was set and the datagram went out."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
        return True
    return False


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC, as systemd recommends, when the watchdog is for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
