"""What the drivers report, the catalog can parse: families and schemes from one vocabulary."""

from __future__ import annotations

import asyncio

import pytest

from collector.host.driver import HostDriver
from collector.host.options import HostOptions
from collector.snmp.catalog import Fingerprint, load
from collector.snmp.identify import identify
from firmware_catalog import vocabulary
from firmware_catalog.errors import VersionParseError

CATALOG = load()
FINGERPRINTS = [(v.vendor, f) for v in CATALOG.vendors for f in v.fingerprints]


@pytest.mark.parametrize(("vendor", "fp"), FINGERPRINTS, ids=[f"{v}/{f.id}" for v, f in FINGERPRINTS])
def test_every_fingerprint_family_and_scheme_is_in_the_vocabulary(vendor: str, fp: Fingerprint) -> None:
    family, scheme = fp.family, fp.scheme
    assert vocabulary.problem(family, scheme) is None, (vendor, family, scheme)
    assert vocabulary.scheme_of(family) == scheme
    for example in fp.examples:
        found = identify(example.descr, example.object_id, example.entity)
        assert vocabulary.problem(found.family, found.scheme) is None
        if found.version is not None:
            assert found.scheme is not None
            vocabulary.parse(found.scheme, found.version)


def test_an_unknown_device_reports_no_scheme() -> None:
    found = identify("Linux box", "1.3.6.1.4.1.8072.3.2.10")
    assert (found.family, found.scheme) == ("unknown", None)
    assert vocabulary.problem(found.family, found.scheme) is None


def test_the_host_driver_reports_families_and_schemes_the_catalog_parses() -> None:
    driver = HostDriver("agent-host", HostOptions(disk_paths=["/"]))
    observation = asyncio.run(driver.collect())
    assert vocabulary.problem(observation.identity.family, None) is None
    assert observation.software
    for component in observation.software:
        assert component.scheme in vocabulary.SCHEMES, component
        assert component.version is not None
        vocabulary.parse(component.scheme, component.version)


def test_problem_names_what_is_wrong() -> None:
    assert vocabulary.problem("phone", "cisco-phone") == (
        f"unknown family 'phone'; known: {', '.join(sorted(vocabulary.FAMILIES))}"
    )
    wrong = vocabulary.problem("roomos", "generic")
    assert wrong == "family 'roomos' uses scheme 'cisco-roomos', not 'generic'"
    assert vocabulary.problem("roomos", "nope") is not None
    assert "unknown version scheme 'nope'" in (vocabulary.problem("roomos", "nope") or "")
    assert vocabulary.problem("unknown", "generic") is not None
    assert vocabulary.problem("tc", None) is None
    with pytest.raises(VersionParseError, match="is not a kernel version"):
        vocabulary.parse("kernel", "no digits here")
