"""runtime.signals: the first SIGTERM/SIGINT sets the stop event (the second exits 130, see
tests/agent/test_daemon.py::test_second_signal_exits_at_once); handlers are removed again."""

from __future__ import annotations

import asyncio
import os
import signal

from runtime.signals import EXIT_ON_SECOND_SIGNAL, install_signal_handlers


async def test_first_signal_sets_stop_and_handlers_are_removed() -> None:
    stop = asyncio.Event()
    remove = install_signal_handlers(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(5):
            await stop.wait()
    finally:
        remove()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_the_documented_exit_code() -> None:
    assert EXIT_ON_SECOND_SIGNAL == 130
