"""`fernwart probe snmp` reports what net-snmp's own snmpget/snmpbulkwalk see on the same agent."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.net import free_port
from tests.fixtures.snmpd import COMMUNITY, SnmpdAgent

SNMPGET = shutil.which("snmpget") or "/usr/bin/snmpget"
SNMPBULKWALK = shutil.which("snmpbulkwalk") or "/usr/bin/snmpbulkwalk"
# numeric OIDs, numeric enums, raw timeticks, "OID value" lines
NETSNMP_OUTPUT = ["-On", "-Oe", "-Ot", "-Oq", "-t", "5", "-r", "1"]
IF_COLUMNS = {
    2: "descr",
    3: "type",
    4: "mtu",
    5: "speed_bps",
    6: "mac",
    7: "admin_up",
    8: "oper_up",
    10: "in_octets",
    14: "in_errors",
    16: "out_octets",
    20: "out_errors",
}

CREDENTIALS = {
    "v2c": (["-v2c", "-c", COMMUNITY], ["--community", COMMUNITY]),
    "v3-authPriv-SHA-AES": (
        [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "fw-priv",
            "-a",
            "SHA",
            "-A",
            "fw-auth-secret",
            "-x",
            "AES",
            "-X",
            "fw-priv-secret",
        ],
        [
            "--user",
            "fw-priv",
            "--auth-proto",
            "SHA",
            "--auth-key",
            "fw-auth-secret",
            "--priv-proto",
            "AES",
            "--priv-key",
            "fw-priv-secret",
        ],
    ),
}


def _netsnmp_value(text: str) -> str:
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def _netsnmp(tool: str, agent: SnmpdAgent, credentials: list[str], *oids: str) -> dict[str, str]:
    out = subprocess.run(
        [tool, *credentials, *NETSNMP_OUTPUT, agent.target, *oids],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    values = {}
    for line in out.splitlines():
        oid, _, value = line.partition(" ")
        values[oid.lstrip(".")] = _netsnmp_value(value)
    return values


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fernwart_cli.main", "probe", "snmp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("security", sorted(CREDENTIALS))
def test_probe_matches_netsnmp(snmpd: SnmpdAgent, security: str) -> None:
    netsnmp_credentials, probe_credentials = CREDENTIALS[security]
    result = _probe(snmpd.target, *probe_credentials)
    assert result.returncode == 0, result.stderr
    obs: dict[str, Any] = json.loads(result.stdout)

    system = _netsnmp(
        SNMPGET,
        snmpd,
        netsnmp_credentials,
        "1.3.6.1.2.1.1.5.0",
        "1.3.6.1.2.1.1.1.0",
        "1.3.6.1.2.1.1.3.0",
        "1.3.6.1.2.1.1.2.0",
    )
    assert obs["identity"]["hostname"] == system["1.3.6.1.2.1.1.5.0"]
    assert obs["raw"]["sysDescr"] == system["1.3.6.1.2.1.1.1.0"]
    assert obs["uptime_s"] == int(system["1.3.6.1.2.1.1.3.0"]) / 100
    assert "." + obs["raw"]["sysObjectID"] == system["1.3.6.1.2.1.1.2.0"]

    walked = _netsnmp(SNMPBULKWALK, snmpd, netsnmp_credentials, "1.3.6.1.2.1.2.2.1")
    expected: dict[int, dict[str, Any]] = {}
    for oid, value in walked.items():
        column, index = (int(part) for part in oid.split(".")[-2:])
        name = IF_COLUMNS.get(column)
        if name is None:
            continue
        row = expected.setdefault(index, {"index": index})
        if name == "descr":
            row[name] = value
        elif name == "mac":
            octets = bytes.fromhex(value)
            row[name] = ":".join(f"{o:02x}" for o in octets)
        elif name in {"admin_up", "oper_up"}:
            row[name] = int(value) == 1
        else:
            row[name] = int(value)
    assert len(expected) == 2
    got = {iface["index"]: {k: iface[k] for k in expected[iface["index"]]} for iface in obs["interfaces"]}
    assert got == expected


def test_probe_exit_codes(snmpd: SnmpdAgent) -> None:
    refused = _probe(
        snmpd.target, "--user", "fw-priv", "--auth-key", "wrong-auth-key", "--priv-key", "fw-priv-secret"
    )
    assert refused.returncode == 77
    assert "credentials refused" in refused.stderr
    assert "wrong-auth-key" not in refused.stderr

    silent = _probe(
        f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "--community", "x", "--timeout", "0.2", "--retries", "0"
    )
    assert silent.returncode == 69
    assert "unreachable" in silent.stderr

    invalid = _probe(snmpd.target)
    assert invalid.returncode == 78
    assert "either community" in invalid.stderr


def test_a_wrong_community_names_the_likely_causes(snmpd: SnmpdAgent) -> None:
    wrong = _probe(snmpd.target, "--community", "not-the-community", "--timeout", "0.3", "--retries", "0")
    assert wrong.returncode == 69
    lines = wrong.stderr.splitlines()
    assert any("no answer" in line for line in lines)
    causes = next(line for line in lines if "likely causes" in line)
    for cause in ("wrong community", "ACL", "udp port"):
        assert cause in causes
    assert "not-the-community" not in wrong.stderr


def test_invalid_options_carry_no_pydantic_prefix(snmpd: SnmpdAgent) -> None:
    both = _probe(snmpd.target, "--community", "c", "--user", "u", "--auth-key", "k" * 8)
    assert both.returncode == 78
    assert "either community" in both.stderr
    assert "Value error" not in both.stderr


# As issue 13 saw it from a real net-snmp agent: the codec's line breaks arrived as spaces.
ONE_LINE_CODEC = (
    "Cisco Codec SoftW: RoomOS 11.17.1.7 2c3f1a9b0e4 MCU: Cisco Room Kit Pro"  # noqa: ISC003
    + " Date: 2024-07-15 S/N: FOC2433P1DK"
)


def test_probe_identifies_a_codec_whose_line_breaks_became_spaces(
    snmpd_factory: Callable[..., SnmpdAgent],
) -> None:
    tree = (
        ("1.3.6.1.2.1.1.1.0", "octet_str", f'"{ONE_LINE_CODEC}"'),
        ("1.3.6.1.2.1.1.2.0", "object_id", ".1.3.6.1.4.1.5596.150.6.4.1"),
        ("1.3.6.1.2.1.1.3.0", "timeticks", "100"),
        ("1.3.6.1.2.1.1.5.0", "octet_str", '"ham-desk-4-07"'),
    )
    agent = snmpd_factory(overrides=tree)
    result = _probe(agent.target, "--community", COMMUNITY, "--no-entity", "--no-interfaces")
    assert result.returncode == 0, result.stderr
    obs: dict[str, Any] = json.loads(result.stdout)
    assert obs["raw"]["sysDescr"] == ONE_LINE_CODEC
    identity = obs["identity"]
    assert (identity["vendor"], identity["family"], identity["model"], identity["serial"]) == (
        "cisco",
        "roomos",
        "Cisco Room Kit Pro",
        "FOC2433P1DK",
    )
    assert obs["software"] == [{"name": "firmware", "version": "RoomOS 11.17.1.7", "scheme": "cisco-roomos"}]
    assert obs["raw"]["build"] == "2c3f1a9b0e4"
    assert obs["raw"]["fingerprint"] == "cisco/codec-roomos"
    assert "not identified" not in result.stderr


def test_probe_says_why_a_device_is_unknown(snmpd_factory: Callable[..., SnmpdAgent]) -> None:
    # A MikroTik board that answers just "router" (librenms/librenms tests/snmpsim/routeros.snmprec).
    tree = (
        ("1.3.6.1.2.1.1.1.0", "octet_str", '"router"'),
        ("1.3.6.1.2.1.1.2.0", "object_id", ".1.3.6.1.4.1.14988.1"),
    )
    agent = snmpd_factory(overrides=tree)
    result = _probe(agent.target, "--community", COMMUNITY, "--no-entity", "--no-interfaces")
    assert result.returncode == 0, result.stderr
    obs: dict[str, Any] = json.loads(result.stdout)
    assert (obs["identity"]["vendor"], obs["identity"]["family"]) == ("mikrotik", "unknown")
    assert "enterprise 14988 (MikroTik) belongs to mikrotik" in obs["raw"]["identification"]
    assert "sysDescr 'router'" in obs["raw"]["identification"]
    assert f"not identified: {obs['raw']['identification']}" in result.stderr
