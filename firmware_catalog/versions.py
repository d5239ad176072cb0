"""Version schemes per vendor family: each a parser with clear errors and a total order.

A :class:`Version` compares only with versions of its own scheme. Equality and order use the
release only: build ids (``RoomOS 11.9.2.4 5a7b1f0c9e2``), load builds (``sip88xx.12-5-1SR1-4``)
and leading zeros never change a result. ``str(v)`` is the canonical release string, and
``parse(scheme, str(v)) == v`` holds for every parsed ``v``.

Schemes (``SCHEMES``): ``generic``, ``cisco-roomos`` (RoomOS, CE, TC), ``cisco-phone``
(enterprise SIP phone firmware), ``cisco-mpp`` (Multiplatform phone firmware), ``teams-rooms``
(Teams Rooms app), ``teams-android`` (Teams Android app on devices), ``yealink``, ``poly``, and in
:mod:`firmware_catalog.versions_extra` ``tandberg`` (TE and F trains), ``kernel`` and ``semver``.
"""

from __future__ import annotations

import re
from typing import Any, Self

from firmware_catalog.errors import VersionParseError
from firmware_catalog.version_base import (
    MAX_VERSION_LENGTH,
    GenericVersion,
    Version,
    _strip_zeros,
    strip_build_id,
)
from firmware_catalog.versions_extra import KernelVersion, SemverVersion, TandbergVersion

# The whole scheme API is imported from here (the base classes live in version_base).
__all__ = [
    "MAX_VERSION_LENGTH",
    "SCHEMES",
    "CiscoMppVersion",
    "CiscoPhoneVersion",
    "GenericVersion",
    "KernelVersion",
    "PolyVersion",
    "RoomOsVersion",
    "SemverVersion",
    "TandbergVersion",
    "TeamsAndroidVersion",
    "TeamsRoomsVersion",
    "Version",
    "YealinkVersion",
    "parse_version",
    "strip_build_id",
]

_ROOMOS = re.compile(
    r"^(?:(?P<prefix>roomos|ce|tcnc|tc)\s*)?(?P<nums>\d{1,6}(?:\.\d{1,6}){1,4})(?:\s+(?P<qual>[a-z][a-z0-9]{0,30}))?$",
    re.ASCII | re.IGNORECASE,
)
_ROOMOS_PREFIX = {"roomos": "RoomOS ", "ce": "CE", "tc": "TC", "tcnc": "TCNC"}


class RoomOsVersion(Version):
    """Cisco RoomOS and its predecessors CE and TC: ``ce9.15.3.17``, ``TC7.3.21``.

    One numbering line: TC up to 7.x, CE 8.x-9.x, RoomOS from 10. The prefix is optional and does
    not take part in comparison (``TC7.3.7 == 7.3.7``); ``TCNC`` (TC without encryption) is TC.
    TC releases have three numbers, so a fourth is a build (``TC5.1.0.280662`` is TC5.1.0), as is
    a hex build id (``TC7.3.6.3b9ba3f == TC7.3.6``). A trailing word such as ``StepUpg`` is a
    qualifier: ``10.19 StepUpg`` sorts just before ``10.19``. The release train is major.minor.
    """

    __slots__ = ("family",)
    scheme = "cisco-roomos"

    def __init__(
        self, text: str, key: tuple[Any, ...], canonical: str, train: tuple[int, ...], family: str
    ) -> None:
        super().__init__(text, key, canonical, train)
        self.family = family  # "roomos", "ce" or "tc"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        release, _build = strip_build_id(stripped)
        match = _ROOMOS.match(release)
        if match is None:
            raise VersionParseError(
                text, cls.scheme, "expected [RoomOS |CE|TC]<major>.<minor>[.<patch>...] [build id]"
            )
        texts = match["nums"].split(".")
        nums = tuple(int(n) for n in texts)
        prefix = (match["prefix"] or "").lower()
        family = (
            "tc"
            if prefix == "tcnc"
            else prefix or ("tc" if nums[0] <= 7 else "ce" if nums[0] <= 9 else "roomos")
        )
        if family == "tc" and len(nums) > 3:
            # TC releases have three numbers; a fourth is the build ("TC5.1.0.280662").
            nums, texts = nums[:3], texts[:3]
        qual = match["qual"] or ""
        key = (_strip_zeros(nums), 0 if qual else 1, qual.lower())
        canonical = _ROOMOS_PREFIX.get(prefix, "") + ".".join(texts) + (f" {qual}" if qual else "")
        return cls(text, key, canonical, nums[:2], family)


_SR = r"(?:(?P<sr>sr|es)(?P<srn>\d{1,4})(?P<srl>[a-z])?)?"
_PHONE_PAREN = re.compile(
    r"^(?P<major>\d{1,4})\.(?P<minor>\d{1,4})\((?P<maint>\d{1,6}(?:\.\d{1,6}){0,3})\)"
    + _SR
    + r"(?:\s+(?P<qual>[a-z0-9][a-z0-9 ]{0,30}))?$",
    re.ASCII | re.IGNORECASE,
)
_PHONE_LOAD = re.compile(
    r"^(?:sip[a-z0-9]{0,12}\.)?(?P<major>\d{1,4})-(?P<minor>\d{1,4})-(?P<maint>\d{1,6})"
    # 69xx loads put a dash before the service release: 9-3-1-SR2-2 is 9.3(1)SR2, build 2.
     r"(?:-(?=(?:sr|es)\d))?"
    + _SR
    + r"(?P<build>(?:-\d{1,8}){0,3})$",
    re.ASCII | re.IGNORECASE,
)
_MPP_MARK = re.compile(r"mpp|msr", re.ASCII | re.IGNORECASE)


class CiscoPhoneVersion(Version):
    """Cisco enterprise (SIP) phone firmware: ``14.2(1)``, ``12.0(1)SR2``, ``10.3(1)SR4b``.

    Phone loads name the release in dashes: ``sip88xx.12-5-1SR1-4`` is 12.5(1)SR1, the trailing
    ``-4`` is the load's build. Order: major, minor, maintenance, then plain < ES < SR, SR number,
    SR letter; a qualified release (``3rd Party``) sorts before the plain one. Train: major.minor.
    """

    __slots__ = ()
    scheme = "cisco-phone"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        match = _PHONE_PAREN.match(stripped) or _PHONE_LOAD.match(stripped)
        if match is None:
            if _MPP_MARK.search(stripped):
                raise VersionParseError(
                    text, cls.scheme, "Multiplatform (MPP) firmware: use the cisco-mpp scheme"
                )
            raise VersionParseError(
                text,
                cls.scheme,
                "expected <major>.<minor>(<maint>)[SRn] or a load sipNNxx.<major>-<minor>-<maint>",
            )
        major, minor = int(match["major"]), int(match["minor"])
        maint = tuple(int(n) for n in match["maint"].split("."))
        sr = (match["sr"] or "").upper()
        srn = int(match["srn"]) if match["srn"] else 0
        srl = (match["srl"] or "").lower()
        qual = " ".join((match.groupdict().get("qual") or "").split())
        key = (major, minor, maint, {"": 0, "ES": 1, "SR": 2}[sr], srn, srl, 0 if qual else 1, qual.lower())
        canonical = f"{major}.{minor}({'.'.join(map(str, maint))})"
        if sr:
            canonical += f"{sr}{srn}{srl}"
        if qual:
            canonical += f" {qual}"
        return cls(text, key, canonical, (major, minor))


_MPP_DOTTED = re.compile(
    r"^(?P<nums>\d{1,4}\.\d{1,4}\.\d{1,6})(?:\s*msr(?P<msr>\d{1,4})(?:-(?P<msrb>\d{1,6}))?)?(?:\s*mpp)?$",
    re.ASCII | re.IGNORECASE,
)
_MPP_LOAD = re.compile(
    r"^(?:sip[a-z0-9]{0,12}\.)?(?P<nums>\d{1,4}-\d{1,4}-\d{1,6})"
    r"(?:msr(?P<msr>\d{1,4})(?:-(?P<msrb>\d{1,6}))?|mpp(?:-\d{1,8}){0,2})?$",
    re.ASCII | re.IGNORECASE,
)


class CiscoMppVersion(Version):
    """Cisco Multiplatform (MPP, 3PCC) phone firmware: ``11.3.2``, ``11.2.3 MSR1-1``, ``sip88xx.14-2-1MPP``.

    ``sip68xx.11-2-3MSR1-1`` is release ``11.2.3 MSR1-1`` (the ``-1`` belongs to the release name).
    Order: major.minor.patch, then the plain release before its MSRs, by MSR number and its build.
    """

    __slots__ = ()
    scheme = "cisco-mpp"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        match = _MPP_DOTTED.match(stripped) or _MPP_LOAD.match(stripped)
        if match is None:
            raise VersionParseError(
                text,
                cls.scheme,
                "expected <major>.<minor>.<patch>[ MSRn-b] or a load sipNNxx.<major>-<minor>-<patch>MPP",
            )
        nums = tuple(int(n) for n in re.split(r"[.-]", match["nums"]))
        msr = int(match["msr"]) if match["msr"] else 0
        msrb = int(match["msrb"]) if match["msrb"] else 0
        key = (nums, 1 if match["msr"] else 0, msr, msrb)
        canonical = ".".join(map(str, nums))
        if match["msr"]:
            canonical += f" MSR{msr}" + (f"-{msrb}" if match["msrb"] else "")
            if not match["msrb"]:
                key = (nums, 1, msr, -1)
        return cls(text, key, canonical, nums[:2])


def _numeric(text: str, scheme: str, pattern: re.Pattern[str], expected: str) -> tuple[str, tuple[int, ...]]:
    match = pattern.match(text)
    if match is None:
        raise VersionParseError(text, scheme, f"expected {expected}")
    parts = match["nums"]
    return parts, tuple(int(p) for p in parts.split("."))


_FOUR = re.compile(r"^(?P<nums>\d{1,9}\.\d{1,9}\.\d{1,9}(?:\.\d{1,12})?)$", re.ASCII)


class TeamsRoomsVersion(Version):
    """Microsoft Teams Rooms app: ``5.0.111.0`` (major.minor.build[.revision]); missing parts are 0."""

    __slots__ = ()
    scheme = "teams-rooms"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        _parts, nums = _numeric(stripped, cls.scheme, _FOUR, "<major>.<minor>.<build>[.<revision>]")
        key = _strip_zeros(nums)
        return cls(text, (key,), ".".join(map(str, nums)), nums[:2])


_ANDROID = re.compile(r"^(?:(?P<code>\d{1,10})/)?(?P<nums>\d{1,9}(?:\.\d{1,12}){1,4})$", re.ASCII)


class TeamsAndroidVersion(Version):
    """Teams app on Android devices: ``1449/1.0.96.2023082201`` (version code / name) or the name alone.

    The version name orders releases; the leading version code is a build number and is ignored.
    """

    __slots__ = ()
    scheme = "teams-android"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        _parts, nums = _numeric(
            stripped, cls.scheme, _ANDROID, "[<code>/]<major>.<minor>[.<patch>[.<build>]]"
        )
        return cls(text, (_strip_zeros(nums),), ".".join(map(str, nums)), nums[:2])


_YEALINK = re.compile(r"^(?P<nums>\d{1,4}\.\d{1,4}\.\d{1,4}\.\d{1,6})$", re.ASCII)


class YealinkVersion(Version):
    """Yealink phone firmware ``122.15.0.64``: <hardware id>.<major>.<minor>.<build>.

    The first part identifies the hardware, so versions order by it first; the train is hw.major.
    """

    __slots__ = ()
    scheme = "yealink"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        _parts, nums = _numeric(
            stripped, cls.scheme, _YEALINK, "<hardware>.<major>.<minor>.<build> (four numbers)"
        )
        return cls(text, (nums,), ".".join(map(str, nums)), nums[:2])


_POLY = re.compile(r"^(?P<nums>\d{1,4}\.\d{1,4}\.\d{1,4}(?:\.\d{1,8})?)$", re.ASCII)


class PolyVersion(Version):
    """Poly device firmware ``7.2.4.0017``, ``8.1.3.1301``: major.minor.patch[.build]; ``0017 == 17``."""

    __slots__ = ()
    scheme = "poly"

    @classmethod
    def parse(cls, text: str) -> Self:
        stripped = cls._check_text(text)
        parts, nums = _numeric(stripped, cls.scheme, _POLY, "<major>.<minor>.<patch>[.<build>]")
        return cls(text, (_strip_zeros(nums),), parts, nums[:2])


SCHEMES: dict[str, type[Version]] = {
    cls.scheme: cls
    for cls in (
        GenericVersion,
        RoomOsVersion,
        CiscoPhoneVersion,
        CiscoMppVersion,
        TeamsRoomsVersion,
        TeamsAndroidVersion,
        YealinkVersion,
        PolyVersion,
        TandbergVersion,
        KernelVersion,
        SemverVersion,
    )
}


def parse_version(scheme: str, text: str) -> Version:
    """Parse ``text`` in ``scheme``. Raises :class:`VersionParseError` (also for an unknown scheme)."""
    cls = SCHEMES.get(scheme)
    if cls is None:
        raise VersionParseError(
            str(text), scheme, f"unknown version scheme; known: {', '.join(sorted(SCHEMES))}"
        )
    return cls.parse(text)
