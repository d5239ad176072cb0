"""Property tests for every version scheme: total order, round trip, only VersionParseError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_catalog import SCHEMES, Version, VersionParseError, parse_version
from firmware_catalog.vers import parse_vers

n = st.integers(0, 999)
hexid = st.text("0123456789abcdef", min_size=7, max_size=12).filter(lambda s: any(c in "abcdef" for c in s))
dotted = st.lists(n, min_size=2, max_size=5).map(lambda p: ".".join(map(str, p)))

VALID: dict[str, st.SearchStrategy[str]] = {
    "generic": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.()_-]{0,20}", fullmatch=True),
    "cisco-roomos": st.builds(
        lambda prefix, nums, build: f"{prefix}{nums}{build}",
        st.sampled_from(["", "RoomOS ", "ce", "CE", "TC", "tc"]),
        dotted,
        st.one_of(st.just(""), hexid.map(lambda h: f" {h}"), hexid.map(lambda h: f".{h}")),
    ),
    "cisco-phone": st.one_of(
        st.builds(
            lambda a, b, c, sr, q: f"{a}.{b}({c}){sr}{q}",
            n,
            n,
            n,
            st.one_of(st.just(""), st.builds(lambda k, x: f"{k}{x}", st.sampled_from(["SR", "ES"]), n)),
            st.sampled_from(["", " 3rd Party"]),
        ),
        st.builds(
            lambda m, a, b, c, sr, build: f"sip{m}.{a}-{b}-{c}{sr}{build}",
            st.sampled_from(["88xx", "78xx", "8831"]),
            n,
            n,
            n,
            st.one_of(st.just(""), n.map(lambda x: f"SR{x}")),
            st.one_of(st.just(""), n.map(lambda x: f"-{x}")),
        ),
    ),
    "cisco-mpp": st.one_of(
        st.builds(
            lambda a, b, c, msr: f"{a}.{b}.{c}{msr}",
            n,
            n,
            n,
            st.one_of(st.just(""), st.builds(lambda x, y: f" MSR{x}-{y}", n, n)),
        ),
        st.builds(
            lambda a, b, c, tail: f"sip88xx.{a}-{b}-{c}{tail}",
            n,
            n,
            n,
            st.one_of(st.just("MPP"), st.builds(lambda x, y: f"MSR{x}-{y}", n, n)),
        ),
    ),
    "teams-rooms": st.lists(n, min_size=3, max_size=4).map(lambda p: ".".join(map(str, p))),
    "teams-android": st.builds(
        lambda code, p: f"{code}{p}",
        st.one_of(st.just(""), n.map(lambda c: f"{c}/")),
        st.lists(n, min_size=2, max_size=5).map(lambda p: ".".join(map(str, p))),
    ),
    "yealink": st.lists(n, min_size=4, max_size=4).map(lambda p: ".".join(map(str, p))),
    "poly": st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d:04d}", n, n, n, n),
    "tandberg": st.builds(
        lambda train, nums, tail: f"{train}{nums}{tail}",
        st.sampled_from(["TE", "F", "te", "f"]),
        st.lists(n, min_size=1, max_size=3).map(lambda p: ".".join(map(str, p))),
        st.one_of(st.just(""), st.sampled_from([" NTSC", " PAL"]), hexid.map(lambda h: f".{h}")),
    ),
    "kernel": st.builds(
        lambda system, nums, tail: f"{system}{nums}{tail}",
        st.sampled_from(["", "Linux ", "Darwin ", "Windows "]),
        dotted,
        st.sampled_from(["", "-45-generic", "+deb12", "-arch1-1", ".el9_4.x86_64"]),
    ),
    "semver": st.builds(
        lambda a, b, c, pre, build: f"{a}.{b}.{c}{pre}{build}",
        n,
        n,
        n,
        st.one_of(st.just(""), st.sampled_from(["-rc.1", "-alpha", "-beta.2", "rc1", "a3", "b1"])),
        st.sampled_from(["", "+build.5"]),
    ),
}


def test_every_scheme_has_a_strategy() -> None:
    assert set(VALID) == set(SCHEMES)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_valid_versions_round_trip(scheme: str, data: st.DataObject) -> None:
    version = parse_version(scheme, data.draw(VALID[scheme]))
    again = parse_version(scheme, str(version))
    assert again == version
    assert hash(again) == hash(version)
    assert str(again) == str(version)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_order_is_total(scheme: str, data: st.DataObject) -> None:
    a, b, c = (parse_version(scheme, data.draw(VALID[scheme])) for _ in range(3))
    assert sum([a < b, a == b, a > b]) == 1  # trichotomy
    assert (a <= b) == (a < b or a == b)
    assert (a >= b) == (b <= a)
    if a <= b and b <= c:
        assert a <= c  # transitivity
    if a <= b and b <= a:
        assert a == b  # antisymmetry
    ordered = sorted([a, b, c])
    assert ordered[0] <= ordered[1] <= ordered[2]


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=60), st.from_regex(r"[0-9a-zA-Z .()/_-]{0,40}", fullmatch=True)))
def test_arbitrary_strings_parse_or_fail_clearly(scheme: str, text: str) -> None:
    try:
        version = parse_version(scheme, text)
    except VersionParseError as err:
        # The error itself is under test: it must say which scheme and why.
        assert (err.scheme, bool(err.reason), "is not a" in str(err)) == (scheme, True, True)  # noqa: PT017
        return
    assert isinstance(version, Version)
    assert parse_version(scheme, str(version)) == version


@given(
    value=st.one_of(st.none(), st.integers(), st.lists(st.integers()), st.text(min_size=201, max_size=300))
)
def test_non_strings_and_long_strings_are_parse_errors(value: object) -> None:
    with pytest.raises(VersionParseError):
        parse_version("generic", value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scheme", "text", "canonical"),
    [
        ("cisco-roomos", "RoomOS 11.14.2.3 2f2a4b1c9e", "RoomOS 11.14.2.3"),
        ("cisco-roomos", "ce9.15.3.17", "CE9.15.3.17"),
        ("cisco-roomos", "TC7.3.21", "TC7.3.21"),
        ("cisco-roomos", "ce8.1.1.2e3f4a5b6c7", "CE8.1.1"),
        ("cisco-roomos", "TC7.3.7.0b1c2d3", "TC7.3.7"),
        ("cisco-roomos", "RoomOS 10.19 StepUpg", "RoomOS 10.19 StepUpg"),
        ("cisco-phone", "14.2(1)", "14.2(1)"),
        ("cisco-phone", "12.0(1)SR2", "12.0(1)SR2"),
        ("cisco-phone", "sip88xx.12-5-1SR1-4", "12.5(1)SR1"),
        ("cisco-phone", "sip8821.11-0-5SR2-2", "11.0(5)SR2"),
        ("cisco-phone", "9-3-1-SR2-2", "9.3(1)SR2"),  # a 69xx load: a dash before the SR
        ("cisco-phone", "9.3(4)SR3 3rd Party", "9.3(4)SR3 3rd Party"),
        ("cisco-mpp", "sip88xx.14-2-1MPP", "14.2.1"),
        ("cisco-mpp", "sip68xx.11-2-3MSR1-1", "11.2.3 MSR1-1"),
        ("cisco-mpp", "11-0-1MSR1-1", "11.0.1 MSR1-1"),
        ("teams-rooms", "5.0.111.0", "5.0.111.0"),
        ("teams-android", "1449/1.0.96.2023082201", "1.0.96.2023082201"),
        ("yealink", "122.15.0.64", "122.15.0.64"),
        ("poly", "7.2.4.0017", "7.2.4.0017"),
        ("poly", "8.1.3.1301", "8.1.3.1301"),
    ],
)
def test_vendor_notations(scheme: str, text: str, canonical: str) -> None:
    assert str(parse_version(scheme, text)) == canonical


@pytest.mark.parametrize(
    ("scheme", "lower", "higher"),
    [
        ("cisco-phone", "12.5(1)", "12.5(1)SR1"),
        ("cisco-phone", "10.3(1)SR5", "10.3(1)SR6"),
        ("cisco-phone", "11.0(5)SR2", "11.0(5)SR3"),
        ("cisco-phone", "11.7(1)", "12.5(1)SR1"),
        ("cisco-phone", "10.3(1)SR4", "10.3(1)SR4b"),
        ("cisco-mpp", "11.3.1", "11.3.1 MSR1-3"),
        ("cisco-mpp", "11.3.1 MSR3-3", "11.3.2"),
        ("cisco-roomos", "ce9.15.3.14", "CE9.15.18.4"),
        ("cisco-roomos", "TC7.3.21", "ce8.0.0"),
        ("cisco-roomos", "RoomOS 11.9.2.4", "RoomOS 11.14.2.3"),
        ("poly", "7.2.4.0017", "7.2.4.0100"),
    ],
)
def test_vendor_order(scheme: str, lower: str, higher: str) -> None:
    assert parse_version(scheme, lower) < parse_version(scheme, higher)


def test_build_ids_do_not_change_the_version() -> None:
    assert parse_version("cisco-roomos", "RoomOS 11.9.2.4 5a7b1f0c9e2") == parse_version(
        "cisco-roomos", "RoomOS 11.9.2.4"
    )
    assert parse_version("cisco-roomos", "TC7.3.7") == parse_version("cisco-roomos", "7.3.7")
    assert parse_version("cisco-phone", "sip88xx.12-5-1SR1-4") == parse_version("cisco-phone", "12.5(1)SR1")


@pytest.mark.parametrize(
    ("scheme", "text", "reason"),
    [
        ("cisco-roomos", "RoomOS (build information unavailable)", "expected"),
        ("cisco-phone", "sip88xx.current", "expected"),
        ("cisco-phone", "11-0-1MSR1-1", "cisco-mpp"),
        ("yealink", "122.15.0", "four numbers"),
        ("nonsense", "1.0", "unknown version scheme"),
    ],
)
def test_parse_errors_say_why(scheme: str, text: str, reason: str) -> None:
    with pytest.raises(VersionParseError, match=reason):
        parse_version(scheme, text)


def test_odd_strings_inside_cisco_documents_do_not_crash() -> None:
    for text in ("10.19 StepUpg", "11-0-1MSR1-1", "9.3(4)SR3 3rd Party", "11.0(0.7) MPP", "7.5.6(XU)"):
        for scheme in SCHEMES:
            with contextlib.suppress(VersionParseError):
                parse_version(scheme, text)


@pytest.mark.parametrize(
    ("rng", "inside", "outside"),
    [
        ("vers:generic/<11.7(1)", ["11.5(1)", "10.3(1)SR5"], ["11.7(1)", "12.5(1)SR1"]),
        ("vers:generic/>=8.1.0|<8.2.0", [], []),
        (
            "vers:cisco-phone/>=12.0(1)|<=12.5(1)SR1|!=12.1(1)",
            ["12.0(1)", "12.5(1)SR1"],
            ["12.1(1)", "12.5(1)SR2"],
        ),
        ("vers:generic/*", ["1.0(1)"], []),
        ("vers:generic/=11.0(5)|=12.0(1)", ["11.0(5)"], ["11.0(5)SR1"]),
    ],
)
def test_vers_ranges(rng: str, inside: list[str], outside: list[str]) -> None:
    parsed = parse_vers(rng)
    for text in inside:
        assert parsed.contains(parse_version("cisco-phone", text)), text
    for text in outside:
        assert not parsed.contains(parse_version("cisco-phone", text)), text


def test_vers_roomos_range() -> None:
    rng = parse_vers("vers:generic/>=8.1.0|<8.2.0")
    assert rng.contains(parse_version("cisco-roomos", "ce8.1.1.2e3f4a5b6c7"))
    assert not rng.contains(parse_version("cisco-roomos", "ce8.2.2"))
