"""vers: parsing raises only RangeError, and containment agrees with the constraints."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_catalog import RangeError, VersionParseError, parse_version
from firmware_catalog.vers import parse_vers


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=80), st.from_regex(r"vers:[a-z-]{0,12}/[<>=!|*0-9a-z.()]{0,30}", fullmatch=True)
    )
)
def test_arbitrary_ranges_parse_or_raise_range_error(text: str) -> None:
    try:
        rng = parse_vers(text)
    except RangeError as err:
        assert str(err)  # noqa: PT017 - the message is under test
        return
    with contextlib.suppress(VersionParseError):
        rng.contains(parse_version("generic", "1.2.3"))


@given(low=st.integers(0, 50), high=st.integers(0, 50), probe=st.integers(0, 60))
def test_interval(low: int, high: int, probe: int) -> None:
    text = f"vers:generic/>={low}.0|<{high}.0"
    if low >= high:
        with pytest.raises(RangeError, match="matches no version"):
            parse_vers(text)
        return
    assert parse_vers(text).contains(parse_version("generic", f"{probe}.0")) == (low <= probe < high)
