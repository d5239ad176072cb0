"""Target versions per device (issue 15, item 4), and which rule chose each.

Rules, in order:

1. ``operator``: the operator named a target for the device's family.
2. ``advisory_fixed``: the lowest version the advisories state (fixed or recommended) that clears
   every ``affected`` finding of the current version (:meth:`Matcher.recommend`).
3. ``release_catalog``: the advisories state no such release (many records list only affected
   versions), so the lowest known release above the current one that none of the device's
   advisories lists as affected (:class:`~firmware_catalog.releases.ReleaseCatalog`).
4. ``current``: no affected finding and no operator choice: the current version is the target.

No target: the version or family is unknown (``unknown_version``), or no known version clears the
findings (``no_target``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from firmware_catalog.errors import VersionParseError
from firmware_catalog.matcher import Matcher
from firmware_catalog.model import Device, Verdict
from firmware_catalog.releases import ReleaseCatalog
from firmware_catalog.versions import Version, parse_version

TargetRule = Literal["operator", "advisory_fixed", "release_catalog", "current"]
NoTarget = Literal["unknown_version", "no_target"]


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """The target of one device, or why there is none (``problem``)."""

    family: str | None
    current: Version | None
    target: Version | None
    target_text: str | None
    rule: TargetRule | None
    problem: NoTarget | None
    reason: str
    verdicts: tuple[Verdict, ...]  # the current version's findings
    at_target: tuple[Verdict, ...]  # what the advisories say about the target

    @property
    def up_to_date(self) -> bool:
        return self.current is not None and self.target is not None and self.current >= self.target


class TargetSelector:
    """Chooses targets for many devices.

    A choice depends only on the device's identity and parsed release, so devices that differ in
    build ids or spelling share one (a fleet of 100,000 has a few hundred distinct choices).
    """

    def __init__(
        self, matcher: Matcher, releases: ReleaseCatalog, operator_targets: Mapping[str, str] | None = None
    ) -> None:
        self.matcher = matcher
        self.releases = releases
        self.operator_targets = dict(operator_targets or {})
        self._cache: dict[tuple[object, ...], TargetChoice] = {}

    def choose(self, device: Device) -> TargetChoice:
        identity, version, why = self.matcher.identify(device)
        key = (identity, version.scheme, version.key) if version is not None else (identity, None, why)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._choose(device)
        return found

    def _choose(self, device: Device) -> TargetChoice:  # noqa: PLR0911 - the rules of the module docstring
        identity, current, why = self.matcher.identify(device)
        verdicts = self.matcher.verdicts_at(device, current) if current is not None else ()
        family = identity.family
        if family is None or current is None:
            reason = why or "the firmware family or version is unknown"
            return TargetChoice(family, None, None, None, None, "unknown_version", reason, verdicts, ())
        affected = [v.advisory_id for v in verdicts if v.status == "affected"]
        chosen = self.operator_targets.get(family)
        if chosen is not None:
            try:
                target = parse_version(current.scheme, chosen)
            except VersionParseError as err:
                reason = f"operator target {chosen!r} for {family} cannot be parsed: {err.reason}"
                return TargetChoice(family, current, None, None, None, "no_target", reason, verdicts, ())
            return self._done(device, family, current, target, "operator", "the operator's choice")
        if not affected:
            return TargetChoice(
                family,
                current,
                current,
                str(current),
                "current",
                None,
                "no advisory calls the current version affected",
                verdicts,
                verdicts,
            )
        recommendation = self.matcher.recommend(device)
        if recommendation.target is not None:
            target = parse_version(current.scheme, recommendation.target)
            return self._done(
                device,
                family,
                current,
                target,
                "advisory_fixed",
                f"lowest version the advisories state that clears {', '.join(affected)}",
            )
        for release in self.releases.releases(current.scheme):
            if release.version <= current:
                continue
            at_target = self.matcher.verdicts_at(device, release.version)
            if not any(v.status == "affected" for v in at_target):
                where = "reported by the fleet" if release.source == "fleet" else "in the release catalog"
                return self._done(
                    device,
                    family,
                    current,
                    release.version,
                    "release_catalog",
                    f"the advisories state no fixed release; lowest known release {where} that none of "
                    f"them lists as affected",
                )
        reason = f"no known version clears {', '.join(affected)}"
        return TargetChoice(family, current, None, None, None, "no_target", reason, verdicts, ())

    def _done(  # noqa: PLR0917 - private, called with the choice's parts in order
        self, device: Device, family: str, current: Version, target: Version, rule: TargetRule, reason: str
    ) -> TargetChoice:
        verdicts = self.matcher.verdicts_at(device, current)
        at_target = self.matcher.verdicts_at(device, target)
        return TargetChoice(family, current, target, str(target), rule, None, reason, verdicts, at_target)
