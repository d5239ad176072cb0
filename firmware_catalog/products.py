"""Product-name normalization: advisory product names and device-reported names meet as keys.

Advisories name software lines ("Cisco RoomOS Software", "Cisco Session Initiation Protocol (SIP)
Software"), hardware ("Cisco Unified IP Conference Phone 8831"), series ("Cisco IP Phone 7800
Series") and variants ("... with Multiplatform Firmware"). Devices report a model ("CP-8851-3PCC",
"Cisco Room Kit Pro") and a firmware string ("sip88xx.11-3-2MPP", "RoomOS 11.9.2.4 ...").

Both sides become keys of the same shape:

* ``vendor``: normalized vendor ("cisco", "microsoft", "poly", "yealink").
* ``families``: firmware families the name names (roomos, ce, tc, sip, mpp, spa, teams-rooms,
  teams-android, yealink, poly). A device has one family, usually read from its firmware string.
* ``model``: the hardware model ("8851", "8821-ex", "room kit pro"), or ``series`` ("78" for the
  7800 Series), or neither for a whole software line or device class.
* ``device_class``: "phone" or "endpoint" when known.

Rules: a name that names families covers only devices running one of them. A hardware name that
names no family covers devices of that hardware running its default firmware, never a variant
that vendors always name explicitly (Multiplatform/3PCC). A model must be equal; a series covers
models that start with it. The vocabulary below is per vendor line, not per document.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from firmware_catalog.vocabulary import FAMILIES, problem

_LEGAL_WORDS = frozenset(
    {
        "inc",
        "ltd",
        "llc",
        "co",
        "corp",
        "corporation",
        "gmbh",
        "ag",
        "sa",
        "limited",
        "systems",
        "company",
        "technology",
        "technologies",
        "network",
        "networks",
        "communications",
        "plc",
    }
)
_VENDOR_ALIASES = {"polycom": "poly", "hp poly": "poly", "plantronics": "poly", "cisco webex": "cisco"}


def normalize_vendor(name: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in _LEGAL_WORDS]
    joined = " ".join(words)
    return _VENDOR_ALIASES.get(joined, joined)


# (vendor, pattern, families). Order matters only for readability: every match adds its families.
_FAMILY_PHRASES: tuple[tuple[str, re.Pattern[str], frozenset[str]], ...] = tuple(
    (vendor, re.compile(pattern), frozenset(families))
    for vendor, pattern, families in (
        ("cisco", r"\broomos\b", {"roomos"}),
        ("cisco", r"\btc\s*/\s*ce\b|\bce\s*/\s*tc\b|\bce and tc\b|\btc and ce\b", {"tc", "ce"}),
        ("cisco", r"\bcollaboration endpoint software\b|\(ce\)|\bce software\b", {"ce"}),
        ("cisco", r"\btelepresence codec\b|\(tc\)|\btc software\b", {"tc"}),
        (
            "cisco",
            r"\bmultiplatform\b|\bmulti-platform\b|\bthird-party call control\b|\b3pcc\b|\bmpp\b",
            {"mpp"},
        ),
        (
            "cisco",
            (
                r"\bsession initiation protocol(?:\s*\(sip\))?"
                r"|\bsip (?:software|firmware)\b|\benterprise firmware\b"
            ),
            {"sip"},
        ),
        ("cisco", r"\bsmall business\b", {"spa"}),
        ("microsoft", r"\bteams\b.*\bandroid\b|\bandroid\b.*\bteams\b", {"teams-android"}),
        ("microsoft", r"\bteams rooms?\b(?!.*\bandroid\b)", {"teams-rooms"}),
    )
)
# Words that say nothing about the model once vendor and family are known.
_FILLER = frozenset(
    {
        "cisco",
        "webex",
        "telepresence",
        "the",
        "with",
        "for",
        "on",
        "and",
        "software",
        "firmware",
        "app",
        "application",
        "codec",
        "system",
        "systems",
        "device",
        "devices",
        "endpoint",
        "endpoints",
        "microsoft",
        "teams",
        "rooms",
        "room system",
        "windows",
        "android",
        "edition",
        "of",
    }
)
_PHONE_WORDS = re.compile(r"\b(?:phones?|dect|ata|conference phone|handset)\b|^cp-\d")
_PHONE_MODEL = re.compile(r"(?:\bcp-|\b)(?P<ata>ata\s*-?\s*)?(?P<num>\d{3,4})(?P<ex>-ex\b)?")
# "7800 Series", "78xx Series", and every "NN00" in "7800 and 8800 Series".
_SERIES_ANY = re.compile(r"\b(?P<prefix>[a-z]*\d{1,2})(?:00|xx)\b")
_ENDPOINT_WORDS = re.compile(r"\b(?:room|desk|board|codec|telepresence|webex|navigator|[sdmi]x\d+)\b")
_PID_SUFFIXES = frozenset({"k9", "nr", "w", "c", "b", "wl", "cc", "bun"})  # order options, not models

# Scheme and device class of every family: from the one vocabulary the drivers use too.
FAMILY_SCHEME = {name: family.scheme for name, family in FAMILIES.items()}
FAMILY_CLASS = {name: family.device_class for name, family in FAMILIES.items() if family.device_class}
# Firmware variants that vendors always name; an unqualified hardware name never means them.
QUALIFIED_FAMILIES = frozenset({"mpp", "spa"})
# Firmware family of every device of a vendor that has one firmware line.
_VENDOR_FAMILY = {"yealink": "yealink", "poly": "poly"}


@dataclass(frozen=True, slots=True)
class ProductKey:
    vendor: str
    families: frozenset[str]
    models: frozenset[str]  # "Cisco IP Phone 8811, 8841 and 8845" names three
    series: frozenset[str]  # "Cisco IP Phone 7800 and 8800 Series" names two
    device_class: str | None

    def index_keys(self) -> list[tuple[str, str, str]]:
        """Keys under which the catalog index files this product."""
        if self.models or self.series:
            return [("m", self.vendor, m) for m in sorted(self.models)] + [
                ("s", self.vendor, s) for s in sorted(self.series)
            ]
        if self.families:
            return [("f", self.vendor, family) for family in sorted(self.families)]
        if self.device_class:
            return [("c", self.vendor, self.device_class)]
        return []


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    vendor: str
    family: str | None
    model: str | None
    device_class: str | None
    scheme: str | None  # version scheme of the family
    reason: str | None  # why the family (and so the scheme) is unknown

    def lookup_keys(self) -> list[tuple[str, str, str]]:
        keys: list[tuple[str, str, str]] = []
        if self.model:
            keys.append(("m", self.vendor, self.model))
            digits = re.match(r"[a-z]*\d+", self.model)
            if digits:
                stem = digits.group(0)
                keys.extend(("s", self.vendor, stem[:end]) for end in range(1, len(stem)))
        if self.family:
            keys.append(("f", self.vendor, self.family))
        elif self.device_class:
            keys.extend(("f", self.vendor, f) for f, c in FAMILY_CLASS.items() if c == self.device_class)
        if self.device_class:
            keys.append(("c", self.vendor, self.device_class))
        return keys

    @property
    def mapped(self) -> bool:
        """Known firmware line, or at least a known device class (phone, endpoint)."""
        return bool(self.family or self.device_class)


def normalize_product(vendor: str, name: str, context: str = "") -> ProductKey:  # noqa: C901 - the rules, in order
    """Key of a product as an advisory names it. ``context`` is the enclosing product family name."""
    vendor_key = normalize_vendor(vendor)
    text = " ".join(name.lower().replace("_", " ").split())
    context_text = " ".join(context.lower().split())
    families: set[str] = set()
    rest = text
    for phrase_vendor, pattern, fams in _FAMILY_PHRASES:
        if phrase_vendor != vendor_key:
            continue
        if pattern.search(text) or (context_text and pattern.search(context_text)):
            families |= fams
            rest = pattern.sub(" ", rest)
    vendor_words = set(re.findall(r"[a-z0-9]+", vendor.lower())) | {vendor_key}
    is_phone = bool(_PHONE_WORDS.search(text))
    models: set[str] = set()
    series: set[str] = {m["prefix"] for m in _SERIES_ANY.finditer(rest)} if "series" in rest else set()
    device_class: str | None = "phone" if is_phone else None
    if is_phone:
        for match in _PHONE_MODEL.finditer(rest):
            model = ("ata" if match["ata"] else "") + match["num"] + ("-ex" if match["ex"] else "")
            if not (series and re.fullmatch(r"\d{1,2}00", model)):
                models.add(model)
    elif not series:
        # "Room Kit, Room Kit Plus and Room Kit Pro": one model per part.
        for part in re.split(r",|;|/|\band\b|\bor\b", rest):
            words = [
                w
                for w in re.findall(r"[a-z0-9][a-z0-9-]*", part)
                if w not in _FILLER and w not in vendor_words
            ]
            if words:
                models.add(" ".join(words))
    if (
        vendor_key == "cisco"
        and not is_phone
        and (families & {"roomos", "ce", "tc"} or any(_ENDPOINT_WORDS.search(m) for m in models))
    ):
        device_class = "endpoint"
    if families and not device_class:
        classes = {FAMILY_CLASS.get(f) for f in families} - {None}
        device_class = classes.pop() if len(classes) == 1 else None
    return ProductKey(vendor_key, frozenset(families), frozenset(models), frozenset(series), device_class)


def _family_from_version(vendor: str, version: str, key: ProductKey) -> str | None:  # noqa: PLR0911
    low = version.strip().lower()
    if vendor == "cisco":
        if re.match(r"roomos\b", low):
            return "roomos"
        if re.match(r"ce\s*\d", low):
            return "ce"
        if re.match(r"tc\s*\d", low):
            return "tc"
        if key.device_class == "phone" or re.match(r"sip[a-z0-9]*\.", low):
            if "mpp" in key.families or re.search(r"mpp|msr", low):
                return "mpp"
            if re.match(r"sip[a-z0-9]*\.", low) or re.match(r"\d+\.\d+\(", low):
                return "sip"
            return None
        if key.device_class == "endpoint":
            major = re.match(r"(\d+)\.\d", low)
            if major:
                number = int(major.group(1))
                return "tc" if number <= 7 else "ce" if number <= 9 else "roomos"
    return None


# Pure, and a fleet repeats few combinations (bench/plan.py: 100,000 devices, 11,044 distinct).
_IDENTITY_CACHE = 65_536


@functools.lru_cache(maxsize=_IDENTITY_CACHE)
def identify_device(
    vendor: str,
    product: str,
    software_version: str,
    reported_family: str | None = None,
    reported_scheme: str | None = None,
) -> DeviceIdentity:
    """Map a device as it reports itself to a :class:`DeviceIdentity`.

    The family (and scheme) the driver reported come first when the vocabulary knows them;
    ``telepresence`` (a codec whose train is unknown) is refined from the firmware string.
    Otherwise the family comes from the product name when it names exactly one ("CP-8851-3PCC" is
    MPP), else from the firmware string ("RoomOS ...", "ce9...", "sip88xx...") or the vendor's only line.
    """
    key = normalize_product(vendor, _normalize_pid(product))
    if reported_family and reported_family in FAMILIES and problem(reported_family, reported_scheme) is None:
        family_of = reported_family
        if reported_family == "telepresence":
            family_of = _family_from_version(key.vendor, software_version, key) or reported_family
        model = next(iter(key.models)) if len(key.models) == 1 else None
        device_class = key.device_class or FAMILY_CLASS.get(family_of)
        # problem() held: a reported scheme is the family's own.
        return DeviceIdentity(key.vendor, family_of, model, device_class, FAMILY_SCHEME[family_of], None)
    family: str | None = None
    if len(key.families) == 1:
        (family,) = key.families
    if family is None or family in {"roomos", "ce", "tc"}:
        family = _family_from_version(key.vendor, software_version, key) or family
    if family is None:
        family = _VENDOR_FAMILY.get(key.vendor)
    device_class = key.device_class or (FAMILY_CLASS.get(family) if family else None)
    scheme = FAMILY_SCHEME.get(family) if family else None
    reason = None
    if family is None and not software_version.strip():
        # A device seen (LLDP, a birth, a listing) before it reported firmware: say so, not "from ''".
        reason = f"no firmware version reported yet (product {product!r})"
    elif family is None:
        reason = f"cannot tell the firmware family of {product!r} from {software_version!r}"
    model = next(iter(key.models)) if len(key.models) == 1 else None
    return DeviceIdentity(key.vendor, family, model, device_class, scheme, reason)


def _normalize_pid(product: str) -> str:
    """Cisco product ids: ``CP-8851-3PCC`` → ``CP-8851 3PCC``; order suffixes (K9, NR) are dropped."""
    match = re.match(r"^\s*cp-(\d{3,4})((?:-[a-z0-9]+)*)\s*$", product, re.IGNORECASE)
    if match is None:
        return product
    words = [w for w in match.group(2).lower().split("-") if w and w not in _PID_SUFFIXES]
    model = match.group(1) + ("-ex" if "ex" in words else "")
    extra = [w for w in words if w != "ex"]
    return " ".join(["cp-" + model, *extra])


def covers(key: ProductKey, device: DeviceIdentity) -> bool:  # noqa: PLR0911 - the rules, in order
    """Does the advisory product ``key`` concern ``device``?

    A device whose family is unknown is covered by every product that could be its family (the
    caller then reports ``unknown``): unknown never turns into "not in the tree".
    """
    if key.vendor != device.vendor:
        return False
    if key.families:
        if device.family is None:
            if device.device_class and not any(
                FAMILY_CLASS.get(f) == device.device_class for f in key.families
            ):
                return False
        elif device.family not in key.families:
            return False
    elif device.family in QUALIFIED_FAMILIES:
        return False
    if key.models or key.series:
        return device.model is not None and (
            device.model in key.models
            or any(device.model.startswith(s) and device.model != s for s in key.series)
        )
    if key.families:
        return True
    return key.device_class is not None and key.device_class == device.device_class
