"""Product-name normalization and the KEV parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_catalog import (
    CatalogError,
    DocumentError,
    KevCatalog,
    identify_device,
    normalize_product,
    parse_kev,
)
from firmware_catalog.products import covers
from tests.catalog.conftest import KEV_FILE


@pytest.mark.parametrize(
    ("advisory_name", "vendor", "product", "version", "expected"),
    [
        ("Cisco RoomOS Software", "Cisco", "Cisco Room Kit Pro", "RoomOS 11.14.2.3 2f2a4b1c9", True),
        ("Cisco RoomOS Software", "Cisco", "Cisco TelePresence SX80", "ce9.15.3.17", False),
        (
            "Cisco TelePresence Collaboration Endpoint Software",
            "Cisco",
            "Cisco TelePresence SX80",
            "ce9.15.3.17",
            True,
        ),
        (
            "Cisco TelePresence Collaboration Endpoint Software",
            "Cisco",
            "Cisco TelePresence SX20",
            "TC7.3.21",
            False,
        ),
        (
            "Cisco TelePresence Endpoint Software (TC/CE)",
            "Cisco",
            "Cisco TelePresence SX20",
            "TC7.3.21",
            True,
        ),
        (
            "Cisco IP Phone 8800 Series with Multiplatform Firmware",
            "Cisco",
            "CP-8851-3PCC",
            "sip88xx.14-2-1MPP",
            True,
        ),
        (
            "Cisco IP Phone 8800 Series with Multiplatform Firmware",
            "Cisco",
            "CP-8851",
            "sip88xx.14-2-1-0001-14",
            False,
        ),
        (
            "Cisco IP Phone 8800 Series with Multiplatform Firmware",
            "Cisco",
            "CP-7841-3PCC",
            "sip78xx.11-3-7MPP",
            False,
        ),
        ("Cisco IP Phone 8851", "Cisco", "CP-8851", "sip88xx.14-2-1-0001-14", True),
        ("Cisco IP Phone 8851", "Cisco", "CP-8851-3PCC", "sip88xx.14-2-1MPP", False),
        ("Cisco IP Phone 8851", "Cisco", "CP-8851-K9=", "14.2(1)", True),
        ("Cisco Unified IP Conference Phone 8831", "Cisco", "CP-8831", "sip8831.10-3-1SR5-1", True),
        ("Cisco Wireless IP Phone 8821", "Cisco", "CP-8821-EX", "sip8821.11-0-5SR2-2", False),
        ("Cisco Wireless IP Phone 8821-EX", "Cisco", "CP-8821-EX", "sip8821.11-0-5SR2-2", True),
        ("Cisco IP Phone 7800 Series", "Cisco", "CP-7841", "sip78xx.11-7-1-17", True),
        ("Cisco Session Initiation Protocol (SIP) Software", "Cisco", "CP-7841", "sip78xx.11-7-1-17", True),
        (
            "Cisco Session Initiation Protocol (SIP) Software",
            "Cisco",
            "CP-7841-3PCC",
            "sip78xx.11-3-7MPP",
            False,
        ),
        (
            "Microsoft Teams Rooms on Windows",
            "Microsoft",
            "Microsoft Teams Rooms on Windows",
            "5.0.111.0",
            True,
        ),
        ("Cisco RoomOS Software", "Yealink", "Yealink MP56 Teams", "122.15.0.64", False),
    ],
)
def test_advisory_names_meet_device_names(
    advisory_name: str, vendor: str, product: str, version: str, expected: bool
) -> None:
    key = normalize_product(vendor if vendor != "Yealink" else "Cisco", advisory_name)
    assert covers(key, identify_device(vendor, product, version)) is expected


def test_unknown_firmware_family_is_not_silently_uncovered() -> None:
    device = identify_device("Cisco", "CP-8851", "11.3.2")  # plain dotted: MPP or not? cannot tell
    assert device.family is None
    assert device.reason is not None
    assert covers(normalize_product("Cisco", "Cisco IP Phone 8851 with Multiplatform Firmware"), device)
    assert covers(normalize_product("Cisco", "Cisco IP Phone 8851"), device)


def test_real_kev_excerpt() -> None:
    kev = parse_kev(KEV_FILE.read_bytes())
    assert len(kev) == 98
    assert kev.version == "2025.08.25"
    entry = kev.get("CVE-2020-3161")
    assert entry is not None
    assert (entry.date_added, entry.due_date, entry.ransomware) == ("2021-11-03", "2022-05-03", False)


def test_bad_kev_entries_are_skipped_with_their_path() -> None:
    data = json.loads(KEV_FILE.read_text())
    data["vulnerabilities"][3]["cveID"] = None
    data["vulnerabilities"][5] = "junk"
    kev = parse_kev(json.dumps(data))
    assert len(kev) == 96
    assert [e.path for e in kev.errors] == ["vulnerabilities[3].cveID", "vulnerabilities[5]"]
    with pytest.raises(DocumentError, match=r"vulnerabilities: expected an array"):
        parse_kev({"vulnerabilities": {}})


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=100),
        st.text(max_size=100),
        st.dictionaries(
            st.sampled_from(["vulnerabilities", "catalogVersion"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=5),
                st.lists(
                    st.dictionaries(
                        st.sampled_from(["cveID", "dateAdded", "dueDate", "knownRansomwareCampaignUse"]),
                        st.one_of(st.none(), st.text(max_size=12)),
                    ),
                    max_size=3,
                ),
            ),
        ),
    )
)
def test_kev_input_raises_only_catalog_error(data: object) -> None:
    try:
        kev = parse_kev(data)
    except CatalogError as err:
        assert str(err)  # noqa: PT017 - the property: only CatalogError, with a message
        return
    assert isinstance(kev, KevCatalog)
    assert all(isinstance(e, DocumentError) for e in kev.errors)


def test_a_device_without_a_reported_version_says_so() -> None:
    # The demo's first plan held devices "cannot tell the firmware family of 'unknown' from ''":
    # nothing a NOC operator can act on; the device simply has not reported its firmware yet.
    identity = identify_device("unknown", "unknown", "")
    assert identity.family is None
    assert identity.reason == "no firmware version reported yet (product 'unknown')"
    unknown = identify_device("unknown", "Cisco 8845", "14-2-1MPP")
    assert unknown.reason == "cannot tell the firmware family of 'Cisco 8845' from '14-2-1MPP'"
