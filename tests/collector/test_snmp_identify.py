"""Identification rules and value conversions: examples from real shapes, and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.snmp import SnmpOptions, identify
from collector.snmp.identify import VENDORS, Rule
from collector.snmp.values import mac, text

ROOMOS = (
    "Cisco Codec\nSoftW: RoomOS 11.14.2.3 2f2a4b1c9d0\nMCU: Cisco Room Kit Pro\n"
    "Date: 2024-03-11\nS/N: FOC2412N0PR"
)
CE9 = (
    "Cisco Codec\nSoftW: ce9.15.3.17 6d8c6c2e0a1\nMCU: Cisco Webex Room Kit\n"
    "Date: 2022-11-02\nS/N: FOC2247N8MP"
)


@pytest.mark.parametrize(
    ("descr", "object_id", "entity", "expected"),
    [
        (
            ROOMOS,
            "1.3.6.1.4.1.5596.150.6.4.1",
            {},
            (
                "cisco",
                "roomos",
                "Cisco Room Kit Pro",
                "FOC2412N0PR",
                "RoomOS 11.14.2.3 2f2a4b1c9d0",
                "cisco-roomos",
            ),
        ),
        (
            CE9,
            "1.3.6.1.4.1.5596.150.6.4.1",
            {},
            ("cisco", "ce", "Cisco Webex Room Kit", "FOC2247N8MP", "ce9.15.3.17", "cisco-roomos"),
        ),
        (
            "Cisco IP Phone CP-8845, V3, sip8845_65.14-2-1MPP0001-272",
            "1.3.6.1.4.1.9.1.99902",
            {"entPhysicalSerialNum": "FCH2403A0C3", "entPhysicalMfgName": "Cisco Systems, Inc."},
            ("cisco", "mpp", "CP-8845", "FCH2403A0C3", "14-2-1MPP", "cisco-mpp"),
        ),
        (
            "Yealink MP56 Teams Phone",
            "1.3.6.1.4.1.8072.3.2.10",
            {
                "entPhysicalSoftwareRev": "122.15.0.142",
                "entPhysicalSerialNum": "8041B0000003",
                "entPhysicalModelName": "MP56",
                "entPhysicalMfgName": "Yealink",
            },
            ("yealink", "yealink", "MP56", "8041B0000003", "122.15.0.142", "yealink"),
        ),
        (
            "Linux phone 4.9.0",
            "1.3.6.1.4.1.8072.3.2.10",
            {
                "entPhysicalSoftwareRev": "122.15.0.64",
                "entPhysicalModelName": "T58W",
                "entPhysicalMfgName": "Yealink",
            },
            ("yealink", "yealink", "T58W", None, "122.15.0.64", "yealink"),
        ),
        (
            "Poly CCX 600",
            "1.3.6.1.4.1.8072.3.2.10",
            {"entPhysicalSoftwareRev": "8.1.3.1301", "entPhysicalSerialNum": "6415B0000D04"},
            ("poly", "poly", "CCX 600", "6415B0000D04", "8.1.3.1301", "poly"),
        ),
    ],
)
def test_known_devices(
    descr: str, object_id: str, entity: dict[str, str], expected: tuple[object, ...]
) -> None:
    found = identify(descr, object_id, entity)
    assert (found.vendor, found.family, found.model, found.serial, found.version, found.scheme) == expected


def test_mpp_versions_are_releases_the_catalog_reads() -> None:
    mpp = identify("Cisco IP Phone CP-8851, V3, sip88xx.14-2-1MPP0001-272", "1.3.6.1.4.1.9.1.1735")
    assert (mpp.version, mpp.scheme) == ("sip88xx.14-2-1MPP", "cisco-mpp")
    msr = identify(
        "Cisco IP Phone CP-6841, V3",
        "1.3.6.1.4.1.9.1.2000",
        {"entPhysicalMfgName": "Cisco Systems, Inc.", "entPhysicalSoftwareRev": "sip68xx.11-2-3MSR1-1"},
    )
    assert (msr.model, msr.version) == ("CP-6841", "sip68xx.11-2-3MSR1-1")
    # Not an MPP load at all: kept as the device says it, the catalog will report it unparseable.
    odd = identify(
        "Cisco IP Phone CP-8851", "", {"entPhysicalMfgName": "Cisco", "entPhysicalSoftwareRev": "weird-1"}
    )
    assert odd.version == "weird-1"


def test_unknown_keeps_vendor_from_enterprise_only() -> None:
    found = identify("Cisco Catalyst something", "1.3.6.1.4.1.9.1.2000")
    assert (found.vendor, found.family, found.model, found.version) == ("cisco", "unknown", "unknown", None)
    found = identify("Linux box", "1.3.6.1.4.1.8072.3.2.10")
    assert (found.vendor, found.family, found.model) == ("unknown", "unknown", "unknown")
    assert not found.recognised


def test_every_rule_has_a_condition_and_compiles() -> None:
    with pytest.raises(ValueError, match="matches everything"):
        Rule("x", "x")
    for vendor in VENDORS:
        for rule in vendor.rules:
            for regex in (*rule.descr, *rule.descr_optional):
                re.compile(regex)


@given(
    st.text(max_size=300),
    st.text(max_size=60),
    st.dictionaries(
        st.sampled_from(
            ["entPhysicalMfgName", "entPhysicalModelName", "entPhysicalSoftwareRev", "entPhysicalSerialNum"]
        ),
        st.text(max_size=40),
    ),
)
def test_identify_never_raises(descr: str, object_id: str, entity: dict[str, str]) -> None:
    found = identify(descr, object_id, entity)
    assert found.vendor in {"unknown", *(v.name for v in VENDORS)}
    assert (found.version is None) == (found.scheme is None)


@given(st.binary(max_size=200))
def test_text_decodes_any_octets(value: bytes) -> None:
    decoded = text(value)
    assert decoded is not None
    assert "\x00" not in decoded[-1:]


@given(st.binary(min_size=6, max_size=6))
def test_mac_formats_six_octets(value: bytes) -> None:
    formatted = mac(value)
    if value == bytes(6):
        assert formatted is None
    else:
        assert formatted is not None
        assert bytes.fromhex(formatted.replace(":", "")) == value


def test_options_need_exactly_one_security_model() -> None:
    with pytest.raises(ValidationError, match="either community"):
        SnmpOptions(host="h")
    with pytest.raises(ValidationError, match="either community"):
        SnmpOptions(host="h", community="c", user="u")
    with pytest.raises(ValidationError, match="priv_key needs auth_key"):
        SnmpOptions(host="h", user="u", priv_key="12345678")
    with pytest.raises(ValidationError, match="at least 8"):
        SnmpOptions(host="h", user="u", auth_key="short")
    with pytest.raises(ValidationError, match="Extra inputs"):
        SnmpOptions.model_validate({"host": "h", "community": "c", "comunity": "typo"})
    assert (
        SnmpOptions(host="h", user="u", auth_key="12345678", priv_key="12345678").security_level == "authPriv"
    )


def test_secrets_never_serialized() -> None:
    options = SnmpOptions(host="h", user="u", auth_key="auth-secret-1", priv_key="priv-secret-1")
    community = SnmpOptions(host="h", community="community-secret")
    for dumped in (repr(options), options.model_dump_json(), repr(community), community.model_dump_json()):
        assert "secret" not in dumped.replace("SecretStr", "")
