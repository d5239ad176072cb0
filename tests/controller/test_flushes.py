"""How the ingest writer groups gathered chunks into flushes: everything waiting, in order, never
more than max_batch_messages (unless one chunk alone is that large), nothing left behind at the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from controller.ingest.session import Ingest, _Pending
from controller.metrics import Metrics
from controller.settings import settings_from_dict

LIMIT = 10


def _ingest() -> Ingest:
    settings = settings_from_dict({"ingest": {"max_batch_messages": LIMIT, "decode_workers": 0}})
    store = cast("Any", SimpleNamespace(dialect="sqlite"))  # _next_flush never writes
    return Ingest(settings, store, Metrics())


def _chunk(name: str, size: int) -> _Pending:
    messages = cast("Any", [f"{name}{i}" for i in range(size)])
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result([])
    return _Pending([], done, datetime.now(UTC), messages)


async def _flushes(sizes: list[int]) -> list[list[str]]:
    """Queue chunks of ``sizes`` and the end marker; return the flushes the writer would write."""
    ingest = _ingest()
    chunks: asyncio.Queue[_Pending | None] = asyncio.Queue()
    for n, size in enumerate(sizes):
        chunks.put_nowait(_chunk(f"c{n}.", size))
    chunks.put_nowait(None)
    flushes: list[list[str]] = []
    carry: _Pending | None = None
    ending = False
    while not ending:
        flush, carry, ending = await ingest._next_flush(chunks, carry)
        if flush:
            flushes.append([str(m) for chunk in flush for m in chunk.messages])
    assert carry is None
    return flushes


async def test_waiting_chunks_go_into_one_flush_up_to_the_limit() -> None:
    flushes = await _flushes([3, 3, 3, 3, 12, 1])
    assert [len(f) for f in flushes] == [9, 3, 12, 1]
    # in arrival order, nothing lost or doubled
    assert [m for f in flushes for m in f] == [
        f"c{n}.{i}" for n, s in enumerate([3, 3, 3, 3, 12, 1]) for i in range(s)
    ]


async def test_a_lone_chunk_is_written_as_it_is() -> None:
    assert await _flushes([4]) == [["c0.0", "c0.1", "c0.2", "c0.3"]]
    assert await _flushes([]) == []


async def test_the_writer_takes_what_arrived_while_it_was_busy() -> None:
    ingest = _ingest()
    chunks: asyncio.Queue[_Pending | None] = asyncio.Queue()
    chunks.put_nowait(_chunk("a", 2))
    first, carry, ending = await ingest._next_flush(chunks, None)
    assert [len(c.messages) for c in first] == [2]
    assert carry is None
    assert not ending
    for name in "bcd":  # arrive while the first flush is written
        chunks.put_nowait(_chunk(name, 2))
    second, carry, ending = await ingest._next_flush(chunks, None)
    assert [str(c.messages[0]) for c in second] == ["b0", "c0", "d0"]
    assert carry is None
    assert not ending
