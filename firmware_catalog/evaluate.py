"""What one advisory says about one device version: CSAF product status semantics.

Products of an advisory that share a :class:`ProductKey` form a group ("Cisco IP Phone 7841" with
its range ``<11.7(1)`` and its fixed ``11.7(1)``). For a group and a vulnerability:

1. ``affected`` if a known_affected/first_affected/last_affected statement covers the version
   (no version = every version, an exact version, or a ``vers:`` range);
2. else ``fixed`` if a fixed/first_fixed statement names the version, or the version is at or
   above a *first* fixed release: a ``first_fixed`` version, or a ``fixed`` version that is the
   exclusive upper bound of an affected range (``<11.7(1)`` + fixed ``11.7(1)``). With several
   first fixed releases, each covers only its own release train (major.minor);
3. else ``not_affected`` if a known_not_affected statement covers it;
4. else ``unknown``, with the reason: nothing else is "not affected".

Groups combine as affected > fixed > not_affected > unknown (a definite statement about a more
specific product beats silence about another); vulnerabilities of one advisory combine as
affected > unknown > fixed > not_affected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from firmware_catalog.errors import VersionParseError
from firmware_catalog.model import AFFECTED_STATUSES, FIXED_STATUSES, Advisory, ProductEntry, Status
from firmware_catalog.products import ProductKey
from firmware_catalog.vers import VersRange
from firmware_catalog.versions import Version, parse_version

_GROUP_RANK: dict[Status, int] = {"affected": 3, "fixed": 2, "not_affected": 1, "unknown": 0}
_VULN_RANK: dict[Status, int] = {"affected": 3, "unknown": 2, "fixed": 1, "not_affected": 0}


@dataclass(slots=True)
class _Statements:
    """The statements of one group about one vulnerability, parsed in one version scheme."""

    every: set[str] = field(default_factory=set)
    exact: dict[object, set[str]] = field(default_factory=dict)
    ranges: list[tuple[str, list[tuple[str, Version]]]] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    fixed: list[tuple[Version, str]] = field(default_factory=list)
    first_fixed: list[tuple[Version, str]] = field(default_factory=list)
    candidates: list[tuple[Version, str]] = field(default_factory=list)  # fixed + recommended versions
    fixed_distinct: list[tuple[Version, str]] = field(default_factory=list)  # by version, lowest first
    single_first_fixed: bool = False  # exactly one first fixed release: it covers every train


@dataclass(frozen=True, slots=True)
class GroupResult:
    status: Status
    reason: str | None
    first_fixed: tuple[Version, str] | None


class Group:
    """Products of one advisory with the same key, and their status statements."""

    __slots__ = ("_compiled", "advisory_id", "key", "product_ids", "product_name", "statements")

    def __init__(self, advisory_id: str, key: ProductKey, product_name: str) -> None:
        self.advisory_id = advisory_id
        self.key = key
        self.product_name = product_name
        self.product_ids: set[str] = set()
        self.statements: list[tuple[int, str, ProductEntry]] = []
        self._compiled: dict[str, dict[int, _Statements]] = {}

    def compiled(self, scheme: str) -> dict[int, _Statements]:
        found = self._compiled.get(scheme)
        if found is None:
            found = self._compiled[scheme] = self._compile(scheme)
        return found

    def _compile(self, scheme: str) -> dict[int, _Statements]:  # noqa: C901 - one branch per statement kind
        per_vuln: dict[int, _Statements] = {}
        for vuln, category, entry in self.statements:
            st = per_vuln.setdefault(vuln, _Statements())
            if entry.version is not None:
                try:
                    version = parse_version(scheme, entry.version)
                except VersionParseError:
                    continue  # a listed version of another notation cannot equal this device's version
                if category == "recommended":
                    st.candidates.append((version, entry.version))
                    continue
                st.exact.setdefault(version.key, set()).add(category)
                if category in FIXED_STATUSES:
                    st.fixed.append((version, entry.version))
                    st.candidates.append((version, entry.version))
                    if category == "first_fixed":
                        st.first_fixed.append((version, entry.version))
            elif entry.version_range is not None:
                rng = entry.version_range
                if not rng.applies_to(scheme):
                    st.opaque.append(f"range {rng.text!r} is not of scheme {scheme}")
                    continue
                try:
                    st.ranges.append((category, rng.bounds_in(scheme)))
                except VersionParseError as err:
                    st.opaque.append(f"range {rng.text!r} cannot be compared: {err}")
            elif entry.range_text is not None:
                st.opaque.append(f"range {entry.range_text!r} is not in vers: notation")
            elif category != "recommended":
                st.every.add(category)
        for st in per_vuln.values():
            uppers = {
                bound.key
                for category, bounds in st.ranges
                if category in AFFECTED_STATUSES
                for comparator, bound in bounds
                if comparator == "<"
            }
            st.first_fixed.extend(
                item for item in st.fixed if item[0].key in uppers and item not in st.first_fixed
            )
            st.fixed_distinct = sorted({v.key: (v, t) for v, t in st.fixed}.values(), key=lambda i: i[0].key)
            st.single_first_fixed = len({v.key for v, _ in st.first_fixed}) == 1
        return per_vuln


def _status(  # noqa: C901, PLR0911 - the rules of the module docstring, in order
    st: _Statements, version: Version | None, why: str | None, product: str
) -> tuple[Status, str | None]:
    categories = st.every
    if version is not None:
        hit = st.exact.get(version.key)
        if hit:
            categories = categories | hit
        for category, bounds in st.ranges:
            if category not in categories and VersRange.contains_parsed(version, bounds):
                categories = categories | {category}
    if not categories.isdisjoint(AFFECTED_STATUSES):
        return "affected", None
    if not categories.isdisjoint(FIXED_STATUSES):
        return "fixed", None
    if "known_not_affected" in categories:
        return "not_affected", None
    if version is None:
        return "unknown", why
    key = version.key
    for first, _text in st.first_fixed:
        if (st.single_first_fixed or first.train == version.train) and key >= first.key:
            return "fixed", None
    if "under_investigation" in categories:
        return "unknown", f"{product}: under investigation"
    if st.opaque:
        return "unknown", f"{product}: {st.opaque[0]}"
    return "unknown", f"{product}: the document states nothing about version {version}"


def _first_fixed(st: _Statements, version: Version | None) -> tuple[Version, str] | None:
    distinct = st.fixed_distinct
    if len(distinct) == 1:
        return distinct[0]
    if version is None:
        return None
    return next((item for item in distinct if item[0].train == version.train), None)


@dataclass(frozen=True, slots=True)
class AdvisoryResult:
    status: Status
    reason: str | None
    first_fixed: str | None
    products: tuple[str, ...]
    cvss: float | None
    fix_url: str | None = None


class Plan:
    """The groups of one advisory that concern one kind of device.

    What does not depend on the device's version (products, CVSS) is computed once; ``results``
    is a cache the matcher keeps per (scheme, release).
    """

    __slots__ = ("advisory", "cvss", "fix_url", "groups", "kev", "products", "results")

    def __init__(self, advisory: Advisory, groups: list[Group]) -> None:
        self.advisory = advisory
        self.groups = groups
        self.products = tuple(dict.fromkeys(g.product_name for g in groups))
        vulns = {vuln for g in groups for vuln, _category, _entry in g.statements}
        product_ids: set[str] = set().union(*(g.product_ids for g in groups))
        scores = [
            score.base_score
            for index, vuln in enumerate(advisory.vulnerabilities)
            if index in vulns
            for score in vuln.scores
            if product_ids.intersection(score.product_ids)
        ]
        # The scores for the device's products; else the advisory's own (a CSAF score names the
        # affected products only, so a not_affected or unknown finding would show none at all).
        self.cvss = max(scores) if scores else advisory.max_cvss
        self.fix_url = next(
            (
                r.url
                for index, vuln in enumerate(advisory.vulnerabilities)
                if index in vulns
                for r in vuln.remediations
                if r.category == "vendor_fix" and r.url and product_ids.intersection(r.product_ids)
            ),
            None,
        )
        self.results: dict[object, Any] = {}
        self.kev: Any = (
            None  # the matcher's KEV summary for the advisory (plans are dropped when KEV changes)
        )

    def evaluate(self, scheme: str | None, version: Version | None, why: str | None) -> AdvisoryResult:
        """Combine the groups into one result for the advisory."""
        if scheme is None:
            return AdvisoryResult("unknown", why, None, self.products, self.cvss, self.fix_url)
        per_vuln: dict[int, GroupResult] = {}
        for group in self.groups:
            for vuln, st in group.compiled(scheme).items():
                status, reason = _status(st, version, why, group.product_name)
                first_fixed = _first_fixed(st, version)
                best = per_vuln.get(vuln)
                if (
                    best is None
                    or _GROUP_RANK[status] > _GROUP_RANK[best.status]
                    or (status == best.status and best.first_fixed is None and first_fixed is not None)
                ):
                    per_vuln[vuln] = GroupResult(status, reason, first_fixed)
        if not per_vuln:
            return AdvisoryResult(
                "unknown", why or "no product status for this product", None, self.products, self.cvss
            )
        if len(per_vuln) == 1:
            (final,) = per_vuln.values()
            fixed = final.first_fixed[1] if final.first_fixed is not None else None
        else:
            final = max(per_vuln.values(), key=lambda item: _VULN_RANK[item.status])
            fixes = [r.first_fixed for r in per_vuln.values() if r.first_fixed is not None]
            fixed = max(fixes, key=lambda item: item[0].key)[1] if fixes and _same_scheme(fixes) else None
        return AdvisoryResult(
            status=final.status,
            reason=final.reason if final.status == "unknown" else None,
            first_fixed=fixed,
            products=self.products,
            cvss=self.cvss,
            fix_url=self.fix_url,
        )


def evaluate_advisory(
    advisory: Advisory, groups: list[Group], scheme: str | None, version: Version | None, why: str | None
) -> AdvisoryResult:
    """Combine the groups that concern a device into one result for the advisory."""
    return Plan(advisory, groups).evaluate(scheme, version, why)


def _same_scheme(items: list[tuple[Version, str]]) -> bool:
    return len({v.scheme for v, _ in items}) == 1


def candidate_versions(groups: list[Group], scheme: str) -> list[tuple[Version, str]]:
    """Fixed and recommended versions the groups state, in ``scheme``."""
    found: dict[object, tuple[Version, str]] = {}
    for group in groups:
        for st in group.compiled(scheme).values():
            for version, text in st.candidates:
                found.setdefault(version.key, (version, text))
    return sorted(found.values(), key=lambda item: item[0].key)
