"""Property tests for the Cisco parsers: versions the catalog can parse, ids a topic allows,
XML that round-trips, and odd input that raises only our BadResponse (or nothing)."""

from __future__ import annotations

import base64
import contextlib
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.errors import BadResponse
from collector.model import IDENT_PATTERN
from collector.webex import devices as dv
from collector.xapi import status, xml
from firmware_catalog.versions import parse_version
from lab.fakes.xapi import default_tree, to_xml

nums = st.lists(st.integers(0, 999), min_size=2, max_size=4)
build = st.text("0123456789abcdef", min_size=7, max_size=11)


# Each train with the majors it really had: TC up to 7, CE 8 and 9, RoomOS from 10.
_TRAINS = {"RoomOS ": (10, 40), "ce": (8, 9), "CE": (8, 9), "tc": (4, 7)}


@given(st.data(), build, st.sampled_from(sorted(_TRAINS)))
def test_roomos_versions_parse_in_the_catalog_scheme(data: st.DataObject, hash_: str, prefix: str) -> None:
    low, high = _TRAINS[prefix]
    rest = data.draw(st.lists(st.integers(0, 999), min_size=1, max_size=3))
    parts = [data.draw(st.integers(low, high)), *rest]
    text = f"{prefix}{'.'.join(map(str, parts))}" + (f" {hash_}" if prefix == "RoomOS " else f".{hash_}")
    found = status.roomos_firmware(text)
    assert found is not None
    parsed = parse_version(found.scheme or "", found.version)
    # The bare numbers name the same release: the catalog tells the train by the major.
    assert parsed == parse_version("cisco-roomos", ".".join(map(str, parts)))


@given(st.integers(0, 99), st.integers(0, 99), st.integers(0, 999), st.text("0123456789-", max_size=9))
def test_mpp_loads_parse_in_the_catalog_scheme(major: int, minor: int, patch: int, tail: str) -> None:
    found = status.mpp_firmware(f"sip8845_65.{major}-{minor}-{patch}MPP{tail}")
    assert found is not None
    assert parse_version("cisco-mpp", found.version) == parse_version("cisco-mpp", f"{major}.{minor}.{patch}")


@given(st.text(max_size=200))
def test_odd_software_strings_never_raise(text: str) -> None:
    status.roomos_firmware(text)
    status.mpp_firmware(text)
    dv.software({"software": text})


@given(st.text(max_size=300))
def test_device_ids_are_valid_identifiers(webex_id: str) -> None:
    assert re.match(IDENT_PATTERN, dv.device_id(webex_id))


@given(st.uuids())
def test_webex_ids_map_to_their_uuid(value: uuid.UUID) -> None:
    webex_id = base64.urlsafe_b64encode(f"ciscospark://us/DEVICE/{value}".encode()).decode().rstrip("=")
    assert dv.device_id(webex_id) == f"webex-{value}"


@given(st.binary(max_size=300))
def test_xml_garbage_raises_only_bad_response(body: bytes) -> None:
    with contextlib.suppress(BadResponse):
        xml.to_tree(xml.parse(body, "test"))


def test_status_tree_round_trips_through_xml() -> None:
    tree = default_tree()
    stringified = _strings(tree)
    assert xml.to_tree(xml.parse(to_xml(tree), "test")) == stringified


def test_entity_declarations_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaa">]><Status>&a;</Status>'
    with pytest.raises(BadResponse, match="DTD or entities"):
        xml.parse(bomb, "status.xml")


def _strings(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    return str(value)


@pytest.mark.parametrize(
    ("text", "version", "family"),
    [
        ("RoomOS 11.17.1.7 2c3f1a9b0e4", "RoomOS 11.17.1.7", "roomos"),
        ("ce11.17.1.7.2c3f1a9b0e4", "ce11.17.1.7", "roomos"),
        ("ce 9.15.3.17 abc1234 2021-01-01", "ce9.15.3.17", "ce"),
        ("tc7.3.21.ea2b5a1", "tc7.3.21", "tc"),
    ],
)
def test_codec_version_strings_as_devices_report_them(text: str, version: str, family: str) -> None:
    found = status.roomos_firmware(text)
    assert found is not None
    assert (found.version, found.family, found.scheme) == (version, family, "cisco-roomos")
