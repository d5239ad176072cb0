"""Target selection: operator choice, advisory-stated fixes, the release catalog, and the seed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from firmware_catalog import Catalog, Device, Matcher, ReleaseCatalog, TargetSelector
from tests.catalog.conftest import CSAF_DIR, SHARED


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    catalog = Catalog()
    catalog.import_path(CSAF_DIR)
    return Matcher(catalog)


def test_seed_ships_every_usable_shared_release() -> None:
    seed = ReleaseCatalog.seed()
    roomos = [str(r.version) for r in seed.releases("cisco-roomos")]
    shared = json.loads((SHARED / "catalog" / "releases" / "cisco-roomos.json").read_text(encoding="utf-8"))
    assert len(roomos) == len(shared) == 52
    assert roomos == sorted(roomos, key=lambda t: tuple(int(p) for p in t.split(".")))
    assert len(seed.releases("teams-rooms")) == 64
    assert all(r.source for r in seed.releases("teams-android"))


def test_release_file_errors_name_entry_and_key() -> None:
    errors = ReleaseCatalog().load(
        [{"family": "roomos", "version": "x"}, {"family": "nope", "version": "1"}, 3], "f.json"
    )
    assert errors[0].startswith("f.json: [0].version:")
    assert errors[1] == "f.json: [1].family: unknown family 'nope'"
    assert errors[2] == "f.json: [2]: expected an object"


def test_release_catalog_rule_when_advisories_list_only_affected(matcher: Matcher) -> None:
    device = Device("d", "Cisco", "Cisco Desk Pro", "RoomOS 11.14.2.3 1c2d3e4f5a6")
    choice = TargetSelector(matcher, ReleaseCatalog.seed()).choose(device)
    assert choice.rule == "release_catalog"
    assert choice.target_text is not None
    assert choice.current is not None
    assert choice.target is not None
    assert choice.target > choice.current
    assert not any(v.status == "affected" for v in choice.at_target)
    assert any(v.status == "affected" for v in choice.verdicts)


def test_advisory_fixed_rule_and_operator_rule(real_documents: dict[str, dict[str, Any]]) -> None:
    catalog = Catalog()
    for stem in ("cisco-sa-voip-phones-rce-dos-rB6EeRXs", "cisco-sa-20190320-ip-phone-csrf"):
        catalog.add(real_documents[stem], f"{stem}.json")
    type_a = Matcher(catalog)
    phone = Device("p", "Cisco", "CP-8851", "sip88xx.11-5-1-18")
    choice = TargetSelector(type_a, ReleaseCatalog()).choose(phone)
    assert (choice.rule, choice.target_text) == ("advisory_fixed", "12.5(1)SR1")
    operator = TargetSelector(type_a, ReleaseCatalog(), {"sip": "14.2(1)"}).choose(phone)
    assert (operator.rule, operator.target_text) == ("operator", "14.2(1)")
    assert not any(v.status == "affected" for v in operator.at_target)
    # Another family's operator target does not apply.
    assert TargetSelector(type_a, ReleaseCatalog(), {"mpp": "12.0.1"}).choose(phone).rule == "advisory_fixed"


def test_unknown_version_and_up_to_date(matcher: Matcher) -> None:
    selector = TargetSelector(matcher, ReleaseCatalog.seed())
    assert (
        selector.choose(Device("x", "Cisco", "Cisco IP Phone 8851", "sip88xx.current")).problem
        == "unknown_version"
    )
    teams = selector.choose(Device("t", "Microsoft", "Microsoft Teams Rooms", "5.2.115.0"))
    assert teams.rule == "current"
    assert teams.up_to_date
