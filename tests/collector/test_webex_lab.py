"""The demo's Cisco lab: its [[sources]] text validates against the sources' options, and its
org upgrades rooms (one fails) the way the demo shows."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from collector.registry import load_driver
from lab.fakes.cisco_lab import DEMO_ENV, NEXT_ROOMOS, agent_sources, demo_org
from runtime.secrets import resolve_secrets


def test_demo_sources_validate_with_their_env_references(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DEMO_ENV.items():
        monkeypatch.setenv(key, value)
    config = tomllib.loads(agent_sources(18931, 18932, 15.0))
    resolved, problems = resolve_secrets(config)
    assert problems == {}
    kinds = []
    for entry in resolved["sources"]:
        factory = load_driver(entry["kind"])
        options = factory.options_model.model_validate(entry["options"])
        kinds.append(entry["kind"])
        for value in DEMO_ENV.values():
            assert value not in options.model_dump_json()
    assert kinds == ["webex", "xapi"]
    # The file itself holds references only, never the values.
    assert not any(value in agent_sources(1, 2, 15.0) for value in DEMO_ENV.values())


def test_demo_org_upgrades_rooms_and_the_first_one_fails() -> None:
    org = demo_org(3, 1)
    rooms = [d for d in org.devices.values() if d.has_xapi]
    assert [d.next_software for d in rooms] == [NEXT_ROOMOS] * 3
    assert [d.upgrade_fails for d in rooms] == [True, False, False]
    assert len(org.calling) == 1


def test_the_cisco_lab_binds_ports_of_its_own_and_says_which(tmp_path: Path) -> None:
    # The demo used to pick two free ports and pass them: on a shared machine another process took
    # one in between and the demo failed with "address already in use". Now the lab binds port 0.
    info = tmp_path / "cisco-lab.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.fakes.cisco_lab", "--info-file", str(info)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if info.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert info.exists(), proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
        ports = json.loads(info.read_text(encoding="utf-8"))
        assert set(ports) == {"webex_port", "codec_port"}
        assert 0 not in ports.values()
        for port in ports.values():
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
    finally:
        proc.terminate()
        proc.wait(timeout=30)
