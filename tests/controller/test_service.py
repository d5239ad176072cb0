"""The daemon's lifecycle: sd_notify READY/STOPPING, SIGTERM → exit 0."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import pytest

from tests.controller.conftest import BrokerInfo, controller_config
from tests.controller.test_sigkill import ControllerProcess, to_toml


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_notify_ready_then_stopping_and_sigterm_exits_0(
    broker: BrokerInfo, database_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    config = controller_config(broker, database_url, topic_prefix)
    (tmp_path / "c.toml").write_text(to_toml(config))
    with tempfile.TemporaryDirectory(prefix="fw-") as short:  # AF_UNIX paths are short
        address = f"{short}/notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            sock.setblocking(False)  # noqa: FBT003 (socket API)
            ctl = ControllerProcess(
                tmp_path / "c.toml",
                tmp_path / "c.log",
                f"http://127.0.0.1:{config['http']['port']}",
                env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"},
            )
            ctl.start()
            try:
                loop = asyncio.get_running_loop()
                states: list[str] = []
                async with asyncio.timeout(60):
                    while "READY=1" not in states:
                        states.append((await loop.sock_recv(sock, 256)).decode())
                await ctl.wait_connected()
            finally:
                code = ctl.terminate()
            assert code == 0, ctl.log_path.read_text()[-2000:]
            async with asyncio.timeout(10):
                while "STOPPING=1" not in states:
                    states.append((await loop.sock_recv(sock, 256)).decode())
    assert states.index("READY=1") < states.index("STOPPING=1")
    assert "WATCHDOG=1" in states
