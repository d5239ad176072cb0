"""Findings per device, kept up to date as devices and the catalog change.

Devices that report the same (vendor, product, firmware) share one result tuple, so a full match
costs one evaluation per distinct combination plus a dictionary step per device. One device's
re-match costs the advisories filed under its product keys. A catalog change re-evaluates only the
combinations whose keys the changed advisory is filed under.
"""

from __future__ import annotations

from collections.abc import Iterable

from firmware_catalog.catalog import Catalog, IndexKey
from firmware_catalog.errors import VersionParseError
from firmware_catalog.evaluate import AdvisoryResult, Group, candidate_versions, evaluate_advisory
from firmware_catalog.model import Device, Finding, Recommendation, Verdict
from firmware_catalog.products import DeviceIdentity, covers, identify_device
from firmware_catalog.versions import Version, parse_version

Combo = tuple[str, str, str]  # (vendor, product, software_version) as reported

_PRIORITY = {"affected": 0, "unknown": 1, "fixed": 2, "not_affected": 3}


class _Profile:
    """A (vendor, product, firmware) combination: identity, parsed version, and its verdicts."""

    __slots__ = ("identity", "keys", "verdicts", "version", "why")

    def __init__(self, combo: Combo) -> None:
        self.identity: DeviceIdentity = identify_device(*combo)
        self.version: Version | None = None
        self.why: str | None = self.identity.reason
        if self.identity.scheme is not None:
            try:
                self.version = parse_version(self.identity.scheme, combo[2])
            except VersionParseError as err:
                self.why = f"software version {combo[2]!r} cannot be parsed: {err.reason}"
        self.keys: list[IndexKey] = self.identity.lookup_keys()
        self.verdicts: tuple[Verdict, ...] | None = None


class Matcher:
    """Matches devices against a :class:`Catalog`; registers itself for catalog changes."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._profiles: dict[Combo, _Profile] = {}
        self._by_key: dict[IndexKey, set[Combo]] = {}
        self._unmapped: set[Combo] = set()
        self._devices: dict[str, Device] = {}
        self._combo_of: dict[str, Combo] = {}
        self._devices_of: dict[Combo, set[str]] = {}
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
            return Recommendation(device.device_id, current, None, "affected by no advisory", ())
        scheme, version = profile.identity.scheme, profile.version
        if scheme is None or version is None:
            return Recommendation(device.device_id, current, None, profile.why, affected)
        touching = self._touching(profile)
        groups = [g for groups in touching.values() for g in groups]
        for candidate, text in candidate_versions(groups, scheme):
            if candidate <= version:
                continue
            results = {
                aid: evaluate_advisory(self.catalog.get(aid), gs, scheme, candidate, None)  # type: ignore[arg-type]
                for aid, gs in touching.items()
            }
            if all(results[aid].status in {"fixed", "not_affected"} for aid in affected) and not any(
                r.status == "affected" for r in results.values()
            ):
                return Recommendation(device.device_id, current, text, None, affected)
        return Recommendation(
            device.device_id, current, None, "no version stated by the advisories fixes all of them", affected
        )

    # -- a fleet, kept up to date ---------------------------------------------------------------
    def set_devices(self, devices: Iterable[Device]) -> None:
        """Replace the fleet and match every device (full match)."""
        self._devices.clear()
        self._combo_of.clear()
        self._devices_of.clear()
        for device in devices:
            self._store(device)

    def set_device(self, device: Device) -> list[Finding]:
        """Add or update one device (e.g. it reported a new firmware) and return its findings."""
        old = self._combo_of.get(device.device_id)
        if old is not None:
            self._forget(device.device_id, old)
        self._store(device)
        return self.findings(device.device_id)

    def remove_device(self, device_id: str) -> None:
        combo = self._combo_of.get(device_id)
        if combo is not None:
            self._forget(device_id, combo)
            del self._devices[device_id]

    def findings(self, device_id: str | None = None) -> list[Finding]:
        """Findings of one device, or of every device (device order, most urgent first)."""
        ids = [device_id] if device_id is not None else list(self._devices)
        out: list[Finding] = []
        for did in ids:
            combo = self._combo_of.get(did)
            if combo is not None:
                out.extend(Finding.of(did, v) for v in self._verdicts(combo))
        return out

    def verdicts(self, device_id: str) -> tuple[Verdict, ...]:
        combo = self._combo_of.get(device_id)
        return self._verdicts(combo) if combo is not None else ()

    def devices_affected_by(self, advisory_id: str) -> list[tuple[str, Verdict]]:
        """(device id, verdict) for every device the advisory concerns."""
        out: list[tuple[str, Verdict]] = []
        for combo, device_ids in self._devices_of.items():
            for verdict in self._verdicts(combo):
                if verdict.advisory_id == advisory_id:
                    out.extend((did, verdict) for did in sorted(device_ids))
        return out

    # -- internals ------------------------------------------------------------------------------
    def _store(self, device: Device) -> None:
        combo = _combo(device)
        self._devices[device.device_id] = device
        self._combo_of[device.device_id] = combo
        self._devices_of.setdefault(combo, set()).add(device.device_id)
        self._verdicts(combo)

    def _forget(self, device_id: str, combo: Combo) -> None:
        del self._combo_of[device_id]
        ids = self._devices_of.get(combo)
        if ids is not None:
            ids.discard(device_id)
            if not ids:
                del self._devices_of[combo]

    def _profile(self, combo: Combo) -> _Profile:
        profile = self._profiles.get(combo)
        if profile is None:
            profile = self._profiles[combo] = _Profile(combo)
            for key in profile.keys:
                self._by_key.setdefault(key, set()).add(combo)
            if not profile.identity.mapped:
                self._unmapped.add(combo)
        return profile

    def _touching(self, profile: _Profile) -> dict[str, list[Group]]:
        found = self.catalog.groups_for(profile.keys)
        touching = {}
        for advisory_id, groups in found.items():
            covering = [g for g in groups if covers(g.key, profile.identity)]
            if covering:
                touching[advisory_id] = covering
        return touching

    def _verdicts(self, combo: Combo) -> tuple[Verdict, ...]:
        profile = self._profile(combo)
        if profile.verdicts is None:
            profile.verdicts = self._evaluate(profile)
        return profile.verdicts

    def _evaluate(self, profile: _Profile) -> tuple[Verdict, ...]:
        verdicts = []
        if not profile.identity.mapped:
            reason = f"product cannot be mapped: {profile.identity.reason}"
            for advisory_id in self.catalog.advisories_of_vendor(profile.identity.vendor):
                advisory = self.catalog.get(advisory_id)
                assert advisory is not None
                verdicts.append(
                    self._verdict(
                        advisory.id, advisory.cves, AdvisoryResult("unknown", reason, None, (), None)
                    )
                )
            return tuple(verdicts)
        for advisory_id, groups in self._touching(profile).items():
            advisory = self.catalog.get(advisory_id)
            assert advisory is not None
            result = evaluate_advisory(
                advisory, groups, profile.identity.scheme, profile.version, profile.why
            )
            verdicts.append(self._verdict(advisory.id, advisory.cves, result))
        verdicts.sort(key=lambda v: (not v.kev, _PRIORITY[v.status], -(v.cvss or 0.0), v.advisory_id))
        return tuple(verdicts)

    def _verdict(self, advisory_id: str, cves: tuple[str, ...], result: AdvisoryResult) -> Verdict:
        kev_entries = [e for e in (self.catalog.kev.get(cve) for cve in cves) if e is not None]
        return Verdict(
            advisory_id=advisory_id,
            cves=cves,
            status=result.status,
            first_fixed=result.first_fixed,
            kev=bool(kev_entries),
            cvss=result.cvss,
            reason=result.reason,
            products=result.products,
            kev_due_date=min((e.due_date for e in kev_entries if e.due_date), default=None),
            kev_ransomware=any(e.ransomware for e in kev_entries),
        )

    def _on_catalog_change(self, keys: set[IndexKey] | None) -> None:
        if keys is None:
            stale: set[Combo] = set(self._profiles)
        else:
            stale = set(self._unmapped)
            for key in keys:
                stale |= self._by_key.get(key, set())
        for combo in stale:
            profile = self._profiles.get(combo)
            if profile is None:
                continue
            profile.verdicts = None
            if combo in self._devices_of:
                profile.verdicts = self._evaluate(profile)


def _combo(device: Device) -> Combo:
    return (device.vendor, device.product, device.software_version)
