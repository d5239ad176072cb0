"""A scripted aiohttp server on loopback for the HTTP layer's tests: each path answers from a
queue of canned responses (the last one repeats) and every request is recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Canned:
    status: int = 200
    body: Any = None  # dict → JSON; str → as is
    headers: dict[str, str] = field(default_factory=dict)
    hang: asyncio.Event | None = None  # wait for this before answering (a slow server)


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    form: dict[str, str]


class Script:
    def __init__(self) -> None:
        self.routes: dict[str, list[Canned]] = {}
        self.seen: list[Seen] = []

    def on(self, path: str, *responses: Canned) -> None:
        self.routes[path] = list(responses)

    def count(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path_qs.split("?")[0] == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = dict(await request.post()) if request.content_type.endswith("x-www-form-urlencoded") else {}
        self.seen.append(
            Seen(request.method, request.path_qs, dict(request.headers), {k: str(v) for k, v in form.items()})
        )
        queue = self.routes.get(request.path)
        if not queue:
            return web.json_response({"error": {"code": "NotFound", "message": "no route"}}, status=404)
        canned = queue.pop(0) if len(queue) > 1 else queue[0]
        if canned.hang is not None:
            await canned.hang.wait()
        if isinstance(canned.body, str):
            return web.Response(status=canned.status, text=canned.body, headers=canned.headers)
        if canned.body is None:
            return web.Response(status=canned.status, headers=canned.headers)
        return web.Response(
            status=canned.status,
            text=json.dumps(canned.body),
            headers={"Content-Type": "application/json", **canned.headers},
        )


@asynccontextmanager
async def scripted() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield script, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
