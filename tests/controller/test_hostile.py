"""1,000 malformed or hostile payloads: each rejected and counted by reason, valid ones keep flowing."""

from __future__ import annotations

import json
import random
from collections import Counter

import aiohttp
import sqlalchemy as sa

from collector.wire import AgentState, encode
from collector.wire.topics import TopicKind
from controller.storage import models as m
from tests.controller.conftest import (
    TEST_SITES,
    Harness,
    make_batch,
    make_observation,
    make_status,
    wait_until,
)

TEN_MB = 10 * 1024 * 1024


def _hostile(h: Harness, i: int, rng: random.Random) -> tuple[str, bytes | str, str]:  # noqa: C901 (one case per kind)
    """The i-th bad message: (topic, payload, expected reason code)."""
    good = json.loads(encode(make_batch("site-1", "agent-1", 10_000 + i, [make_observation("dev-x")])))
    obs_topic = h.topic("site-1")
    match i % 12:
        case 0:
            return obs_topic, b"{not json" + rng.randbytes(rng.randint(0, 64)), "bad_json"
        case 1:
            good["seq"] = "seventeen"
            return obs_topic, json.dumps(good), "invalid"
        case 2:
            good["observations"][0]["observed_at"] = 12
            good["observations"][0]["metrics"] = {"x": "NaN-ish"}
            return obs_topic, json.dumps(good), "invalid"
        case 3:
            return h.topic("site-2"), json.dumps(good), "site_mismatch"
        case 4:
            good["schema"] = 2
            return obs_topic, json.dumps(good), "unknown_schema"
        case 5:
            good["agent_id"] = "agent-evil"
            return obs_topic, json.dumps(good), "agent_mismatch"
        case 6:
            return obs_topic, json.dumps([good]), "invalid"
        case 7:
            good["type"] = "status"
            return obs_topic, json.dumps(good), "wrong_type"
        case 9:  # a site nobody enrolled: no longer claimed by its first message
            good["site_id"] = "site-unclaimed"
            return h.topic("site-unclaimed"), json.dumps(good), "not_enrolled"
        case 10:  # would pin dev-x's firmware: a device row only moves forward in time
            good["observations"][0]["observed_at"] = "2099-01-01T00:00:00Z"
            return obs_topic, json.dumps(good), "future_timestamp"
        case 11:  # a retained "offline" for the live agent, from someone posing as another agent
            forged = make_status("site-1", "agent-evil", state=AgentState.OFFLINE)
            return h.topic("site-1", TopicKind.STATUS), encode(forged), "agent_mismatch"
        case _:
            return f"{h.prefix}/bad site!/obs", json.dumps(good), "bad_topic"


async def test_hostile_payloads_are_rejected_and_counted_while_valid_ones_flow(make_harness) -> None:
    h = await make_harness()
    rng = random.Random(7)
    await h.send_status(make_status("site-1", "agent-1"))
    expected: Counter[str] = Counter()
    valid = 0
    for i in range(997):
        topic, payload, reason = _hostile(h, i, rng)
        await h.publish_raw(topic, payload)
        expected[reason] += 1
        if i % 10 == 0:
            await h.send_batch(make_batch("site-1", "agent-1", valid, [make_observation(f"dev-{valid % 7}")]))
            valid += 1
    for _ in range(3):  # 10 MB bodies
        await h.publish_raw(h.topic("site-1"), b"{" + b" " * TEN_MB + b"}")
        expected["too_large"] += 1
    await h.send_batch(make_batch("site-1", "agent-1", valid, [make_observation("dev-last")]))
    valid += 1
    assert sum(expected.values()) == 1000

    async def all_dead() -> bool:
        return sum((await h.store.dead_letter_counts()).values()) >= 1000

    await wait_until(all_dead, timeout_s=120, what="1,000 dead letters")

    async def all_valid() -> bool:
        return await h.store.count(m.BATCHES) >= valid

    await wait_until(all_valid, what=f"{valid} valid batches")
    assert await h.store.dead_letter_counts() == dict(expected)
    assert await h.store.count(m.BATCHES) == valid
    assert await h.store.count(m.OBSERVATIONS) == valid
    async with aiohttp.ClientSession(headers=h.auth) as session, session.get(h.http_url + "/metrics") as resp:
        text = await resp.text()
    counted = {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("fernwart_ingest_rejected_total{")
    }
    assert {reason: int(n) for reason, n in counted.items() if n} == dict(expected)
    assert [(a["agent_id"], a["state"]) for a in await h.store.list_agents()] == [("agent-1", "online")]
    assert await h.store.count(m.SITES) == len(TEST_SITES)  # nothing claimed a site
    # Dead letters keep a bounded prefix of the payload and its original size.
    async with h.store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(m.DEAD_LETTERS.c.size, sa.func.length(m.DEAD_LETTERS.c.payload)).where(
                    m.DEAD_LETTERS.c.reason_code == "too_large"
                )
            )
        ).first()
    assert row is not None
    assert row[0] == TEN_MB + 2
    assert row[1] == 64 * 1024
