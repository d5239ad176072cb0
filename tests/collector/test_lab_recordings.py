"""Every lab recording, served by the real snmpsim, is identified as the lab says it is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from collector.snmp import SnmpDriver, SnmpOptions
from firmware_catalog.versions import parse_version
from lab.devices import LAB_DEVICES, LabDevice, lab_devices
from lab.snmpsim import SnmpSim, running_snmpsim


@pytest.fixture(scope="module")
def snmpsim() -> Iterator[SnmpSim]:
    with running_snmpsim() as sim:
        yield sim


def test_the_lab_has_the_devices_the_demo_needs() -> None:
    devices = lab_devices()
    assert len(devices) == len(LAB_DEVICES) >= 6
    assert len({d.id for d in devices}) == len({d.community for d in devices}) == len(devices)
    families = {(d.vendor, d.family) for d in devices}
    assert {
        ("cisco", "roomos"),
        ("cisco", "ce"),
        ("cisco", "mpp"),
        ("yealink", "yealink"),
        ("poly", "poly"),
    } <= families


@pytest.mark.parametrize("device", LAB_DEVICES, ids=lambda d: d.id)
async def test_lab_device_is_identified(snmpsim: SnmpSim, device: LabDevice) -> None:
    options = SnmpOptions(
        host=snmpsim.host, port=snmpsim.port, community=device.community, timeout_s=2, retries=2
    )
    driver = SnmpDriver(device.id, options)
    async with asyncio.timeout(30):
        obs = await driver.collect()
    await driver.aclose()
    assert obs.errors == []
    identity = obs.identity
    assert (identity.vendor, identity.family, identity.model, identity.serial) == (
        device.vendor,
        device.family,
        device.model,
        device.serial,
    )
    assert obs.firmware_version() == device.firmware
    assert obs.software[0].scheme == device.scheme
    # The firmware catalog reads what the driver reports, in the scheme the driver names.
    assert parse_version(device.scheme, device.firmware)
    assert identity.hostname
    assert obs.uptime_s is not None
    assert obs.uptime_s > 0
    assert "\n" in obs.raw["sysDescr"] or device.family not in {"roomos", "ce"}
    if device.family in {"roomos", "ce"}:
        assert obs.interfaces == []  # system group only, and that is normal
    else:
        assert obs.interfaces
        assert identity.macs
