"""Benchmark: 100,000 devices against the real catalog plus synthetic advisories (up to 5,000 documents).

    .venv/bin/python bench/match.py [--devices 100000] [--documents 5000] [--validate] [--seed 1]

Prints: import time, full-match time, one-device re-match time (median and max over 200 changes,
each to a firmware string no device had before, so nothing is cached), findings count, peak RSS.
The real documents come from ../shared/catalog/csaf (beside the repository).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from firmware_catalog import Catalog, Device, Matcher, parse_kev

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "catalog"

PHONES = [
    "7811",
    "7821",
    "7841",
    "7861",
    "8811",
    "8841",
    "8845",
    "8851",
    "8861",
    "8865",
    "8821",
    "8831",
    "8832",
    "6821",
    "6841",
    "6851",
    "6861",
    "6871",
    "7832",
]
ENDPOINTS = [
    "Room Kit",
    "Room Kit Pro",
    "Room Kit Mini",
    "Room Bar",
    "Room Bar Pro",
    "Desk Pro",
    "Desk Mini",
    "Board Pro 55",
    "Board Pro 75",
    "Room 55",
    "Room 70",
    "Codec Pro",
    "Codec EQ",
    "SX10",
    "SX20",
    "SX80",
    "MX200 G2",
    "MX300 G2",
    "MX700",
    "MX800",
]


OTHER_SHARE = 0.85
OTHER_PRODUCTS = [
    "IOS XE Software",
    "Adaptive Security Appliance Software",
    "Unified Communications Manager",
    "Webex Meetings Server",
    "Identity Services Engine",
    "Expressway Series",
    "SD-WAN vManage",
    "Exchange Server",
    "SharePoint Server",
    "Device Management Platform",
    "RealConnect",
]


def _pool(make: Any, rng: random.Random, size: int = 40) -> list[str]:
    return sorted({make(rng) for _ in range(size)})


def _pick(pool: list[str], rng: random.Random) -> str:
    """Fleets run few releases, most devices the newest ones: a skewed pick."""
    return pool[min(int(rng.expovariate(0.15)), len(pool) - 1)]


def _build_id(release: str) -> str:
    return hashlib.sha1(release.encode()).hexdigest()[:10] + "a"  # one build per release, as in real images


def _roomos(rng: random.Random) -> str:
    return f"{rng.randint(10, 11)}.{rng.randint(1, 40)}.{rng.randint(1, 5)}.{rng.randint(0, 9)}"


def _ce(rng: random.Random) -> str:
    return f"9.{rng.randint(0, 15)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"


def _phone(rng: random.Random) -> str:
    sr = rng.choice(["", "", f"SR{rng.randint(1, 6)}"])
    return f"{rng.randint(10, 15)}.{rng.randint(0, 9)}({rng.randint(1, 5)}){sr}"


def _mpp(rng: random.Random) -> str:
    return f"{rng.randint(11, 12)}.{rng.randint(0, 9)}.{rng.randint(1, 9)}"


def _doc(index: int, rng: random.Random) -> dict[str, Any]:
    """A synthetic but schema-valid CSAF advisory touching a few products."""
    vendor_branches: list[dict[str, Any]] = []
    known_affected: list[str] = []
    fixed: list[str] = []
    not_affected: list[str] = []
    counter = iter(range(1, 10_000))

    def product(category: str, name: str, full: str, status: list[str]) -> dict[str, Any]:
        pid = f"CSAFPID-{next(counter):04d}"
        status.append(pid)
        return {"category": category, "name": name, "product": {"name": full, "product_id": pid}}

    # Most of a real multi-vendor catalog concerns products this fleet does not have.
    kind = rng.choice(["phone", "phone", "roomos", "ce", "mpp", "teams", "poly", "yealink"])
    if rng.random() < OTHER_SHARE:
        kind = "other"
    if kind == "other":
        vendor = rng.choice(["Cisco", "Microsoft", "Poly", "Yealink", "Acme"])
        name = f"{vendor} {rng.choice(OTHER_PRODUCTS)} {index % 97}"
        first_fixed = f"{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"
        vendor_branches.append(
            {
                "category": "vendor",
                "name": vendor,
                "branches": [
                    {
                        "category": "product_name",
                        "name": name,
                        "branches": [
                            product(
                                "product_version_range",
                                f"vers:generic/<{first_fixed}",
                                f"{name} <{first_fixed}",
                                known_affected,
                            ),
                            product("product_version", first_fixed, f"{name} {first_fixed}", fixed),
                        ],
                    }
                ],
            }
        )
    elif kind == "phone":
        branches = []
        for model in rng.sample(PHONES, rng.randint(1, 4)):
            first_fixed = _phone(rng)
            name = f"Cisco IP Phone {model}"
            branches.append(
                {
                    "category": "product_name",
                    "name": name,
                    "branches": [
                        product(
                            "product_version_range",
                            f"vers:generic/<{first_fixed}",
                            f"{name} <{first_fixed}",
                            known_affected,
                        ),
                        product("product_version", first_fixed, f"{name} {first_fixed}", fixed),
                    ],
                }
            )
        vendor_branches.append({"category": "vendor", "name": "Cisco", "branches": branches})
    elif kind in {"roomos", "ce"}:
        name = "Cisco RoomOS Software" if kind == "roomos" else "Cisco TelePresence Endpoint Software (TC/CE)"
        prefix, make = ("RoomOS ", _roomos) if kind == "roomos" else ("CE", _ce)
        versions = sorted({prefix + make(rng) for _ in range(rng.randint(5, 40))})
        vendor_branches.append(
            {
                "category": "vendor",
                "name": "Cisco",
                "branches": [
                    {
                        "category": "product_name",
                        "name": name,
                        "branches": [
                            product("product_version", v, f"{name} {v}", known_affected) for v in versions
                        ],
                    }
                ],
            }
        )
    elif kind == "mpp":
        name = "Cisco IP Phones with Multiplatform Firmware"
        versions = sorted({_mpp(rng) for _ in range(rng.randint(3, 15))})
        vendor_branches.append(
            {
                "category": "vendor",
                "name": "Cisco",
                "branches": [
                    {
                        "category": "product_name",
                        "name": name,
                        "branches": [
                            product("product_version", v, f"{name} {v}", known_affected) for v in versions
                        ],
                    },
                    {
                        "category": "product_name",
                        "name": f"Cisco IP Phone {rng.choice(PHONES)}",
                        "product": {"name": "hardware", "product_id": "CSAFPID-9000"},
                    },
                ],
            }
        )
        not_affected.append("CSAFPID-9000")
    elif kind == "teams":
        name = "Microsoft Teams Rooms on Windows"
        first_fixed = f"5.{rng.randint(0, 9)}.{rng.randint(1, 200)}.0"
        vendor_branches.append(
            {
                "category": "vendor",
                "name": "Microsoft",
                "branches": [
                    {
                        "category": "product_name",
                        "name": name,
                        "branches": [
                            product(
                                "product_version_range",
                                f"vers:generic/<{first_fixed}",
                                f"{name} <{first_fixed}",
                                known_affected,
                            ),
                            product("product_version", first_fixed, f"{name} {first_fixed}", fixed),
                        ],
                    }
                ],
            }
        )
    else:
        vendor, model, version = (
            (
                "Poly",
                rng.choice(["CCX 500", "CCX 600", "Trio C60", "Studio X50"]),
                f"{rng.randint(7, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 2000):04d}",
            )
            if kind == "poly"
            else ("Yealink", rng.choice(["MP56", "MP58", "T55A", "VP59"]), f"122.15.0.{rng.randint(1, 200)}")
        )
        name = f"{vendor} {model}"
        vendor_branches.append(
            {
                "category": "vendor",
                "name": vendor,
                "branches": [
                    {
                        "category": "product_name",
                        "name": name,
                        "branches": [
                            product(
                                "product_version_range",
                                f"vers:generic/<{version}",
                                f"{name} <{version}",
                                known_affected,
                            ),
                            product("product_version", version, f"{name} {version}", fixed),
                        ],
                    }
                ],
            }
        )
    status: dict[str, list[str]] = {"known_affected": known_affected}
    if fixed:
        status["fixed"] = fixed
    if not_affected:
        status["known_not_affected"] = not_affected
    return {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "title": f"Synthetic advisory {index}",
            "publisher": {"category": "vendor", "name": "Bench", "namespace": "https://bench.invalid"},
            "tracking": {
                "id": f"bench-sa-{index:05d}",
                "status": "final",
                "version": "1",
                "initial_release_date": "2025-01-01T00:00:00Z",
                "current_release_date": "2025-01-01T00:00:00Z",
                "revision_history": [{"number": "1", "date": "2025-01-01T00:00:00Z", "summary": "x"}],
            },
            "notes": [{"category": "summary", "text": "synthetic"}],
            "references": [{"category": "self", "summary": "self", "url": "https://bench.invalid/x"}],
        },
        "product_tree": {"branches": vendor_branches},
        "vulnerabilities": [
            {
                "cve": f"CVE-2099-{index + 10000}",
                "product_status": status,
                "scores": [
                    {
                        "cvss_v3": {
                            "version": "3.1",
                            "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                            "baseScore": 9.8,
                            "baseSeverity": "CRITICAL",
                        },
                        "products": known_affected,
                    }
                ],
            }
        ],
    }


class Fleet:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.phone = _pool(_phone, rng)
        self.mpp = _pool(_mpp, rng)
        self.roomos = _pool(_roomos, rng)
        self.ce = _pool(_ce, rng)
        self.teams = _pool(lambda r: f"5.{r.randint(0, 9)}.{r.randint(1, 200)}.0", rng)
        self.poly = _pool(
            lambda r: f"{r.randint(7, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 2000):04d}", rng
        )
        self.yealink = _pool(lambda r: f"122.15.0.{r.randint(1, 200)}", rng)

    def device(self, index: int) -> Device:
        rng = self.rng
        kind = rng.random()
        did = f"dev-{index:06d}"
        if kind < 0.45:
            model = rng.choice(PHONES)
            if rng.random() < 0.8:
                release = _pick(self.phone, rng)
                load = release.replace(".", "-", 1).replace("(", "-").replace(")", "")
                return Device(did, "Cisco", f"CP-{model}", f"sip88xx.{load}-{len(release)}")
            return Device(
                did, "Cisco", f"CP-{model}-3PCC", "sip88xx." + _pick(self.mpp, rng).replace(".", "-") + "MPP"
            )
        if kind < 0.8:
            model = rng.choice(ENDPOINTS)
            if rng.random() < 0.75:
                release = _pick(self.roomos, rng)
                return Device(did, "Cisco", f"Cisco {model}", f"RoomOS {release} {_build_id(release)}")
            release = _pick(self.ce, rng)
            return Device(did, "Cisco", f"Cisco TelePresence {model}", f"ce{release}.{_build_id(release)}")
        if kind < 0.9:
            return Device(did, "Microsoft", "Microsoft Teams Rooms on Windows", _pick(self.teams, rng))
        if kind < 0.95:
            return Device(
                did, "Poly", f"Poly {rng.choice(['CCX 500', 'CCX 600'])} Teams", _pick(self.poly, rng)
            )
        return Device(
            did, "Yealink", f"Yealink {rng.choice(['MP56', 'MP58'])} Teams", _pick(self.yealink, rng)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=5_000, help="total documents, real ones included")
    parser.add_argument(
        "--validate", action="store_true", help="validate synthetic documents against the schema"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--other-share",
        type=float,
        default=0.85,
        help="share of synthetic documents about products the fleet does not have",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    global OTHER_SHARE  # noqa: PLW0603 - a bench knob
    OTHER_SHARE = args.other_share

    catalog = Catalog()
    start = time.perf_counter()
    report = catalog.import_path(SHARED / "csaf")
    catalog.set_kev(parse_kev((SHARED / "kev" / "known_exploited_vulnerabilities.json").read_bytes()))
    real = time.perf_counter() - start
    docs = [_doc(i, rng) for i in range(max(0, args.documents - len(report.added)))]
    start = time.perf_counter()
    synthetic = catalog.import_documents(
        ((d["document"]["tracking"]["id"], d) for d in docs), validate=args.validate
    )
    imported = time.perf_counter() - start
    assert not report.errors, report.errors
    assert not synthetic.errors, synthetic.errors[:3]

    fleet = Fleet(rng)
    devices = [fleet.device(i) for i in range(args.devices)]
    matcher = Matcher(catalog)
    start = time.perf_counter()
    matcher.set_devices(devices)
    full = time.perf_counter() - start
    findings = sum(len(matcher.verdicts(d.device_id)) for d in devices)

    timings = []
    for i in range(200):
        old = devices[rng.randrange(len(devices))]
        if "RoomOS" in old.software_version:
            new_version = f"RoomOS {_roomos(rng)} {i:07x}f"
        elif old.software_version.startswith("sip"):
            new_version = f"sip88xx.{rng.randint(10, 15)}-{rng.randint(0, 9)}-{rng.randint(1, 5)}-{1000 + i}"
        else:
            new_version = (
                old.software_version + f".{i}" if old.vendor != "Cisco" else f"ce{_ce(rng)}.{i:07x}f"
            )
        changed = Device(old.device_id, old.vendor, old.product, new_version)
        start = time.perf_counter()
        matcher.set_device(changed)
        timings.append(time.perf_counter() - start)

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    validation = "on" if args.validate else "off"
    distinct = len({(d.vendor, d.product, d.software_version) for d in devices})
    touching = sum(len(v) for v in matcher._touch.values()) / max(1, len(matcher._touch))  # noqa: SLF001
    timings.sort()
    p95 = timings[int(len(timings) * 0.95)]
    print(f"catalog: {len(catalog)} documents ({len(report.added)} real, imported in {real:.2f} s;")
    print(f"         {len(synthetic.added)} synthetic, in {imported:.2f} s, schema validation {validation})")
    print(f"devices: {len(devices)}, distinct (vendor, product, firmware): {distinct}")
    print(
        f"full match: {full:.3f} s, {findings} findings, {touching:.0f} advisories touch a product on average"
    )
    print(
        f"one-device re-match: median {statistics.median(timings) * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms, "
        f"max {timings[-1] * 1000:.3f} ms"
    )
    print("  (200 changes to firmware strings no device had; the max includes any gen-2 GC pause)")
    print(f"peak RSS: {rss_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
