"""Contract test of collector.snmp.gufo_adapter against a real snmpd: the private walk returns what
gufo's public GETBULK iterator returns, over several responses and at every end condition."""

from __future__ import annotations

import asyncio
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from gufo.snmp import ValueType
from gufo.snmp.aio import SnmpSession

from collector.snmp import gufo_adapter
from tests.fixtures.snmpd import COMMUNITY, SnmpdAgent

ROOT = Path(__file__).resolve().parents[2]


def test_written_for_the_installed_version_and_the_pin() -> None:
    assert {name: version(name) for name in gufo_adapter.WRITTEN_FOR} == dict(gufo_adapter.WRITTEN_FOR)
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, expected in gufo_adapter.WRITTEN_FOR.items():
        assert f"{name}=={expected}" in pins


def test_another_version_fails_loudly() -> None:
    with pytest.raises(gufo_adapter.AdapterVersionError, match=r"gufo-snmp 0\.14\.0 \(written for 0\.13"):
        gufo_adapter.check_versions({"gufo-snmp": "0.14.0"})


async def _public_walk(session: SnmpSession, oid: str) -> list[tuple[str, ValueType]]:
    return [item async for item in session.getbulk(oid)]


@pytest.mark.parametrize(
    ("oid", "what"),
    [
        ("1.3.6.1.2.1.2.2", "the interfaces table: several responses, then the walk leaves the subtree"),
        ("1.3.6.1.2.1.1", "the system group"),
        ("1.3.6.1.6.3.15.1.1", "a subtree near the end of the view"),
        ("1.3.6.1.2.1.99", "an empty subtree"),
    ],
)
async def test_bulk_walk_matches_gufos_getbulk(snmpd: SnmpdAgent, oid: str, what: str) -> None:
    session = SnmpSession(snmpd.host, snmpd.port, community=COMMUNITY, timeout=2, max_repetitions=2)
    async with asyncio.timeout(20):
        ours = await gufo_adapter.bulk_walk(session, oid, 2)
        theirs = await _public_walk(session, oid)
    assert ours == theirs, what
    if "empty" not in what:
        assert len(ours) > 2, what  # more than one response of max_repetitions=2


async def test_bulk_walk_to_the_end_of_the_mib_view(snmpd: SnmpdAgent) -> None:
    session = SnmpSession(snmpd.host, snmpd.port, community=COMMUNITY, timeout=2, max_repetitions=25)
    async with asyncio.timeout(60):
        ours = await gufo_adapter.bulk_walk(session, "1.3.6.1.6", 25)
        theirs = await _public_walk(session, "1.3.6.1.6")
    assert ours == theirs
