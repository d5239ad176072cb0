"""Findings per device, kept up to date as devices and the catalog change.

Results depend only on the device's identity (vendor, firmware family, model) and its parsed
release, so devices that differ only in build ids share one result tuple: a full match costs one
evaluation per distinct (identity, release) plus a dictionary step per device. A *plan* (one
advisory plus the product groups that cover an identity) is shared by identities alike and caches
its verdict per release. One device's re-match costs the plans filed under its product keys. A
catalog change re-evaluates only the results whose index keys the changed advisory is filed under;
a KEV change re-evaluates everything.

Not thread-safe: use one Matcher from one thread (the controller's event loop).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from firmware_catalog.catalog import Catalog, IndexKey
from firmware_catalog.errors import VersionParseError
from firmware_catalog.evaluate import AdvisoryResult, Plan, candidate_versions
from firmware_catalog.model import (
    Advisory,
    Device,
    DeviceStatus,
    Finding,
    Recommendation,
    Verdict,
    device_status,
)
from firmware_catalog.products import DeviceIdentity, covers, identify_device
from firmware_catalog.versions import Version, parse_version

# (vendor, product, software_version, family, scheme) as reported; family and scheme may be None.
Combo = tuple[str, str, str, str | None, str | None]
# What a result depends on: the identity and the parsed release (or why there is none).
ResultKey = tuple[DeviceIdentity, str | None, object]

_PRIORITY = {"affected": 0, "unknown": 1, "fixed": 2, "not_affected": 3}
_UNKNOWN_NAMED = 3  # unknown advisories a recommendation's reason names, the rest are counted


@functools.lru_cache(maxsize=65_536)  # pure; a fleet repeats few combinations
def match_problem(
    vendor: str,
    product: str,
    software_version: str | None,
    family: str | None = None,
    scheme: str | None = None,
) -> str | None:
    """Why a device cannot be matched at all (every advisory is then ``unknown`` for it), or None."""
    if not software_version:
        return "no firmware version reported"
    identity = identify_device(vendor, product, software_version, family, scheme)
    if not identity.mapped or identity.scheme is None:
        return f"product cannot be mapped: {identity.reason}"
    try:
        parse_version(identity.scheme, software_version)
    except VersionParseError as err:
        return f"software version {software_version!r} cannot be parsed: {err.reason}"
    return None


class _Profile:
    """A (vendor, product, firmware) combination: identity and parsed version. Never goes stale."""

    __slots__ = ("identity", "plan_key", "result_id", "result_key", "version", "why")

    def __init__(self, combo: Combo) -> None:
        self.identity: DeviceIdentity = identify_device(*combo)
        self.version: Version | None = None
        self.why: str | None = self.identity.reason
        if self.identity.scheme is not None and not combo[2].strip():
            # a known family, no version yet: say that, as match_problem does, not "'' cannot be parsed"
            self.why = "no firmware version reported yet"
        elif self.identity.scheme is not None:
            try:
                self.version = parse_version(self.identity.scheme, combo[2])
            except VersionParseError as err:
                self.why = f"software version {combo[2]!r} cannot be parsed: {err.reason}"
        release = self.version.key if self.version is not None else ("unparsable", self.why)
        self.result_key: ResultKey = (self.identity, self.identity.scheme, release)
        self.result_id = -1  # the matcher's small integer for result_key
        self.plan_key = -1  # the matcher's small integer for (scheme, release)


class Matcher:
    """Matches devices against a :class:`Catalog`; registers itself for catalog changes."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._profiles: dict[Combo, _Profile] = {}
        self._result_ids: dict[ResultKey, int] = {}
        self._plan_keys: dict[object, int] = {}
        self._identity_of: list[DeviceIdentity] = []  # by result id
        self._results: dict[int, tuple[Verdict, ...]] = {}
        self._touch: dict[DeviceIdentity, list[Plan]] = {}
        self._plans: dict[str, dict[tuple[int, ...], Plan]] = {}
        self._by_key: dict[IndexKey, set[int]] = {}
        self._unmapped: set[int] = set()
        self._devices: dict[str, Device] = {}
        self._key_of: dict[str, int] = {}
        self._devices_of: dict[int, set[str]] = {}
        catalog.add_listener(self._on_catalog_change)

    # -- one device, no state -------------------------------------------------------------------
    def match_device(self, device: Device) -> list[Finding]:
        """Findings for one device (one per advisory that concerns its product), most urgent first."""
        return [Finding.of(device.device_id, v) for v in self._verdicts(_combo(device))]

    def recommend(self, device: Device) -> Recommendation:
        """The lowest version the advisories state that fixes every advisory the device is affected by."""
        profile = self._profile(_combo(device))
        verdicts = self._verdicts(_combo(device))
        affected = tuple(v.advisory_id for v in verdicts if v.status == "affected")
        current = device.software_version
        if not affected:
            return Recommendation(device.device_id, current, None, _not_affected_reason(verdicts), ())
        scheme, version = profile.identity.scheme, profile.version
        if scheme is None or version is None:
            return Recommendation(device.device_id, current, None, profile.why, affected)
        plans = self._touching(profile.identity)
        groups = [g for plan in plans for g in plan.groups]
        for candidate, text in candidate_versions(groups, scheme):
            if candidate <= version:
                continue
            results = {plan.advisory.id: plan.evaluate(scheme, candidate, None) for plan in plans}
            if all(results[aid].status in {"fixed", "not_affected"} for aid in affected) and not any(
                r.status == "affected" for r in results.values()
            ):
                return Recommendation(device.device_id, current, text, None, affected)
        return Recommendation(
            device.device_id, current, None, "no version stated by the advisories fixes all of them", affected
        )

    def identify(self, device: Device) -> tuple[DeviceIdentity, Version | None, str | None]:
        """(identity, parsed version or None, why there is none) of a device; cached per combination."""
        profile = self._profile(_combo(device))
        return profile.identity, profile.version, profile.why

    def verdicts_at(self, device: Device, version: Version) -> tuple[Verdict, ...]:
        """What the advisories would say about ``device`` running ``version`` (its own scheme).

        The identity stays the device's own (a target string alone may not tell the family).
        Cached per (scheme, release) like every other result. Empty for another scheme.
        """
        identity = self._profile(_combo(device)).identity
        if not identity.mapped or identity.scheme != version.scheme:
            return ()
        plan_key = self._plan_keys.setdefault((identity.scheme, version.key), len(self._plan_keys))
        return self._ranked(identity, plan_key, version, None)

    # -- a fleet, kept up to date ---------------------------------------------------------------
    def set_devices(self, devices: Iterable[Device]) -> None:
        """Replace the fleet and match every device (full match)."""
        self._devices.clear()
        self._key_of.clear()
        self._devices_of.clear()
        for device in devices:
            self._store(device)

    def set_device(self, device: Device) -> list[Finding]:
        """Add or update one device (e.g. it reported a new firmware) and return its findings."""
        old = self._key_of.get(device.device_id)
        if old is not None:
            self._forget(device.device_id, old)
        self._store(device)
        if len(self._profiles) > 4 * max(len(self._devices), 10_000):
            self._compact()
        return self.findings(device.device_id)

    def remove_device(self, device_id: str) -> None:
        key = self._key_of.get(device_id)
        if key is not None:
            self._forget(device_id, key)
            del self._devices[device_id]

    def device_status(self, device: Device) -> DeviceStatus:
        """The device's status as a whole (``not_covered``: no advisory concerns its product)."""
        return device_status(v.status for v in self._verdicts(_combo(device)))

    def findings(self, device_id: str | None = None) -> list[Finding]:
        """Findings of one device, or of every device (device order, most urgent first)."""
        ids = [device_id] if device_id is not None else list(self._devices)
        out: list[Finding] = []
        for did in ids:
            device = self._devices.get(did)
            if device is not None:
                out.extend(Finding.of(did, v) for v in self._verdicts(_combo(device)))
        return out

    def verdicts(self, device_id: str) -> tuple[Verdict, ...]:
        device = self._devices.get(device_id)
        return self._verdicts(_combo(device)) if device is not None else ()

    def devices_affected_by(self, advisory_id: str) -> list[tuple[str, Verdict]]:
        """(device id, verdict) for every device the advisory concerns."""
        out: list[tuple[str, Verdict]] = []
        for device_ids in list(self._devices_of.values()):
            for verdict in self.verdicts(next(iter(device_ids))):
                if verdict.advisory_id == advisory_id:
                    out.extend((did, verdict) for did in sorted(device_ids))
        return out

    # -- internals ------------------------------------------------------------------------------
    def _compact(self) -> None:
        """Forget parsed combinations no device reports any more (firmware strings churn over years)."""
        used = {_combo(device) for device in self._devices.values()}
        self._profiles = {combo: p for combo, p in self._profiles.items() if combo in used}
        live = {p.result_id for p in self._profiles.values()}
        for result_id in set(self._results) - live:
            del self._results[result_id]
            self._unmapped.discard(result_id)
        for ids in self._by_key.values():
            ids.intersection_update(live)

    def _store(self, device: Device) -> None:
        profile = self._profile(_combo(device))
        key = profile.result_id
        self._devices[device.device_id] = device
        self._key_of[device.device_id] = key
        self._devices_of.setdefault(key, set()).add(device.device_id)
        self._result(profile)

    def _forget(self, device_id: str, key: int) -> None:
        del self._key_of[device_id]
        ids = self._devices_of.get(key)
        if ids is not None:
            ids.discard(device_id)
            if not ids:
                del self._devices_of[key]

    def _profile(self, combo: Combo) -> _Profile:
        profile = self._profiles.get(combo)
        if profile is None:
            profile = self._profiles[combo] = _Profile(combo)
            result_id = self._result_ids.get(profile.result_key)
            if result_id is None:
                result_id = self._result_ids[profile.result_key] = len(self._identity_of)
                self._identity_of.append(profile.identity)
            profile.result_id = result_id
            profile.plan_key = self._plan_keys.setdefault(profile.result_key[1:], len(self._plan_keys))
        return profile

    def _touching(self, identity: DeviceIdentity) -> list[Plan]:
        """The plans (advisory + covering groups) for an identity; shared by identities alike."""
        plans = self._touch.get(identity)
        if plans is None:
            plans = []
            for advisory_id, groups in self.catalog.groups_for(identity.lookup_keys()).items():
                covering = [g for g in groups if covers(g.key, identity)]
                if not covering:
                    continue
                by_groups = self._plans.setdefault(advisory_id, {})
                group_key = tuple(id(g) for g in covering)
                plan = by_groups.get(group_key)
                if plan is None:
                    advisory = self.catalog.get(advisory_id)
                    assert advisory is not None
                    plan = by_groups[group_key] = Plan(advisory, covering)
                plans.append(plan)
            self._touch[identity] = plans
        return plans

    def _verdicts(self, combo: Combo) -> tuple[Verdict, ...]:
        return self._result(self._profile(combo))

    def _result(self, profile: _Profile) -> tuple[Verdict, ...]:
        key = profile.result_id
        verdicts = self._results.get(key)
        if verdicts is None:
            verdicts = self._results[key] = self._evaluate(profile)
            identity = profile.identity
            if identity.mapped:
                for index_key in identity.lookup_keys():
                    self._by_key.setdefault(index_key, set()).add(key)
            else:
                self._unmapped.add(key)
        return verdicts

    def _evaluate(self, profile: _Profile) -> tuple[Verdict, ...]:
        identity = profile.identity
        verdicts = []
        if not identity.mapped:
            reason = f"product cannot be mapped: {identity.reason}"
            for advisory_id in self.catalog.advisories_of_vendor(identity.vendor):
                advisory = self.catalog.get(advisory_id)
                assert advisory is not None
                result = AdvisoryResult("unknown", reason, None, (), advisory.max_cvss)
                verdicts.append(self._verdict(advisory, result))
            return tuple(verdicts)
        return self._ranked(identity, profile.plan_key, profile.version, profile.why)

    def _ranked(
        self, identity: DeviceIdentity, cache_key: int, version: Version | None, why: str | None
    ) -> tuple[Verdict, ...]:
        ranked: list[tuple[tuple[int, bool, float, str], Verdict]] = []
        for plan in self._touching(identity):
            item = plan.results.get(cache_key)
            if item is None:
                verdict = self._verdict(plan.advisory, plan.evaluate(identity.scheme, version, why))
                rank = (  # what needs action first: affected, then KEV, then CVSS (as the API sorts)
                    _PRIORITY[verdict.status],
                    not verdict.kev,
                    -(verdict.cvss or 0.0),
                    verdict.advisory_id,
                )
                item = plan.results[cache_key] = (rank, verdict)
            ranked.append(item)
        ranked.sort(key=_first)
        return tuple(verdict for _rank, verdict in ranked)

    def _kev_summary(self, advisory: Advisory) -> tuple[tuple[str, ...], bool, str | None, bool]:
        """(cves, in KEV, earliest KEV due date, known ransomware use) of an advisory."""
        cves = advisory.cves
        kev = self.catalog.kev
        entries = [e for e in (kev.get(cve) for cve in cves) if e is not None] if len(kev) else []
        due = min((e.due_date for e in entries if e.due_date), default=None)
        return cves, bool(entries), due, any(e.ransomware for e in entries)

    def _verdict(self, advisory: Advisory, result: AdvisoryResult, plan: Plan | None = None) -> Verdict:
        summary = plan.kev if plan is not None else None
        if summary is None:
            summary = self._kev_summary(advisory)
            if plan is not None:
                plan.kev = summary
        cves, in_kev, due, ransomware = summary
        return Verdict(
            advisory_id=advisory.id,
            cves=cves,
            status=result.status,
            first_fixed=result.first_fixed,
            kev=in_kev,
            cvss=result.cvss,
            reason=result.reason,
            products=result.products,
            kev_due_date=due,
            kev_ransomware=ransomware,
            fix_url=result.fix_url,
        )

    def _on_catalog_change(self, advisory_id: str | None, keys: set[IndexKey] | None) -> None:
        if advisory_id is None or keys is None:
            stale = set(self._results)
            self._plans.clear()
            self._touch.clear()
        else:
            self._plans.pop(advisory_id, None)
            stale = set(self._unmapped)
            for index_key in keys:
                stale |= self._by_key.get(index_key, set())
            for result_id in stale:
                self._touch.pop(self._identity_of[result_id], None)
        for result_id in stale:
            self._results.pop(result_id, None)
        self._unmapped -= stale
        for result_id in stale:
            device_ids = self._devices_of.get(result_id)
            if device_ids:  # recompute now for devices that have it; others lazily
                device = self._devices[next(iter(device_ids))]
                self._result(self._profile(_combo(device)))


def _first(item: tuple[tuple[int, bool, float, str], Verdict]) -> tuple[int, bool, float, str]:
    return item[0]


def _not_affected_reason(verdicts: tuple[Verdict, ...]) -> str:
    """Why there is no target for a device no advisory says is affected: not covered at all, or
    which advisories leave it unknown and why."""
    if not verdicts:
        return "no advisory in the catalog concerns this product"
    unknown = [v for v in verdicts if v.status == "unknown"]
    if not unknown:
        return "affected by no advisory"
    named = "; ".join(f"{v.advisory_id}: {v.reason or 'no statement'}" for v in unknown[:_UNKNOWN_NAMED])
    more = f"; and {len(unknown) - _UNKNOWN_NAMED} more" if len(unknown) > _UNKNOWN_NAMED else ""
    advisories = "advisory" if len(unknown) == 1 else "advisories"
    return f"no advisory says it is affected; unknown for {len(unknown)} {advisories}: {named}{more}"


def _combo(device: Device) -> Combo:
    return (device.vendor, device.product, device.software_version, device.family, device.scheme)
