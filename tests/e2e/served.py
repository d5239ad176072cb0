"""aiohttp apps (the vendor fakes) served on loopback from a thread's own event loop, so that an
end-to-end test can stay synchronous like the daemons it drives as processes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Self

from aiohttp import web


class ServedApps:
    """Subclasses say which apps to serve (:meth:`apps`) and what else runs beside them
    (:meth:`beside`); :attr:`ports` holds the port of each app, in order, once entered."""

    name = "fakes"

    def __init__(self) -> None:
        self.ports: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def apps(self) -> list[web.Application]:
        raise NotImplementedError

    def beside(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Anything else served while the apps are (a fake with its own server); nothing by default."""
        return contextlib.nullcontext()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"the {self.name} did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runners = []
        try:
            for app in self.apps():
                runner = web.AppRunner(app, access_log=None)
                runners.append(runner)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                self.ports.append(int(runner.addresses[0][1]))
            async with self.beside():
                self._ready.set()
                await self._stop.wait()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
