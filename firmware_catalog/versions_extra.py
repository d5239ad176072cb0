"""More version schemes: the TANDBERG TE/F trains and the host driver's ``kernel`` and ``semver``.

Kept apart from :mod:`firmware_catalog.versions` so that module stays readable; ``versions``
registers these classes in its ``SCHEMES`` table, so ``parse_version`` knows them all. Both build
on :mod:`firmware_catalog.version_base`.
"""

from __future__ import annotations

import re
from typing import Self

from firmware_catalog.errors import VersionParseError
from firmware_catalog.version_base import GenericVersion, Version, strip_build_id

_TANDBERG = re.compile(
    r"^(?P<train>te|f)\s*(?P<nums>\d{1,4}(?:\.\d{1,6}){0,3})(?:\s+(?P<std>ntsc|pal))?$",
    re.ASCII | re.IGNORECASE,
)


class TandbergVersion(Version):
    """TANDBERG/Cisco software before TC: ``TE4.1.7`` (E20) and ``F9.3.1`` (MXP series).

    The train letter is part of the release (``TE`` and ``F`` never compare equal); a build id
    after the release (``TE1.0.0.175435``, ``TE4.1.7.0e9a4a7``) and the video standard after an
    F release (``F8.1 NTSC``) are not. TE and F releases have at most three numbers, so a fourth
    is a build. Train: the letter and major.minor.
    """

    __slots__ = ()
    scheme = "tandberg"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        release, _build = strip_build_id(stripped)
        match = _TANDBERG.match(release)
        if match is None:
            raise VersionParseError(
                text, cls.scheme, "expected TE<major>.<minor>[.<patch>] or F<major>[.<minor>...]"
            )
        train = match["train"].upper()
        parts = [int(n) for n in match["nums"].split(".")][:3]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        canonical = train + ".".join(match["nums"].split(".")[:3])
        return cls(text, (train, tuple(parts)), canonical, (parts[0], parts[1] if len(parts) > 1 else 0))


_KERNEL = re.compile(
    r"^(?:(?P<system>[A-Za-z][A-Za-z_-]{0,30})\s+)?(?P<release>\d[\w.+~-]{0,120})$", re.ASCII
)


class KernelVersion(Version):
    """An operating system and its kernel release as the host driver reports them: ``Linux 6.8.0-45-generic``.

    The system name (``Linux``, ``Darwin``, ``Windows``) takes part in comparison, so releases of
    different systems never compare equal; the release orders like ``generic`` (numbers as numbers).
    """

    __slots__ = ()
    scheme = "kernel"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        match = _KERNEL.match(stripped)
        if match is None:
            raise VersionParseError(
                text, cls.scheme, "expected [<system> ]<release>, the release starting with a digit"
            )
        system = (match["system"] or "").lower()
        release = GenericVersion.parse(match["release"])
        return cls(text, (system, release.key), stripped, release.train)


_SEMVER = re.compile(
    r"^v?(?P<major>\d{1,9})\.(?P<minor>\d{1,9})(?:\.(?P<patch>\d{1,9}))?"
    r"(?:-?(?P<pre>(?:a|b|rc|alpha|beta|dev)[0-9A-Za-z.-]{0,30}|(?<=-)[0-9A-Za-z][0-9A-Za-z.-]{0,30}))?"
    r"(?:\+[0-9A-Za-z.-]{1,60})?$",
    re.ASCII,
)


def _pre_key(pre: str) -> tuple[tuple[int, int, str], ...]:
    parts = re.findall(r"\d+|[a-z]+", pre, re.IGNORECASE)
    return tuple((1, int(p), "") if p.isdigit() else (0, 0, p.lower()) for p in parts)


class SemverVersion(Version):
    """Semantic versions (``3.12.1``, ``1.4.0-rc.1``, ``2.0.0+build.5``) and Python's ``3.13.0rc1``.

    A pre-release sorts before its release; build metadata after ``+`` is ignored.
    """

    __slots__ = ()
    scheme = "semver"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        match = _SEMVER.match(stripped)
        if match is None:
            raise VersionParseError(
                text, cls.scheme, "expected <major>.<minor>[.<patch>][-<pre-release>][+<build>]"
            )
        nums = (int(match["major"]), int(match["minor"]), int(match["patch"] or 0))
        pre = match["pre"] or ""
        key = (nums, 0 if pre else 1, _pre_key(pre))
        canonical = ".".join(map(str, nums)) + (f"-{pre}" if pre else "")
        return cls(text, key, canonical, nums[:2])
