"""Identification from fingerprint files: every example in the data, the loader's checks, properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.snmp import SnmpOptions, identify
from collector.snmp.catalog import Example, Fingerprint, VendorFile, load, normalise, parse_vendor_file
from collector.snmp.values import mac, text
from firmware_catalog.versions import SCHEMES, parse_version

CATALOG = load()
EXAMPLES = [
    pytest.param(vendor, fp, example, id=f"{vendor.vendor}/{fp.id}/{n}")
    for vendor in CATALOG.vendors
    for fp in vendor.fingerprints
    for n, example in enumerate(fp.examples)
]
IN_SCOPE = [v for v in CATALOG.vendors if v.in_scope]


@pytest.mark.parametrize(("vendor", "fp", "example"), EXAMPLES)
def test_every_fingerprint_example(vendor: VendorFile, fp: Fingerprint, example: Example) -> None:
    found = identify(example.descr, example.object_id, example.entity)
    assert found.rule == f"{vendor.vendor}/{fp.id}", found
    for name, want in example.expect.model_dump(exclude_none=True).items():
        got = getattr(found, name)
        assert got == (want or None if name in {"version", "build", "serial", "scheme"} else want), (
            name,
            found,
        )
    # What the driver reports, the catalog can parse: the scheme is one it knows, the version parses.
    assert fp.scheme in SCHEMES
    if found.version is not None:
        assert found.scheme is not None
        parse_version(found.scheme, found.version)


def test_line_breaks_and_spaces_match_alike() -> None:
    one_line = identify(
        "Cisco Codec SoftW: RoomOS 11.14.2.3 2f2a4b1c9d0 MCU: Cisco Room Kit Pro "
        "Date: 2024-03-11 S/N: FOC2412N0PR",
        "",
    )
    lines = identify(
        "Cisco Codec\r\nSoftW: RoomOS 11.14.2.3 2f2a4b1c9d0\nMCU: Cisco Room Kit Pro\n"
        "Date: 2024-03-11\nS/N: FOC2412N0PR",
        "",
    )
    assert one_line == lines
    assert (lines.model, lines.version, lines.build, lines.serial) == (
        "Cisco Room Kit Pro",
        "RoomOS 11.14.2.3",
        "2f2a4b1c9d0",
        "FOC2412N0PR",
    )
    assert normalise(" a\n\tb  c ") == "a b c"


def test_unknown_says_why() -> None:
    found = identify("Cisco Catalyst something", "1.3.6.1.4.1.9.1.2000", {"entPhysicalDescr": "x"})
    assert (found.vendor, found.family, found.model, found.version) == ("cisco", "unknown", "unknown", None)
    assert found.reason is not None
    assert "sysDescr 'Cisco Catalyst something'" in found.reason
    assert "enterprise 9 (ciscoSystems) belongs to cisco" in found.reason
    assert "ENTITY-MIB entPhysicalDescr" in found.reason
    linux = identify("Linux box", "1.3.6.1.4.1.8072.3.2.10")
    assert (linux.vendor, linux.family, linux.model) == ("unknown", "unknown", "unknown")
    assert linux.reason is not None
    assert "net-snmp" in linux.reason
    assert not linux.recognised
    # A MikroTik board that answers only "router" (librenms/librenms tests/snmpsim/routeros.snmprec).
    entity = {"entPhysicalDescr": "RouterOS 6.40.5 (stable) on RB952Ui-5ac2nD"}
    other = identify("router", "1.3.6.1.4.1.14988.1", entity)
    assert (other.vendor, other.family) == ("mikrotik", "unknown")
    assert other.reason is not None
    assert "enterprise 14988 (MikroTik) belongs to mikrotik" in other.reason
    bare = identify("", "")
    assert bare.reason is not None
    assert "sysObjectID empty" in bare.reason


def test_loader_rejects_bad_files() -> None:
    good = """
vendor = "x"
names = ["x"]
[[fingerprints]]
id = "a"
family = "avaya"
scheme = "generic"
descr = ['^X (?P<model>\\S+)']
  [[fingerprints.examples]]
  descr = "X 1"
  source = "somewhere public"
  expect = { model = "1" }
"""
    assert parse_vendor_file(good, "x.toml").fingerprints[0].id == "a"
    with pytest.raises(ValueError, match="unknown named group"):
        parse_vendor_file(good.replace("?P<model>", "?P<modle>"), "x.toml")
    with pytest.raises(ValueError, match="Extra inputs"):
        parse_vendor_file(good.replace('family = "avaya"', 'family = "avaya"\nfamliy = "b"'), "x.toml")
    with pytest.raises(ValueError, match="unknown family 'phone'"):
        parse_vendor_file(good.replace('family = "avaya"', 'family = "phone"'), "x.toml")
    with pytest.raises(ValueError, match="uses scheme 'cisco-roomos', not 'generic'"):
        parse_vendor_file(good.replace('family = "avaya"', 'family = "roomos"'), "x.toml")
    with pytest.raises(ValueError, match="matches everything"):
        parse_vendor_file(good.replace("descr = ['^X (?P<model>\\S+)']", ""), "x.toml")
    with pytest.raises(ValueError, match="examples"):
        parse_vendor_file(good.split("  [[fingerprints.examples]]", maxsplit=1)[0], "x.toml")
    with pytest.raises(ValueError, match="not a valid regex"):
        parse_vendor_file(good.replace("\\S+)", "\\S+"), "x.toml")


def test_examples_cover_real_sources() -> None:
    examples = [e for v in CATALOG.vendors for f in v.fingerprints for e in f.examples]
    assert all(e.source for e in examples)
    assert len({(e.descr, e.object_id) for e in examples}) == len(examples), "duplicate example"
    # Public sources only: our own fixtures and the issue text do not count.
    public = [e for e in examples if not e.source.startswith("fernwart") and "CONSTRUCTED" not in e.source]
    strings = {(normalise(e.descr), e.object_id) for e in public}
    # Sources count by repository ("owner/repo path …"); a file found without its repository
    # ("… code corpus file id N") is an example, not a source.
    repositories = {
        e.source.split()[0] for e in public if re.fullmatch(r"[\w.-]+/[\w.-]+", e.source.split()[0])
    }
    assert len(strings) >= 60, len(strings)
    assert len(repositories) >= 5, sorted(repositories)


def test_in_scope_families_and_other_vendors_are_represented() -> None:
    seen = {
        (v.vendor, f.family)
        for v in CATALOG.vendors
        for f in v.fingerprints
        for e in f.examples
        if not e.source.startswith("fernwart")
    }
    for family in ("roomos", "ce", "tc", "te", "f", "telepresence", "sip", "spa", "cisco-sb"):
        assert ("cisco", family) in seen or family == "roomos", family
    assert ("poly", "poly") in seen
    others = {vendor for vendor, _ in seen} - {"cisco", "poly", "yealink"}
    assert {"audiocodes", "avaya", "crestron", "grandstream", "mikrotik"} <= others


@pytest.mark.parametrize(("vendor", "fp", "example"), EXAMPLES)
def test_other_vendors_are_never_cisco_or_poly(vendor: VendorFile, fp: Fingerprint, example: Example) -> None:
    found = identify(example.descr, example.object_id, example.entity)
    if not vendor.in_scope:
        assert found.vendor == vendor.vendor
        assert found.vendor not in {v.vendor for v in IN_SCOPE}


_OID = st.lists(st.integers(min_value=0, max_value=70000), min_size=0, max_size=12).map(
    lambda parts: ".".join(map(str, parts))
)


@given(
    st.text(max_size=300),
    st.one_of(_OID, st.text(max_size=60), _OID.map(lambda t: "1.3.6.1.4.1." + t)),
    st.dictionaries(
        st.sampled_from(
            ["entPhysicalMfgName", "entPhysicalModelName", "entPhysicalSoftwareRev", "entPhysicalSerialNum"]
        ),
        st.text(max_size=40),
    ),
)
def test_identify_never_raises_nor_claims_without_evidence(
    descr: str, object_id: str, entity: dict[str, str]
) -> None:
    found = identify(descr, object_id, entity)
    assert (found.version is None) == (found.scheme is None)
    assert found.recognised or found.reason
    for vendor in IN_SCOPE:
        if found.vendor != vendor.vendor:
            continue
        said = " ".join([descr, *entity.values()])
        named = any(re.search(name, said, re.IGNORECASE) for name in vendor.names)
        number = CATALOG.enterprise_of(object_id)
        assert named or (number is not None and number[1] == vendor.vendor), (descr, object_id, entity)


_IN_SCOPE_NAMES = re.compile("|".join(n for v in IN_SCOPE for n in v.names), re.IGNORECASE)


@given(
    st.sampled_from([e.values[2] for e in EXAMPLES]),
    st.sampled_from(["Acme", "Zeta Systems", "", "X"]),
    st.one_of(st.just(""), _OID.map(lambda t: "1.3.6.1.4.1.99999." + t), _OID),
)
def test_real_strings_without_the_name_are_never_claimed(example: Example, word: str, object_id: str) -> None:
    """Real examples with every in-scope vendor name taken out and a foreign sysObjectID: the
    patterns that know these layouts best must still not claim Cisco, Poly or Yealink."""
    descr = _IN_SCOPE_NAMES.sub(word, example.descr)
    entity = {k: _IN_SCOPE_NAMES.sub(word, v) for k, v in example.entity.items()}
    if _IN_SCOPE_NAMES.search(" ".join([descr, *entity.values()])):
        return  # the replacement formed a name again; nothing to check
    number = CATALOG.enterprise_of(object_id)
    found = identify(descr, object_id, entity)
    owned = number is not None and number[1] == found.vendor
    assert found.vendor not in {v.vendor for v in IN_SCOPE} or owned


@given(st.sampled_from([e.values[2] for e in EXAMPLES]), st.sampled_from([" ", "\n", "\r\n", "  \t"]))
def test_examples_survive_any_line_separator(example: Example, sep: str) -> None:
    plain = identify(example.descr, example.object_id, example.entity)
    spaced = identify(re.sub(r"\s+", sep, example.descr), example.object_id, example.entity)
    assert plain == spaced


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
