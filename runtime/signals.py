"""Two-stage signal handling, the same for both daemons.

The first SIGTERM or SIGINT sets the ``stop`` event: the daemon stops taking work, drains what it
holds (the agent its outbox, the controller its open flush) and exits 0. A second one exits at
once with :data:`EXIT_ON_SECOND_SIGNAL` (``os._exit``: no cleanup, nothing waits), for an operator
who does not want to wait for the drain. What was not drained stays where it was (the outbox, the
broker's session) and goes out after the restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

# 128 + SIGINT, what a shell reports for an interrupted command: "stopped on request, not drained".
EXIT_ON_SECOND_SIGNAL = 130


def install_signal_handlers(stop: asyncio.Event) -> Callable[[], None]:
    """First SIGTERM/SIGINT sets ``stop``; the second exits the process immediately.

    Returns a function that removes the handlers. Off the main thread (tests running a daemon in a
    thread) no handler can be installed and none is.
    """
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second_signal_exiting_now", signal=signal.Signals(signum).name)
            os._exit(EXIT_ON_SECOND_SIGNAL)
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove
