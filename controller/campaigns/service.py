"""The campaign runner as one task of the controller daemon (controller/service.py starts it).

Opens what the runner needs beside the store — an HTTP session for the customers' webhooks — and
runs :class:`~controller.campaigns.runner.CampaignRunner` until ``stop``. ``channel`` is the
signed-command channel (``controller.commands``); without one the runner still sends notices and
verifies reported versions, but starts no job.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from controller.campaigns.channel import CommandChannel
from controller.campaigns.notices import sender_from_settings
from controller.campaigns.runner import CampaignRunner
from controller.settings import ControllerSettings
from controller.storage import Store

log = structlog.get_logger(__name__)


async def run_campaigns(
    settings: ControllerSettings,
    store: Store,
    stop: asyncio.Event,
    channel: CommandChannel | None = None,
    registry: CollectorRegistry | None = None,
) -> CampaignRunner:
    """Run until ``stop``; returns the runner (for its ``on_result``, which the channel calls)."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.notices.timeout_s)
    ) as session:
        notices = sender_from_settings(settings.notices, session)
        runner = CampaignRunner(
            store,
            channel,
            notices,
            expected_duration=timedelta(seconds=settings.campaigns.expected_duration_s),
            tick_s=settings.campaigns.tick_s,
            registry=registry,
        )
        if channel is not None:
            channel.on_result(runner.on_result)
        log.info(
            "campaign_runner_started",
            channel=channel is not None,
            smtp=settings.notices.smtp_host is not None,
        )
        await runner.run(stop)
    return runner
