"""`fernwart demo` from the command line: every lab device shows up at the REST API, fully identified."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from lab.devices import lab_devices
from tests.fixtures.net import free_port

pytestmark = pytest.mark.slow


def _get(url: str, token: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})


def _token(state: Path) -> str:
    try:
        return (state / "admin.token").read_text().strip()
    except OSError:
        return ""


def _devices(url: str, token: str) -> dict[str, dict[str, object]]:
    if not token:
        return {}
    try:
        with urllib.request.urlopen(_get(f"{url}/api/v1/devices?limit=500", token), timeout=2) as response:
            body = json.load(response)
    except OSError:
        return {}
    return {item["device_id"]: item for item in body["items"]}


def test_demo_shows_every_lab_device_within_60s(tmp_path: Path) -> None:
    http_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fernwart_cli.main",
            "demo",
            "--state-dir",
            str(tmp_path / "demo"),
            "--http-port",
            str(http_port),
            "--broker-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    children: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{http_port}"
        wanted = {device.id: device for device in lab_devices()}
        assert len(wanted) >= 6
        deadline = time.monotonic() + 60
        seen: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            seen = _devices(url, _token(tmp_path / "demo"))
            if all(device_id in seen and seen[device_id]["firmware_version"] for device_id in wanted):
                break
            time.sleep(1)
        missing = sorted(set(wanted) - set(seen))
        assert not missing, f"not at the API within 60 s: {missing}"
        for device_id, device in wanted.items():
            row = seen[device_id]
            assert row["vendor"] == device.vendor, row
            assert row["model"] == device.model, row
            assert row["serial"] == device.serial, row
            assert row["firmware_version"] == device.firmware, row
        # The demo loads its advisory catalog: the Room Kit Pro on RoomOS 11.14 is affected.
        findings = _get(f"{url}/api/v1/findings?status=affected&limit=100", _token(tmp_path / "demo"))
        with urllib.request.urlopen(findings, timeout=5) as resp:
            affected = {(item["device_id"], item["advisory_id"]) for item in json.load(resp)["items"]}
        assert ("ber-konf-2-12", "cisco-sa-tce-roomos-dos-9V9jrC2q") in affected
        # `controller init` created the command key and the agent trusts its public key: the
        # demo's campaign can send the agent signed commands.
        state = tmp_path / "demo"
        shown = subprocess.run(
            [sys.executable, "-m", "fernwart_cli.main", "controller", "key", "show", "--config",
             str(state / "controller.toml")],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        public = shown.stdout.strip().splitlines()[-1]
        assert f'command_key = "{public}"' in (state / "agent.toml").read_text()
        controller_log = (state / "controller.log").read_text()
        assert "command_channel_connected" in controller_log
        assert "commands_disabled" not in controller_log
        # Anonymous callers get nothing.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/api/v1/devices", timeout=5)
        assert refused.value.code == 401
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # broker, snmpsim, controller, agent
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        leftover = [child for child in children if child.is_running() and child.status() != "zombie"]
        for child in leftover:
            child.kill()
    assert code == 0
    assert not leftover, f"demo left processes running: {leftover}"
