"""The vocabulary in the catalog: trains parse in the right scheme; reported families come first."""

from __future__ import annotations

import pytest

from firmware_catalog import Device, Matcher, match_problem
from firmware_catalog.catalog import Catalog
from firmware_catalog.products import identify_device
from firmware_catalog.vocabulary import FAMILIES, SCHEMES, parse, scheme_of


@pytest.mark.parametrize(
    ("family", "release", "same_as"),
    [
        ("tc", "TC7.3.6.3b9ba3f", "TC7.3.6"),
        ("tc", "TC5.1.0.280662", "TC5.1.0"),
        ("tc", "TCNC5.1.0.280662", "TC5.1.0"),
        ("ce", "ce9.15.0.11.aec227943ed", "ce9.15.0.11"),
        ("roomos", "RoomOS 11.17.1.7 2c3f1a9b0e4", "RoomOS 11.17.1.7"),
        ("te", "TE1.0.0.175435", "TE1.0.0"),
        ("te", "TE4.1.7.0e9a4a7", "TE4.1.7"),
        ("f", "F8.1 NTSC", "F8.1"),
        ("f", "F9.1 PAL", "F9.1.0"),
    ],
)
def test_trains_parse_right_and_builds_do_not_count(family: str, release: str, same_as: str) -> None:
    scheme = scheme_of(family)
    assert scheme is not None
    assert parse(scheme, release) == parse(scheme, same_as)


def test_train_order_and_separation() -> None:
    assert parse("cisco-roomos", "TC6.0.0 Beta7") < parse("cisco-roomos", "TC6.0.0")
    tc, ce, roomos = (parse("cisco-roomos", t) for t in ("TC7.3.21", "ce8.1.0", "RoomOS 10.19"))
    assert tc < ce < roomos
    assert parse("tandberg", "F8.1") < parse("tandberg", "F9.3.1")
    assert parse("tandberg", "TE4.1.7") != parse("tandberg", "F4.1.7")
    assert str(parse("tandberg", "te4.1.7.0e9a4a7")) == "TE4.1.7"


def test_every_family_names_a_known_scheme() -> None:
    assert {family.scheme for family in FAMILIES.values()} <= SCHEMES
    planner = {"roomos", "ce", "tc", "sip", "mpp", "teams-rooms", "teams-android", "yealink", "poly"}
    assert planner <= set(FAMILIES)


def test_the_reported_family_comes_before_product_name_rules() -> None:
    # Without a family the product rules cannot tell an SPA's firmware line from its name.
    assert identify_device("cisco", "SPA112", "1.4.1").family is None
    spa = identify_device("cisco", "SPA112", "1.4.1", "spa", "generic")
    assert (spa.family, spa.scheme, spa.device_class, spa.reason) == ("spa", "generic", "phone", None)
    # A TANDBERG E20 on TE: the product rules would read "TE4.1.7" as nothing they know.
    e20 = identify_device("cisco", "TANDBERG E20", "TE4.1.7", "te", "tandberg")
    assert (e20.family, e20.scheme) == ("te", "tandberg")
    assert match_problem("cisco", "TANDBERG E20", "TE4.1.7", "te", "tandberg") is None
    # A codec whose train was unknown to the driver is refined from the firmware string.
    codec = identify_device("cisco", "Cisco TelePresence SX20", "TC7.3.21", "telepresence", "cisco-roomos")
    assert (codec.family, codec.scheme) == ("tc", "cisco-roomos")
    # A family the vocabulary does not know, or a scheme that is not the family's, falls back to the rules.
    fallback = identify_device("cisco", "Cisco Room Kit Pro", "RoomOS 11.17.1.7", "phone", "cisco-phone")
    assert (fallback.family, fallback.scheme) == ("roomos", "cisco-roomos")
    mismatched = identify_device("cisco", "Cisco Room Kit Pro", "RoomOS 11.17.1.7", "roomos", "generic")
    assert (mismatched.family, mismatched.scheme) == ("roomos", "cisco-roomos")


def test_the_matcher_uses_the_reported_family() -> None:
    matcher = Matcher(Catalog())
    device = Device("d1", "cisco", "TANDBERG E20", "TE4.1.7.0e9a4a7", family="te", scheme="tandberg")
    identity, version, why = matcher.identify(device)
    assert (identity.family, why) == ("te", None)
    assert version is not None
    assert str(version) == "TE4.1.7"
    bare = Device("d2", "cisco", "TANDBERG E20", "TE4.1.7.0e9a4a7")
    assert matcher.identify(bare)[0].family != "te"
    assert Device.from_dict({"device_id": "x", "family": "te", "scheme": "tandberg"}).family == "te"
