"""The release catalog: known releases per firmware family, with train and date.

Many vendor advisories list only affected versions and state no fixed release. Target selection
then falls back to the releases the NOC knows (a data file per family, seeded from
``firmware_catalog/data/releases/``) and the versions the fleet itself reports.

Releases are kept per version scheme: RoomOS, CE and TC share one numbering line, so a release
file for ``cisco-roomos`` (or ``roomos``) serves devices of all three families.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from firmware_catalog.errors import CatalogError, VersionParseError
from firmware_catalog.products import FAMILY_SCHEME
from firmware_catalog.versions import SCHEMES, Version, parse_version


@dataclass(frozen=True, slots=True)
class Release:
    version: Version
    text: str  # as written in the source
    family: str  # as written in the source
    train: str | None = None
    released: str | None = None
    source: str | None = None  # where it is known from; "fleet" for a reported version


def scheme_of(family: str) -> str | None:
    """The version scheme of a catalog family (``roomos``) or a scheme name itself (``cisco-roomos``)."""
    return FAMILY_SCHEME.get(family) or (family if family in SCHEMES else None)


class ReleaseCatalog:
    """Known releases, by scheme, lowest first. ``add`` ignores a version already known."""

    def __init__(self) -> None:
        self._by_scheme: dict[str, dict[object, Release]] = {}
        self._sorted: dict[str, list[Release]] = {}

    def add(self, release: Release) -> None:
        bucket = self._by_scheme.setdefault(release.version.scheme, {})
        if release.version.key not in bucket:
            bucket[release.version.key] = release
            self._sorted.pop(release.version.scheme, None)

    def add_reported(self, scheme: str, version: Version) -> None:
        """A version a device reports: the fleet proves that it exists."""
        if version.scheme == scheme:
            self.add(Release(version, str(version), scheme, source="fleet"))

    def releases(self, scheme: str) -> list[Release]:
        found = self._sorted.get(scheme)
        if found is None:
            found = self._sorted[scheme] = sorted(
                self._by_scheme.get(scheme, {}).values(), key=lambda r: r.version.key
            )
        return found

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_scheme.values())

    def load(self, data: Any, source: str) -> list[str]:
        """Add the entries of one release file (a JSON array). Returns one error line per bad entry;
        the good entries are added."""
        if not isinstance(data, list):
            return [f"{source}: expected a JSON array of releases"]
        errors: list[str] = []
        for index, entry in enumerate(data):
            where = f"{source}: [{index}]"
            if not isinstance(entry, Mapping):
                errors.append(f"{where}: expected an object")
                continue
            family, text = entry.get("family"), entry.get("version")
            if not isinstance(family, str) or scheme_of(family) is None:
                errors.append(f"{where}.family: unknown family {family!r}")
                continue
            if not isinstance(text, str):
                errors.append(f"{where}.version: expected a string")
                continue
            scheme = scheme_of(family)
            assert scheme is not None
            try:
                version = parse_version(scheme, text)
            except VersionParseError as err:
                errors.append(f"{where}.version: {err.reason}")
                continue
            self.add(
                Release(
                    version,
                    text,
                    family,
                    _text(entry.get("train")),
                    _text(entry.get("released")),
                    _text(entry.get("source")),
                )
            )
        return errors

    def load_bytes(self, raw: bytes | str, source: str) -> list[str]:
        try:
            data = json.loads(raw)
        except ValueError as err:
            return [f"{source}: not JSON: {err}"]
        return self.load(data, source)

    @classmethod
    def seed(cls) -> ReleaseCatalog:
        """The release lists shipped in ``firmware_catalog/data/releases`` (see its README).

        Raises :class:`CatalogError` if a shipped file is broken (a packaging bug).
        """
        catalog = cls()
        errors: list[str] = []
        folder = resources.files("firmware_catalog") / "data" / "releases"
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if item.name.endswith(".json"):
                errors += catalog.load_bytes(item.read_bytes(), f"firmware_catalog/data/releases/{item.name}")
        if errors:
            raise CatalogError("; ".join(errors))
        return catalog

    def extend(self, releases: Iterable[Release]) -> None:
        for release in releases:
            self.add(release)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
