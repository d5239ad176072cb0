"""Version ranges in ``vers:`` notation (purl-spec VERSION-RANGE-SPEC).

``vers:generic/>=8.1.0|<8.2.0``. The constraint versions are kept as text and parsed in the scheme
of the device being tested: ``vers:generic`` ranges in Cisco documents carry the vendor's own
notation (``<11.7(1)``, ``<10.3(1)SR6``). A range naming one of our schemes
(``vers:cisco-phone/<12.5(1)SR1``) is only compared with versions of that scheme.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from firmware_catalog.errors import RangeError, VersionParseError
from firmware_catalog.versions import SCHEMES, Version, parse_version

_COMPARATORS = (">=", "<=", "!=", "<", ">", "=")
MAX_CONSTRAINTS = 64


@dataclass(frozen=True, slots=True)
class Constraint:
    comparator: str  # one of "<", "<=", ">", ">=", "=", "!="
    version: str


@dataclass(frozen=True, slots=True)
class VersRange:
    """A parsed ``vers:`` range; ``scheme`` is its versioning scheme (``generic``, ``cisco-phone``, ...)."""

    text: str
    scheme: str
    constraints: tuple[Constraint, ...]  # empty means "*" (every version)

    @property
    def upper_bounds(self) -> tuple[str, ...]:
        return tuple(c.version for c in self.constraints if c.comparator == "<")

    def applies_to(self, scheme: str) -> bool:
        """Can versions of ``scheme`` be tested against this range?"""
        return self.scheme in {"generic", scheme}

    def contains(self, version: Version) -> bool:
        """Is ``version`` in the range? Raises VersionParseError if a bound is not of the version's scheme."""
        return self.contains_parsed(version, self.bounds_in(version.scheme))

    def bounds_in(self, scheme: str) -> list[tuple[str, Version]]:
        """The constraints with versions parsed in ``scheme`` (sorted by version)."""
        parsed = [(c.comparator, parse_version(scheme, c.version)) for c in self.constraints]
        parsed.sort(key=lambda item: item[1].key)
        return parsed

    @staticmethod
    def contains_parsed(  # noqa: C901, PLR0911, PLR0912 - the vers algorithm, step by step
        version: Version, bounds: list[tuple[str, Version]]
    ) -> bool:
        """The vers containment algorithm; ``bounds`` must be sorted by version (see ``bounds_in``).

        Compares release keys directly: the bounds were parsed in the version's own scheme.
        """
        if not bounds:
            return True
        key = version.key
        ranged: list[tuple[str, Any]] = []
        for comparator, bound in bounds:
            if comparator == "=":
                if key == bound.key:
                    return True
            elif comparator == "!=":
                if key == bound.key:
                    return False
            else:
                ranged.append((comparator, bound.key))
        if not ranged:
            # Only "=" / "!=" constraints: "!=" alone means "every other version".
            return all(c == "!=" for c, _ in bounds)
        last = len(ranged) - 1
        for index, (comparator, bound_key) in enumerate(ranged):
            if comparator[0] == "<":
                if index == 0 and (key < bound_key or (comparator == "<=" and key == bound_key)):
                    return True
                continue
            if not (key > bound_key or (comparator == ">=" and key == bound_key)):
                continue
            if index == last:
                return True
            next_comparator, next_key = ranged[index + 1]
            if next_comparator[0] == "<" and (
                key < next_key or (next_comparator == "<=" and key == next_key)
            ):
                return True
        return False


def parse_vers(text: str) -> VersRange:
    """Parse ``vers:<scheme>/<constraints>``. Raises :class:`RangeError` with the reason.

    Rejected: a missing ``vers:`` prefix, an empty or unknown scheme, empty constraints, a
    constraint without a version, more than 64 constraints, and a range that matches no version
    (a lower bound above the upper bound that follows it, as in ``>=9.0|<8.0``).
    """
    if not isinstance(text, str):
        raise RangeError(f"expected a string, got {type(text).__name__}")
    if not text.startswith("vers:"):
        raise RangeError(f"{text[:80]!r} is not in vers: notation")
    scheme, sep, rest = text[5:].partition("/")
    scheme = scheme.strip().lower()
    if not sep or not scheme:
        raise RangeError(f"{text[:80]!r}: expected vers:<scheme>/<constraints>")
    if scheme != "generic" and scheme not in SCHEMES:
        raise RangeError(f"{text[:80]!r}: unknown versioning scheme {scheme!r}")
    rest = rest.strip()
    if rest == "*":
        return VersRange(text, scheme, ())
    parts = [p.strip() for p in rest.split("|")]
    if len(parts) > MAX_CONSTRAINTS:
        raise RangeError(f"{text[:80]!r}: more than {MAX_CONSTRAINTS} constraints")
    constraints: list[Constraint] = []
    for part in parts:
        if not part:
            raise RangeError(f"{text[:80]!r}: empty constraint")
        comparator = next((c for c in _COMPARATORS if part.startswith(c)), "=")
        version = unquote(part.removeprefix(comparator)).strip()
        if not version:
            raise RangeError(f"{text[:80]!r}: constraint {part!r} has no version")
        constraints.append(Constraint(comparator, version))
    result = VersRange(text, scheme, tuple(constraints))
    _check_satisfiable(result)
    return result


def _check_satisfiable(rng: VersRange) -> None:
    """Reject ranges whose written order shows an empty interval (``>=9|<8``, ``>5|<5``).

    Checked with the range's own scheme (``generic`` for vers:generic), which orders the vendor
    notations Cisco uses consistently with their own schemes.
    """
    scheme = rng.scheme if rng.scheme in SCHEMES else "generic"
    try:
        parsed = [(c.comparator, parse_version(scheme, c.version)) for c in rng.constraints]
    except VersionParseError as err:
        raise RangeError(f"{rng.text[:80]!r}: {err}") from err
    ranged = [(c, v) for c, v in parsed if c not in {"=", "!="}]
    for (c1, v1), (c2, v2) in itertools.pairwise(ranged):
        if (
            c1 in {">", ">="}
            and c2 in {"<", "<="}
            and (v1 > v2 or (v1 == v2 and not (c1 == ">=" and c2 == "<=")))
        ):
            raise RangeError(
                f"{rng.text[:80]!r}: matches no version (lower bound {v1} is not below upper bound {v2})"
            )
    seen: set[Version] = set()
    for _comparator, version in parsed:
        if version in seen:
            raise RangeError(f"{rng.text[:80]!r}: version {version} appears twice")
        seen.add(version)
