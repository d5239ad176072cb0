"""``fernwart catalog``: advisory catalog commands.

``match`` works offline (no controller): it reads CSAF documents, an optional KEV feed and an
inventory, and prints findings. ``import`` and ``list`` talk to the controller's REST API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from firmware_catalog import Catalog, CatalogError, Device, Matcher, parse_kev

EXIT_OK = 0
EXIT_FINDINGS_REJECTED = 1  # some documents were rejected, the rest was matched
EXIT_USAGE = 2
EXIT_CONTROLLER = 3
DEFAULT_CONTROLLER = "http://127.0.0.1:8080"
_TIMEOUT_S = 30


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("catalog", help="advisory catalog (CSAF 2.0, CISA KEV)")
    commands = parser.add_subparsers(dest="catalog_command", required=True, metavar="SUBCOMMAND")

    match = commands.add_parser("match", help="match an inventory against advisories, offline")
    match.add_argument("--advisories", required=True, type=Path, help="CSAF file or directory")
    match.add_argument("--kev", type=Path, help="CISA KEV JSON feed")
    match.add_argument("--inventory", required=True, type=Path, help="JSON array of devices")
    match.add_argument("--json", action="store_true", help="print findings as a JSON array")
    match.add_argument(
        "--recommend", action="store_true", help="also print the recommended target per device"
    )
    match.set_defaults(func=run_match)

    controller_help = f"controller base URL (default $FERNWART_CONTROLLER_URL or {DEFAULT_CONTROLLER})"
    imp = commands.add_parser("import", help="send CSAF documents to the controller")
    imp.add_argument("source", help="CSAF file or directory")
    imp.add_argument("--controller", help=controller_help)
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=run_import)

    lst = commands.add_parser("list", help="list the controller's advisories")
    lst.add_argument("--controller", help=controller_help)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run_list)


def _error(message: str) -> None:
    sys.stderr.write(f"fernwart catalog: {message}\n")


def run_match(args: argparse.Namespace) -> int:
    catalog = Catalog()
    try:
        report = catalog.import_path(args.advisories)
        if args.kev is not None:
            kev = parse_kev(args.kev.read_bytes(), str(args.kev))
            catalog.set_kev(kev)
            for err in kev.errors:
                _error(f"skipped KEV entry: {err}")
        devices = _read_inventory(args.inventory)
    except (CatalogError, OSError, ValueError, KeyError, TypeError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    for err in report.errors:
        _error(f"rejected {err}")
    matcher = Matcher(catalog)
    matcher.set_devices(devices)
    findings = matcher.findings()
    if args.json:
        rows = [
            {
                "device_id": f.device_id,
                "advisory_id": f.advisory_id,
                "cves": list(f.cves),
                "status": f.status,
                "first_fixed": f.first_fixed,
                "kev": f.kev,
                "cvss": f.cvss,
                "reason": f.reason,
            }
            for f in findings
        ]
        output: Any = rows
        if args.recommend:
            output = {"findings": rows, "recommendations": [matcher.recommend(d).to_dict() for d in devices]}
        sys.stdout.write(json.dumps(output, indent=2) + "\n")
    else:
        for f in findings:
            flag = " KEV" if f.kev else ""
            fixed = f" first fixed {f.first_fixed}" if f.first_fixed else ""
            why = f" ({f.reason})" if f.reason else ""
            sys.stdout.write(f"{f.device_id}\t{f.advisory_id}\t{f.status}{flag}{fixed}{why}\n")
        if args.recommend:
            for device in devices:
                rec = matcher.recommend(device)
                sys.stdout.write(f"{rec.device_id}\ttarget {rec.target or '-'}\t{rec.reason or ''}\n")
    return EXIT_FINDINGS_REJECTED if report.errors else EXIT_OK


def _read_inventory(path: Path) -> list[Device]:
    """The offline inventory: a JSON array of {device_id, vendor, product, software_version}."""
    inventory = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(inventory, list):
        raise CatalogError(f"{path}: expected a JSON array of devices")
    devices = []
    for index, item in enumerate(inventory):
        if not isinstance(item, dict) or not isinstance(item.get("device_id"), str) or not item["device_id"]:
            raise CatalogError(f"{path}: [{index}].device_id: expected a non-empty string")
        for field in ("vendor", "product", "software_version"):
            if not isinstance(item.get(field, ""), str):
                raise CatalogError(f"{path}: [{index}].{field}: expected a string")
        devices.append(Device.from_dict(item))
    return devices


def _base_url(args: argparse.Namespace) -> str:
    return (args.controller or os.environ.get("FERNWART_CONTROLLER_URL") or DEFAULT_CONTROLLER).rstrip("/")


def _request(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise CatalogError(f"controller URL must be http(s): {url}")
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - scheme checked above
    request.add_header("Accept", "application/json")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return err.code, json.loads(payload)
        except ValueError:
            return err.code, payload.decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise CatalogError(f"{url}: {err}") from err


def run_import(args: argparse.Namespace) -> int:
    base = _base_url(args)
    root = Path(args.source)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*.json") if p.is_file())
    elif root.is_file():
        files = [root]
    else:
        _error(f"{root}: no such file or directory")
        return EXIT_USAGE
    results = []
    failed = 0
    for file in files:
        try:
            status, payload = _request("POST", f"{base}/api/v1/advisories", file.read_bytes())
        except (CatalogError, OSError) as err:
            _error(str(err))
            return EXIT_CONTROLLER
        ok = 200 <= status < 300
        failed += not ok
        results.append({"file": str(file), "status": status, "response": payload})
        if not args.json:
            sys.stdout.write(f"{file}\t{'ok' if ok else 'rejected'}\t{status}\t{json.dumps(payload)[:300]}\n")
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return EXIT_FINDINGS_REJECTED if failed else EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    try:
        status, payload = _request("GET", f"{_base_url(args)}/api/v1/advisories")
    except CatalogError as err:
        _error(str(err))
        return EXIT_CONTROLLER
    if not 200 <= status < 300:
        _error(f"controller answered {status}: {json.dumps(payload)[:300]}")
        return EXIT_CONTROLLER
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return EXIT_OK
    items = payload.get("items", payload) if isinstance(payload, dict) else payload
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            cves = ",".join(item.get("cves", []))
            sys.stdout.write(f"{item.get('id')}\t{cves}\t{item.get('cvss')}\t{item.get('title', '')}\n")
    return EXIT_OK
