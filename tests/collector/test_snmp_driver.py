"""The SNMP driver against a real net-snmp snmpd on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from collector.errors import AuthFailed, Unreachable
from collector.model import HealthStatus
from collector.snmp import SnmpDriver, SnmpOptions
from tests.fixtures.net import free_port
from tests.fixtures.snmpd import COMMUNITY, SnmpdAgent


def _driver(agent: SnmpdAgent, **options: object) -> SnmpDriver:
    base: dict[str, object] = {"host": agent.host, "port": agent.port, "timeout_s": 1.0, "retries": 1}
    base.update(options)
    return SnmpDriver("dev-1", SnmpOptions.model_validate(base))


async def _collect(driver: SnmpDriver):
    async with asyncio.timeout(20):
        try:
            return await driver.collect()
        finally:
            await driver.aclose()


async def test_v2c_reads_system_entity_and_interfaces(snmpd: SnmpdAgent) -> None:
    obs = await _collect(_driver(snmpd, community=COMMUNITY))
    assert obs.device_id == "dev-1"
    assert obs.driver == "snmp"
    assert obs.errors == []
    assert obs.identity.vendor == "cisco"
    assert obs.identity.family == "mpp"
    assert obs.identity.model == "CP-8851"
    assert obs.identity.serial == "FCH2402A0B1"
    assert obs.identity.hostname == "SEP5CA62D0000A1"
    assert obs.identity.location == "MUC Building 3, Room 3.01"
    assert obs.identity.macs == ["5c:a6:2d:00:00:a1", "5c:a6:2d:00:00:a2"]
    assert obs.firmware_version() == "sip88xx.14-2-1MPP"
    assert obs.software[0].scheme == "cisco-mpp"
    assert obs.raw["entPhysicalSoftwareRev"] == "sip88xx.14-2-1MPP0001-272"
    assert obs.uptime_s == 482113.0
    assert obs.raw["sysObjectID"] == "1.3.6.1.4.1.9.1.1735"
    assert obs.raw["entPhysicalModelName"] == "CP-8851-3PCC"
    lan, pc = obs.interfaces
    assert (lan.index, lan.descr, lan.type, lan.mtu, lan.speed_bps) == (1, "LAN", 6, 1500, 1_000_000_000)
    assert (lan.admin_up, lan.oper_up, lan.in_octets, lan.out_octets) == (True, True, 3822019911, 2911837710)
    assert lan.in_errors == 3
    assert (pc.admin_up, pc.oper_up) == (True, False)
    assert obs.health.status is HealthStatus.OK
    assert [r.code for r in obs.health.reasons] == ["interface_down"]


@pytest.mark.parametrize(
    ("user", "extra"),
    [
        ("fw-priv", {"auth_proto": "SHA", "priv_proto": "AES"}),
        ("fw-auth", {"auth_proto": "SHA"}),
        ("fw-noauth", {}),
    ],
)
async def test_v3_security_levels(snmpd: SnmpdAgent, user: str, extra: dict[str, str]) -> None:
    spec = snmpd.user(user)
    options: dict[str, object] = {"user": user, **extra}
    if spec.auth_key:
        options["auth_key"] = spec.auth_key
    if spec.priv_key:
        options["priv_key"] = spec.priv_key
    driver = _driver(snmpd, **options)
    async with asyncio.timeout(20):
        first = await driver.collect()
        second = await driver.collect()  # the kept v3 session is reused
        await driver.aclose()
    for obs in (first, second):
        assert obs.identity.hostname == "SEP5CA62D0000A1"
        assert len(obs.interfaces) == 2
        assert obs.errors == []


@pytest.mark.parametrize("user", ["fw-sha256-aes", "fw-sha224-aes192", "fw-sha512-aes256", "fw-md5-des"])
async def test_v3_auth_and_priv_protocols(snmpd: SnmpdAgent, user: str) -> None:
    spec = snmpd.user(user)
    driver = _driver(
        snmpd,
        user=user,
        auth_proto=spec.auth_proto,
        auth_key=spec.auth_key,
        priv_proto=spec.priv_proto,
        priv_key=spec.priv_key,
    )
    obs = await _collect(driver)
    assert obs.identity.serial == "FCH2402A0B1"
    assert len(obs.interfaces) == 2


async def test_v3_wrong_key_is_auth_failed(snmpd: SnmpdAgent) -> None:
    driver = _driver(snmpd, user="fw-priv", auth_key="not-the-key", priv_key="fw-priv-secret")
    with pytest.raises(AuthFailed, match="credentials refused"):
        await _collect(driver)


async def test_v3_unknown_user_is_auth_failed(snmpd: SnmpdAgent) -> None:
    driver = _driver(snmpd, user="nobody", auth_key="fw-auth-secret", priv_key="fw-priv-secret")
    with pytest.raises(AuthFailed):
        await _collect(driver)


async def test_wrong_community_is_unreachable(snmpd: SnmpdAgent) -> None:
    # snmpd drops requests with an unknown community silently (RFC 3584 §4.1): a timeout.
    driver = _driver(snmpd, community="wrong", timeout_s=0.2, retries=1)
    with pytest.raises(Unreachable, match="no answer after 2 attempt"):
        await _collect(driver)


async def test_nothing_listening_is_unreachable() -> None:
    options = SnmpOptions(
        host="127.0.0.1", port=free_port(socket.SOCK_DGRAM), community="x", timeout_s=0.2, retries=0
    )
    with pytest.raises(Unreachable):
        await _collect(SnmpDriver("dev-1", options))


@pytest.fixture
def garbage_responder() -> Iterator[int]:
    """A UDP socket on loopback that answers every datagram with bytes that are not SNMP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                _, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(b"\x30\x03\x02\x01garbage", peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


async def test_garbage_answer_is_unreachable(garbage_responder: int) -> None:
    options = SnmpOptions(host="127.0.0.1", port=garbage_responder, community="x", timeout_s=0.3, retries=0)
    with pytest.raises(Unreachable):
        await _collect(SnmpDriver("dev-1", options))


SYSTEM_ONLY = (
    ("1.3.6.1.2.1.1.1.0", "octet_str", '"ACME Widget 3000, firmware 1.2.3"'),
    ("1.3.6.1.2.1.1.2.0", "object_id", ".1.3.6.1.4.1.99999.1.2"),
    ("1.3.6.1.2.1.1.3.0", "timeticks", "100"),
    ("1.3.6.1.2.1.1.5.0", "octet_str", '"widget"'),
)


async def test_system_group_only_device_is_not_an_error(snmpd_factory: Callable[..., SnmpdAgent]) -> None:
    agent = snmpd_factory(overrides=SYSTEM_ONLY, users=())
    obs = await _collect(_driver(agent, community=COMMUNITY))
    assert obs.errors == []
    assert obs.interfaces == []
    assert obs.health.status is HealthStatus.OK
    # Not recognised: an honest unknown with the raw strings kept.
    assert (obs.identity.vendor, obs.identity.family, obs.identity.model) == ("unknown", "unknown", "unknown")
    assert obs.software == []
    assert obs.raw["sysDescr"] == "ACME Widget 3000, firmware 1.2.3"
    assert obs.raw["sysObjectID"] == "1.3.6.1.4.1.99999.1.2"
    assert obs.uptime_s == 1.0


async def test_tables_can_be_switched_off(snmpd: SnmpdAgent) -> None:
    obs = await _collect(_driver(snmpd, community=COMMUNITY, read_entity=False, read_interfaces=False))
    assert obs.interfaces == []
    assert obs.identity.serial is None  # the serial lives in ENTITY-MIB on this device
    assert obs.identity.model == "CP-8851"  # still from sysDescr


async def test_walk_spanning_many_responses(snmpd: SnmpdAgent) -> None:
    # max_repetitions=2: ifTable (24 varbinds) and ENTITY-MIB take many GETBULK exchanges each.
    few = await _collect(_driver(snmpd, community=COMMUNITY, max_repetitions=2))
    many = await _collect(_driver(snmpd, community=COMMUNITY, max_repetitions=50))
    assert few.interfaces == many.interfaces
    assert len(few.interfaces) == 2
    assert few.identity == many.identity
    assert few.identity.serial == "FCH2402A0B1"


GET_BULK_PDU = 0xA5  # RFC 3416 §3: GetBulkRequest-PDU ::= [5] IMPLICIT …


def _pdu_tag(datagram: bytes) -> int:
    """The PDU tag of an SNMPv1/v2c message: SEQUENCE { version, community, PDU }."""

    def header(pos: int) -> tuple[int, int]:  # → (start of content, content length)
        first = datagram[pos + 1]
        if first < 0x80:
            return pos + 2, first
        size = first & 0x7F
        return pos + 2 + size, int.from_bytes(datagram[pos + 2 : pos + 2 + size], "big")

    pos, _ = header(0)  # into the message SEQUENCE
    for _ in range(2):  # skip version and community
        start, length = header(pos)
        pos = start + length
    return datagram[pos]


@pytest.fixture
def bulk_dropping_proxy(snmpd: SnmpdAgent) -> Iterator[int]:
    """A UDP proxy in front of snmpd that forwards GETs and drops every GETBULK: a device that
    answers the system group and then stops answering."""
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    front.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                request, client = front.recvfrom(65535)
            except TimeoutError:
                continue
            if _pdu_tag(request) == GET_BULK_PDU:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back:
                back.settimeout(2)
                back.sendto(request, (snmpd.host, snmpd.port))
                try:
                    front.sendto(back.recv(65535), client)
                except TimeoutError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield front.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        front.close()


async def test_tables_unanswered_are_errors_and_the_rest_is_skipped(bulk_dropping_proxy: int) -> None:
    options = SnmpOptions(
        host="127.0.0.1", port=bulk_dropping_proxy, community=COMMUNITY, timeout_s=0.3, retries=1
    )
    obs = await _collect(SnmpDriver("dev-1", options))
    assert obs.identity.hostname == "SEP5CA62D0000A1"  # the system group was read
    assert obs.identity.model == "CP-8851"
    assert obs.interfaces == []
    assert len(obs.errors) == 2
    assert "ENTITY-MIB: no answer after 2 attempt(s)" in obs.errors[0]
    assert "IF-MIB ifTable: skipped" in obs.errors[1]
    assert [r.code for r in obs.health.reasons] == ["partial_read", "partial_read"]
