"""The systemd units: Type=notify, hardened, config errors not retried; `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import ShutdownSettings

ROOT = Path(__file__).resolve().parents[2]
UNITS = {
    "fernwart-agent.service": ("fernwart-agent", "/etc/fernwart/agent.toml"),
    "fernwart-controller.service": ("fernwart-controller", "/etc/fernwart/controller.toml"),
}

REQUIRED = {
    "Type": "notify",
    "Restart": "on-failure",
    "RestartPreventExitStatus": "78",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
    "User": "fernwart",
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections → key → every value (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_has_the_required_hardening(name: str) -> None:
    binary, config = UNITS[name]
    service = parse_unit(ROOT / "systemd" / name)["Service"]
    missing = {key: value for key, value in REQUIRED.items() if value not in service.get(key, [])}
    assert not missing, f"{name}: missing or different: {missing}"
    assert service["ExecStart"] == [f"/usr/bin/{binary} --config {config}"]
    assert service["StateDirectory"] == [binary]
    assert "@system-service" in service["SystemCallFilter"]
    assert "WatchdogSec" in service
    assert "fernwart" not in service.get("DynamicUser", ["no"])[0]  # a dedicated system user


def test_agent_stop_timeout_covers_the_drain() -> None:
    service = parse_unit(ROOT / "systemd" / "fernwart-agent.service")["Service"]
    (stop_timeout,) = service["TimeoutStopSec"]
    drain_max = ShutdownSettings.model_fields["drain_s"].metadata
    # drain_s is capped (le=8) below TimeoutStopSec, so systemd never kills a drain.
    caps = [getattr(m, "le", None) for m in drain_max if getattr(m, "le", None) is not None]
    assert caps
    assert int(stop_timeout) > caps[0]
    assert service["StateDirectory"] == ["fernwart-agent"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    binary, _ = UNITS[name]
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    local = Path(sys.executable).with_name(binary)
    if not local.exists():
        pytest.skip(f"{binary} is not installed in this environment")
    text = (ROOT / "systemd" / name).read_text().replace(f"/usr/bin/{binary}", str(local))
    unit = tmp_path / name
    unit.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    relevant = [line for line in proc.stderr.splitlines() if name in line]
    assert not relevant, "\n".join(relevant)
