"""The base of every version scheme: :class:`Version`, the ``generic`` scheme and build-id handling.

Split from :mod:`firmware_catalog.versions` so that the schemes in ``versions`` and
``versions_extra`` both build on it without importing each other.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

from firmware_catalog.errors import VersionParseError

MAX_VERSION_LENGTH = 200

# A build id: 7+ hex characters with at least one letter, after a space or a dot, at the end.
_BUILD_ID = re.compile(
    r"^(?P<release>.*?)[ .](?P<build>(?=[0-9a-f]*[a-f])[0-9a-f]{7,})$", re.ASCII | re.IGNORECASE
)


def strip_build_id(text: str) -> tuple[str, str | None]:
    """Split ``'RoomOS 11.9.2.4 5a7b1f0c9e2'`` into ``('RoomOS 11.9.2.4', '5a7b1f0c9e2')``."""
    match = _BUILD_ID.match(text)
    if match is None:
        return text, None
    return match["release"], match["build"]


def _strip_zeros(parts: tuple[int, ...]) -> tuple[int, ...]:
    end = len(parts)
    while end > 1 and parts[end - 1] == 0:
        end -= 1
    return parts[:end]


class Version:
    """A parsed version. Subclasses set ``scheme`` and implement ``parse``."""

    __slots__ = ("canonical", "key", "text", "train")
    scheme: ClassVar[str] = "abstract"

    def __init__(self, text: str, key: tuple[Any, ...], canonical: str, train: tuple[int, ...]) -> None:
        self.text = text  # as given
        self.key = key  # what equality and order use
        self.canonical = canonical  # str(self)
        self.train = train  # release train (major, minor) for "first fixed in the device's train"

    @classmethod
    def parse(cls, text: str) -> Self:
        raise NotImplementedError

    @classmethod
    def _check_text(cls, text: object) -> str:
        if not isinstance(text, str):
            raise VersionParseError(repr(text), cls.scheme, f"expected a string, got {type(text).__name__}")
        if len(text) > MAX_VERSION_LENGTH:
            raise VersionParseError(text, cls.scheme, f"longer than {MAX_VERSION_LENGTH} characters")
        stripped = text.strip()
        if not stripped:
            raise VersionParseError(text, cls.scheme, "empty string")
        return stripped

    def _same_scheme(self, other: object) -> Version:
        if not isinstance(other, Version):
            return NotImplemented  # type: ignore[no-any-return]
        if other.scheme != self.scheme:
            raise TypeError(f"cannot compare {self.scheme} version with {other.scheme} version")
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.scheme == other.scheme and self.key == other.key

    def __hash__(self) -> int:
        return hash((self.scheme, self.key))

    def __lt__(self, other: object) -> bool:
        return bool(self.key < self._same_scheme(other).key)

    def __le__(self, other: object) -> bool:
        return bool(self.key <= self._same_scheme(other).key)

    def __gt__(self, other: object) -> bool:
        return bool(self.key > self._same_scheme(other).key)

    def __ge__(self, other: object) -> bool:
        return bool(self.key >= self._same_scheme(other).key)

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


_SEGMENT = re.compile(r"\d+|[a-z]+", re.ASCII | re.IGNORECASE)


class GenericVersion(Version):
    """Any string with letters or digits: numeric runs compare as numbers, letter runs as text.

    ``1.0 == 1.0.0``; a letter run sorts before a number at the same place (``1.0a < 1.0.1``),
    and a shorter version before a longer one with the same start (``1.0 < 1.0a``).
    """

    __slots__ = ()
    scheme = "generic"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        segments = _SEGMENT.findall(stripped)
        if not segments:
            raise VersionParseError(text, cls.scheme, "no digits or letters")
        key: list[tuple[int, int, str]] = [
            (1, int(seg), "") if seg.isdigit() else (0, 0, seg.lower()) for seg in segments
        ]
        while len(key) > 1 and key[-1] == (1, 0, ""):
            key.pop()
        numbers = [int(seg) for seg in segments[:2] if seg.isdigit()]
        return cls(text, tuple(key), stripped, tuple(numbers))
