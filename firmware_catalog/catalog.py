"""The catalog: advisories by id, indexed by product key, plus the KEV set.

Documents come in one at a time (``add``), replace older revisions of the same advisory, and can
be removed. Listeners (a :class:`~firmware_catalog.matcher.Matcher`) hear about every change so
they can re-match only the devices the change touches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_catalog.csaf import decode_document, parse_advisory
from firmware_catalog.errors import CatalogError, DocumentError
from firmware_catalog.evaluate import Group
from firmware_catalog.kev import KevCatalog
from firmware_catalog.model import Advisory

IndexKey = tuple[str, str, str]
# (changed advisory id, its index keys old and new); (None, None): everything changed (the KEV set)
Listener = Callable[[str | None, set[IndexKey] | None], None]


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    errors: tuple[DocumentError, ...] = ()

    def __add__(self, other: ImportReport) -> ImportReport:
        return ImportReport(
            self.added + other.added,
            self.replaced + other.replaced,
            self.unchanged + other.unchanged,
            self.errors + other.errors,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "replaced": list(self.replaced),
            "unchanged": list(self.unchanged),
            "errors": [{"document": e.document, "path": e.path, "reason": e.reason} for e in self.errors],
        }


class Catalog:
    def __init__(self) -> None:
        self._advisories: dict[str, Advisory] = {}
        self._groups: dict[str, list[Group]] = {}
        self._index: dict[IndexKey, dict[str, list[Group]]] = {}
        self._vendors: dict[str, set[str]] = {}
        self._kev = KevCatalog()
        self._listeners: list[Listener] = []
        self.revision = 0

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._advisories)

    def __contains__(self, advisory_id: object) -> bool:
        return advisory_id in self._advisories

    def __iter__(self) -> Iterator[Advisory]:
        return iter(list(self._advisories.values()))

    def get(self, advisory_id: str) -> Advisory | None:
        return self._advisories.get(advisory_id)

    @property
    def kev(self) -> KevCatalog:
        return self._kev

    def groups_for(self, keys: Iterable[IndexKey]) -> dict[str, list[Group]]:
        """Advisory id → groups filed under any of ``keys`` (the caller filters with ``covers``)."""
        found: dict[str, list[Group]] = {}
        for key in keys:
            for advisory_id, groups in self._index.get(key, {}).items():
                bucket = found.setdefault(advisory_id, [])
                bucket.extend(g for g in groups if g not in bucket)
        return found

    def advisories_of_vendor(self, vendor: str) -> list[str]:
        return sorted(self._vendors.get(vendor, ()))

    # -- changing -------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add(
        self,
        document: Mapping[str, Any] | bytes | str | Advisory,
        source: str = "<memory>",
        *,
        validate: bool = True,
    ) -> tuple[Advisory, str]:
        """Add or replace one CSAF document. Returns the advisory and "added", "replaced" or "unchanged".

        ``document`` may be an :class:`Advisory` parsed already (in a thread, say); ``source`` and
        ``validate`` are then not used.
        Raises :class:`DocumentError` (the catalog is then unchanged).
        """
        if isinstance(document, Advisory):
            advisory = document
        else:
            data = decode_document(document, source) if isinstance(document, (bytes, str)) else document
            advisory = parse_advisory(data, source, validate=validate)
        old = self._advisories.get(advisory.id)
        if old is not None and old.document == advisory.document:
            return old, "unchanged"
        changed = self._unindex(advisory.id)
        self._advisories[advisory.id] = advisory
        groups = _group(advisory)
        self._groups[advisory.id] = groups
        for group in groups:
            for key in group.key.index_keys():
                self._index.setdefault(key, {}).setdefault(advisory.id, []).append(group)
                changed.add(key)
            self._vendors.setdefault(group.key.vendor, set()).add(advisory.id)
        self._changed(advisory.id, changed)
        return advisory, "replaced" if old is not None else "added"

    def remove(self, advisory_id: str) -> bool:
        if advisory_id not in self._advisories:
            return False
        changed = self._unindex(advisory_id)
        del self._advisories[advisory_id]
        self._changed(advisory_id, changed)
        return True

    def set_kev(self, kev: KevCatalog) -> None:
        self._kev = kev
        self.revision += 1
        for listener in self._listeners:
            listener(None, None)

    def import_documents(
        self, documents: Iterable[tuple[str, Mapping[str, Any] | bytes | str]], *, validate: bool = True
    ) -> ImportReport:
        """Add many documents; a bad one is reported and the rest go on."""
        added: list[str] = []
        replaced: list[str] = []
        unchanged: list[str] = []
        errors: list[DocumentError] = []
        for source, document in documents:
            try:
                advisory, change = self.add(document, source, validate=validate)
            except DocumentError as err:
                errors.append(err)
                continue
            {"added": added, "replaced": replaced, "unchanged": unchanged}[change].append(advisory.id)
        return ImportReport(tuple(added), tuple(replaced), tuple(unchanged), tuple(errors))

    def import_path(self, path: str | Path, *, validate: bool = True) -> ImportReport:
        """Import a CSAF file, or every ``*.json`` file below a directory (sorted)."""
        root = Path(path)
        if root.is_dir():
            files = sorted(p for p in root.rglob("*.json") if p.is_file())
        elif root.is_file():
            files = [root]
        else:
            raise CatalogError(f"{root}: no such file or directory")
        report = ImportReport()
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as err:
                report += ImportReport(
                    errors=(DocumentError(str(file), "$", f"cannot read: {err.strerror}"),)
                )
                continue
            report += self.import_documents([(str(file), data)], validate=validate)
        return report

    # -- internals ------------------------------------------------------------------------------
    def _unindex(self, advisory_id: str) -> set[IndexKey]:
        changed: set[IndexKey] = set()
        for group in self._groups.pop(advisory_id, []):
            for key in group.key.index_keys():
                bucket = self._index.get(key, {})
                bucket.pop(advisory_id, None)
                if not bucket:
                    self._index.pop(key, None)
                changed.add(key)
            vendors = self._vendors.get(group.key.vendor)
            if vendors is not None:
                vendors.discard(advisory_id)
        return changed

    def _changed(self, advisory_id: str, keys: set[IndexKey]) -> None:
        self.revision += 1
        for listener in self._listeners:
            listener(advisory_id, keys)


def _group(advisory: Advisory) -> list[Group]:
    groups: dict[object, Group] = {}
    for index, vuln in enumerate(advisory.vulnerabilities):
        for category, ids in vuln.product_status.items():
            for pid in ids:
                entry = advisory.products[pid]
                group = groups.get(entry.key)
                if group is None:
                    group = groups[entry.key] = Group(advisory.id, entry.key, entry.product)
                group.statements.append((index, category, entry))
                group.product_ids.add(pid)
    return [g for g in groups.values() if g.key.index_keys()]
