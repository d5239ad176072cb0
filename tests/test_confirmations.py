"""The confirmation protocol's pieces: the controller's seq ranges, the agent's outbox deleting
what a BatchAck names, and the re-send schedule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.outbox import Outbox
from agent.publisher import _due, _Sent
from agent.settings import OutboxSettings
from collector.wire import BatchAck, TopicKind, decode, encode
from controller.ingest.confirm import ranges as _ranges


@given(st.dictionaries(st.integers(0, 5), st.lists(st.integers(0, 300), min_size=1), min_size=1))
def test_ranges_name_exactly_the_committed_seqs(boots: dict[int, list[int]]) -> None:
    ranges = _ranges(boots)
    covered = {(boot, seq) for boot, first, last in ranges for seq in range(first, last + 1)}
    assert covered == {(boot, seq) for boot, seqs in boots.items() for seq in seqs}
    # Maximal runs, in order, none overlapping or touching within a boot.
    for (b1, _f1, l1), (b2, f2, _l2) in itertools.pairwise(ranges):
        assert (b1, l1) < (b2, f2)
        assert b1 != b2 or f2 > l1 + 1
    ack = BatchAck(site_id="s", agent_id="a", sent_at=datetime.now(UTC), ranges=ranges[:10_000])
    _topic, decoded = decode(f"fernwart/v1/s/{TopicKind.ACK.value}", encode(ack))
    assert decoded == ack


async def test_confirm_deletes_only_the_named_rows(tmp_path: Path) -> None:
    settings = OutboxSettings.model_validate({"path": tmp_path / "outbox.db"})
    async with Outbox.open(settings) as outbox:
        ids = {}
        for _ in range(10):
            seq = outbox.next_seq()
            ids[seq] = await outbox.append(seq, b"x" * 10)
        boot = outbox.boot
        deleted = await outbox.confirm([(boot, 2, 4), (boot, 7, 7), (boot + 1, 0, 9)])
        assert sorted(deleted) == [ids[2], ids[3], ids[4], ids[7]]
        assert [row.seq for row in await outbox.read(limit=20)] == [0, 1, 5, 6, 8, 9]
        assert (outbox.rows, outbox.size_bytes) == (6, 60)
        assert await outbox.confirm([(boot, 2, 4)]) == []  # confirmed twice: nothing more
        assert outbox.rows == 6


def test_resends_back_off_up_to_the_cap() -> None:
    timeout, cap = 30.0, 600.0
    waits = []
    for times in range(1, 9):
        sent = _Sent(at=0.0, times=times)
        wait = next(t for t in range(10_000) if _due(sent, float(t), timeout, cap))
        waits.append(wait)
    assert waits == [30, 60, 120, 240, 480, 600, 600, 600]
