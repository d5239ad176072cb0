"""The controller daemon runs the command channel when its key is usable, and says once, naming
the key file, when it is not (then it runs without commands)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog

from controller import service
from controller.commands import create_key
from controller.settings import settings_from_dict
from tests.controller.conftest import (
    BrokerInfo,
    controller_config,
    init_database,
    wait_for_connection,
    wait_until,
)


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("with_key", [True, False])
async def test_the_daemon_runs_the_command_channel_when_it_has_a_key(
    broker: BrokerInfo, database_url: str, topic_prefix: str, tmp_path: Path, with_key: bool
) -> None:
    key_file = tmp_path / "keys" / "command.pem"
    if with_key:
        create_key(key_file)
    config = controller_config(broker, database_url, topic_prefix, commands={"key_file": str(key_file)})
    settings = settings_from_dict(config)
    await init_database(database_url)
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(service.run(settings, stop, handle_signals=False))
        try:
            await wait_for_connection(settings, task)
            if with_key:

                async def connected() -> bool:
                    return any(e["event"] == "command_channel_connected" for e in logs)

                await wait_until(connected, what="command channel")
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await task
    disabled = [e for e in logs if e["event"] == "commands_disabled"]
    if with_key:
        assert disabled == []
        pem = key_file.read_text()
        assert "".join(pem.splitlines()[1:-1]) not in repr(logs)
    else:
        assert len(disabled) == 1
        assert disabled[0]["reason"].startswith(f"commands.key_file: {key_file}: no such file")
