"""`fernwart discover` against a small simulated site (lab/site.py, real snmpsim on 127.0.20.0/29):
a switch whose LLDP table names three phones with SNMP off, two codecs answering SNMP, one
silent address. Everything is listed with how it was found, within the rate limit, and the
TOML output passes `fernwart-agent --check`."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.discover import RateLimiter
from collector.lldp.driver import LldpDriver
from collector.snmp import SnmpOptions
from lab.site import ANSWERING, CIDR, LLDP_ONLY, SILENT, SWITCH, running_site
from lab.snmpsim import SnmpSim

COMMUNITY = "site-c0mmunity-7f3a"  # must never appear in any output
RATE = 10.0


@pytest.fixture(scope="module")
def site() -> Iterator[list[SnmpSim]]:
    with running_site(COMMUNITY) as sims:
        yield sims


def _discover(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fernwart_cli.main", "discover", "--cidr", CIDR, "--port", str(port),
         "--community", COMMUNITY, "--rate", str(RATE), "--concurrency", "4",
         "--timeout", "0.5", "--retries", "0", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_discover_lists_the_site_with_how_each_was_found(site: list[SnmpSim]) -> None:
    result = _discover(site[0].port, "--json")
    assert result.returncode == 0, result.stderr
    assert COMMUNITY not in result.stdout + result.stderr
    found = {item["address"]: item for item in json.loads(result.stdout)}
    assert set(found) == set(ANSWERING) | set(LLDP_ONLY)  # the silent address is not a device
    assert SILENT not in found
    assert found[SWITCH]["how"] == ["snmp"]
    assert found[SWITCH]["lldp_neighbours"] == 4
    assert found[SWITCH]["device"]["kind"] == "lldp"
    codec = found["127.0.20.2"]  # the Room Kit Pro also announces itself to the switch
    assert codec["how"] == ["snmp", f"lldp:{SWITCH}"]
    assert (codec["id"], codec["identification"]["model"]) == ("ber-konf-2-12", "Cisco Room Kit Pro")
    assert found["127.0.20.3"]["how"] == ["snmp"]
    assert found["127.0.20.3"]["device"]["kind"] == "snmp"
    for address, device_id in LLDP_ONLY.items():
        phone = found[address]
        assert (phone["id"], phone["how"], phone["snmp"], phone["device"]) == (
            device_id, [f"lldp:{SWITCH}"], False, None)  # fmt: skip
    assert [found[a]["identification"]["vendor"] for a in LLDP_ONLY] == ["cisco", "poly", "yealink"]
    assert found["127.0.20.5"]["identification"]["model"] == "CP-8851"

    # The rate limit, checked as a lower bound (a correctness check, not a speed threshold): n
    # requests spaced by a token bucket of depth 1 cannot take less than (n - 1) / rate seconds.
    summary = result.stderr.splitlines()[-1]
    requests = int(summary.split(" request(s) in ")[0].rsplit(" ", 1)[1])
    elapsed = float(summary.split(" request(s) in ")[1].split(" s ")[0])
    assert requests == 6 + 3 + 1  # a GET per address, a walk per answering device, one more page
    assert elapsed >= (requests - 1) / RATE - 0.01  # 0.01: the summary rounds to 10 ms


def test_toml_output_passes_the_agent_check(site: list[SnmpSim], tmp_path: Path) -> None:
    result = _discover(site[0].port, "--toml", "--with-header", "--site-id", "ber-hq")
    assert result.returncode == 0, result.stderr
    assert COMMUNITY not in result.stdout + result.stderr
    assert 'community = { credential = "snmp-community" }' in result.stdout
    for device_id in LLDP_ONLY.values():  # listed, as comments: they cannot be polled
        assert f"#   {device_id} " in result.stdout
    config = tmp_path / "agent.toml"
    config.write_text(result.stdout)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "snmp-community").write_text(COMMUNITY + "\n")
    check = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"CREDENTIALS_DIRECTORY": str(credentials), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    without = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "--check"],
        capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert without.returncode == 78  # the entries really refer to the credential


async def test_the_lldp_driver_reports_the_switch_and_its_neighbours(site: list[SnmpSim]) -> None:
    options = SnmpOptions(host=SWITCH, port=site[0].port, community=COMMUNITY, timeout_s=2, retries=1)
    driver = LldpDriver("ber-sw-acc-01", options)
    async with asyncio.timeout(30):
        switch = await driver.collect()
    await driver.aclose()
    assert (switch.identity.hostname, switch.metrics["lldp_neighbours"], switch.errors) == (
        "ber-sw-acc-01",
        4,
        [],
    )
    neighbours = {obs.device_id: obs for obs in driver.neighbours()}
    assert driver.neighbours() == []  # taken once
    assert set(neighbours) == {"ber-konf-2-12", *LLDP_ONLY.values()}
    phone = neighbours["sep5ca62d0088a1"]
    assert (phone.reachable, phone.health.status, phone.raw["seen_via"]) == (
        False,
        "unknown",
        "lldp:ber-sw-acc-01",
    )
    assert phone.identity.macs == ["5c:a6:2d:00:88:a1"]
    assert phone.firmware_version() == "sip88xx.14-2-1MPP"
    assert phone.raw["lldpRemManAddr"] == "127.0.20.5"


async def test_the_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    starts: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds  # a fake clock: waits are exact, so this checks the arithmetic only

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(9):
        await limiter.acquire()
        starts.append(now[0])
    assert limiter.acquired == 9
    assert starts[-1] == pytest.approx(2.0)  # (9 - 1) / 4
    assert all(b - a == pytest.approx(0.25) for a, b in itertools.pairwise(starts))
