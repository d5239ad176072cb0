"""sd_notify(3) without a dependency: one datagram to ``$NOTIFY_SOCKET`` when it is set.

Shared by both daemons: Type=notify units need READY=1, STOPPING=1 and the watchdog pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog

log = structlog.get_logger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1`` …). Returns False when not
    running under systemd (no ``$NOTIFY_SOCKET``) or the socket is gone; never raises."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Non-blocking: this runs on the event loop, and a receiver that stopped reading
            # (a full datagram queue) must cost a lost notification, never a stalled agent.
            sock.setblocking(False)  # noqa: FBT003 - the socket API
            sock.connect(address)
            sock.send(state.encode())
    except BlockingIOError:
        log.debug("sd_notify_dropped", state=state, reason="notify socket queue full")
        return False
    except OSError as err:
        log.warning("sd_notify_failed", state=state, error=str(err))
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of ``$WATCHDOG_USEC`` (as systemd recommends) when the watchdog is meant for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


async def watchdog_loop(interval_s: float, until: asyncio.Event | None = None) -> None:
    """Ping the watchdog every ``interval_s`` until cancelled (or until ``until`` is set). It runs
    on the event loop, so a stuck loop stops the pings and systemd restarts us."""
    while until is None or not until.is_set():
        notify("WATCHDOG=1")
        if until is None:
            await asyncio.sleep(interval_s)
            continue
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await until.wait()
