"""The poller: failures become down observations, transitions are logged once, a dead device
does not hold up the others, AuthFailed stops polling."""

from __future__ import annotations

import asyncio

import structlog

from agent.metrics import AgentMetrics
from agent.poller import Poller
from collector.model import HealthStatus, Observation
from collector.sources import DriverSource
from tests.agent.drivers import CountingDriver, CountingOptions


def make_poller(
    device_id: str,
    out: list[Observation],
    metrics: AgentMetrics,
    *,
    fail: str | None = None,
    interval_s: float = 0.05,
    timeout_s: float = 1.0,
    semaphore: asyncio.Semaphore | None = None,
) -> tuple[Poller, CountingDriver]:
    driver = CountingDriver(device_id, CountingOptions(fail=fail))
    poller = Poller(
        device_id,
        "counting",
        DriverSource(device_id, driver),
        interval_s=interval_s,
        timeout_s=timeout_s,
        jitter_fraction=0.1,
        semaphore=semaphore or asyncio.Semaphore(10),
        emit=out.append,
        metrics=metrics,
    )
    return poller, driver


async def until(predicate: object, timeout_s: float = 10) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_unreachable_emits_down_observation_and_logs_once_per_transition() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, driver = make_poller("d1", out, metrics, fail="unreachable")
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert await poller.poll_once()
        driver.options = CountingOptions()
        for _ in range(2):
            assert await poller.poll_once()
    assert [o.reachable for o in out] == [False, False, False, True, True]
    down = out[0]
    assert down.health.status is HealthStatus.DOWN
    assert down.health.reasons[0].code == "unreachable"
    assert "no answer" in down.health.reasons[0].message
    events = [e["event"] for e in logs if e["log_level"] != "debug"]
    assert events == ["device_unreachable", "device_recovered"]
    assert metrics.value("fernwart_polls_total", result="unreachable") == 3
    assert metrics.value("fernwart_polls_total", result="ok") == 2


async def test_auth_failed_stops_polling() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, driver = make_poller("d1", out, metrics, fail="auth")
    stop = asyncio.Event()
    async with asyncio.timeout(10):
        await poller.run(stop)  # returns by itself
    assert driver.polls == 1
    assert poller.stopped_reason == "auth_failed"
    (obs,) = out
    assert not obs.reachable
    assert obs.health.reasons[0].code == "auth_failed"


async def test_driver_bug_is_counted_and_polling_continues() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, _ = make_poller("d1", out, metrics, fail="crash")
    assert await poller.poll_once()
    assert await poller.poll_once()
    assert [o.health.reasons[0].code for o in out] == ["driver_error", "driver_error"]
    assert metrics.value("fernwart_polls_total", result="error") == 2


async def test_dead_device_does_not_delay_the_others() -> None:
    """A hanging device times out on its own deadline while the healthy ones keep their pace,
    even with a single concurrency slot shared by all."""
    metrics = AgentMetrics()
    out: list[Observation] = []
    semaphore = asyncio.Semaphore(2)
    dead, _ = make_poller("dead", out, metrics, fail="hang", timeout_s=0.2, semaphore=semaphore)
    healthy = [make_poller(f"ok{i}", out, metrics, semaphore=semaphore)[0] for i in range(3)]
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        for poller in [dead, *healthy]:
            tg.create_task(poller.run(stop))

        def enough() -> bool:
            ok = [o for o in out if o.reachable]
            down = [o for o in out if not o.reachable]
            return len(down) >= 2 and all(sum(o.device_id == p.device_id for o in ok) >= 10 for p in healthy)

        await until(enough)
        stop.set()
    down = [o for o in out if o.device_id == "dead"]
    assert all(o.health.reasons[0].message == "no answer within 0.2 s" for o in down)
    assert metrics.value("fernwart_polls_total", result="timeout") == len(down)


async def test_stop_during_wait_returns_promptly() -> None:
    metrics = AgentMetrics()
    out: list[Observation] = []
    poller, driver = make_poller("d1", out, metrics, interval_s=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert driver.polls == 0  # the first poll was spread over the hour, and never came
