"""The daemon's campaign task takes the runner's step and the longest update from ``[campaigns]``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from controller.campaigns.service import run_campaigns
from controller.settings import settings_from_dict
from controller.storage import Store


async def test_the_runner_follows_the_campaigns_settings(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    settings = settings_from_dict(
        {"database": {"url": url}, "campaigns": {"tick_s": 0.5, "expected_duration_s": 10}}
    )
    stop = asyncio.Event()
    stop.set()  # one look at the settings, no step
    async with Store.open(url, create=True) as store:
        runner = await run_campaigns(settings, store, stop)
    assert runner.tick_s == 0.5
    assert runner.expected_duration == timedelta(seconds=10)
    defaults = settings_from_dict({"database": {"url": url}}).campaigns
    assert (defaults.tick_s, defaults.expected_duration_s) == (30.0, 1800.0)
