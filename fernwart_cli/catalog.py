"""``fernwart catalog``: advisory catalog commands.

``match`` works offline (no controller): it reads CSAF documents, an optional KEV feed and an
inventory, and prints findings. ``import`` and ``list`` talk to the controller's REST API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fernwart_cli import exits
from fernwart_cli.credentials import (
    CredentialError,
    add_token_argument,
    api_token,
    auth_headers,
    refused,
)
from fernwart_cli.jsonout import array_lines, object_of_arrays
from firmware_catalog import Catalog, CatalogError, Device, Matcher, match_problem, parse_kev
from firmware_catalog.provider import fetch_provider

EXIT_OK = exits.OK
EXIT_FINDINGS_REJECTED = exits.FAILURE  # some documents were rejected, the rest went through
EXIT_USAGE = exits.USAGE
EXIT_UNAVAILABLE = exits.UNAVAILABLE  # the controller (or a provider's metadata) cannot be reached
DEFAULT_CONTROLLER = "http://127.0.0.1:8080"
_TIMEOUT_S = 30


def _use_token(args: argparse.Namespace) -> int | None:
    """Load this invocation's API token; an exit code when it cannot be read."""
    try:
        _TOKEN[0] = api_token(args)
    except CredentialError as err:
        _error(str(err))
        return EXIT_USAGE
    return None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("catalog", help="advisory catalog (CSAF 2.0, CISA KEV)")
    commands = parser.add_subparsers(dest="catalog_command", required=True, metavar="SUBCOMMAND")

    match = commands.add_parser(
        "match",
        help="match an inventory against advisories, offline",
        description="Match an inventory against CSAF advisories (and KEV), offline.",
        epilog=INVENTORY_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    match.add_argument("--advisories", required=True, type=Path, help="CSAF file or directory")
    match.add_argument("--kev", type=Path, help="CISA KEV JSON feed")
    match.add_argument("--inventory", required=True, type=Path, help="JSON array of devices (see below)")
    match.add_argument("--json", action="store_true", help="print findings as a JSON array")
    match.add_argument(
        "--recommend", action="store_true", help="also print the recommended target per device"
    )
    match.set_defaults(func=run_match)

    controller_help = f"controller base URL (default $FERNWART_CONTROLLER_URL or {DEFAULT_CONTROLLER})"
    imp = commands.add_parser(
        "import",
        help="send CSAF documents (file, directory, provider URL) and/or a KEV feed to the controller",
    )
    imp.add_argument(
        "source",
        nargs="?",
        help="CSAF file, directory, or the https URL of a trusted provider's provider-metadata.json",
    )
    imp.add_argument("--kev", type=Path, help="CISA KEV JSON feed to install (replaces the current one)")
    imp.add_argument(
        "--state", type=Path, help="provider URL only: JSON file remembering what was fetched (incremental)"
    )
    imp.add_argument("--controller", help=controller_help)
    add_token_argument(imp)
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=run_import)

    lst = commands.add_parser("list", help="list the controller's advisories")
    lst.add_argument("--controller", help=controller_help)
    add_token_argument(lst)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run_list)


def _error(message: str) -> None:
    sys.stderr.write(f"fernwart catalog: {message}\n")


INVENTORY_FORMAT = """\
The inventory is a JSON array of devices, or a page of the REST API ({"items": [...]}).
A device has device_id (required), vendor, product and software_version; the REST API's own
fields are accepted as well: model (else family) for product, firmware_version for
software_version, and site_id (the device is then named SITE/DEVICE). So the output of
`fernwart devices list --json` is an inventory. When no device can be matched (no product,
no firmware, unknown vendor), every finding would be "unknown": that is a warning and exit 65."""


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
    if args.json:
        _print_match_json(matcher, devices, recommend=args.recommend)
    else:
        _print_match_text(matcher, devices, recommend=args.recommend)
    problems = [(d.device_id, match_problem(d.vendor, d.product, d.software_version)) for d in devices]
    if devices and all(problem is not None for _device_id, problem in problems):
        device_id, problem = problems[0]
        _error(
            f"warning: none of the {len(devices)} devices of {args.inventory} can be matched "
            f"(e.g. {device_id}: {problem}); is it an inventory? see `fernwart catalog match --help`"
        )
        return exits.DATAERR
    return EXIT_FINDINGS_REJECTED if report.errors else EXIT_OK


def _print_match_json(matcher: Matcher, devices: list[Device], *, recommend: bool) -> None:
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
        for f in matcher.findings()
    ]
    if not recommend:
        sys.stdout.write(array_lines(rows) + "\n")
        return
    recommendations = [
        {**matcher.recommend(d).to_dict(), "status": matcher.device_status(d)} for d in devices
    ]
    sys.stdout.write(object_of_arrays({"findings": rows, "recommendations": recommendations}) + "\n")


def _print_match_text(matcher: Matcher, devices: list[Device], *, recommend: bool) -> None:
    for f in matcher.findings():
        flag = " KEV" if f.kev else ""
        fixed = f" first fixed {f.first_fixed}" if f.first_fixed else ""
        why = f" ({f.reason})" if f.reason else ""
        sys.stdout.write(f"{f.device_id}\t{f.advisory_id}\t{f.status}{flag}{fixed}{why}\n")
    if recommend:
        for device in devices:
            rec = matcher.recommend(device)
            status = matcher.device_status(device)
            target = rec.target or "-"
            sys.stdout.write(f"{rec.device_id}\t{status}\ttarget {target}\t{rec.reason or ''}\n")


def _read_inventory(path: Path) -> list[Device]:
    """The offline inventory (see INVENTORY_FORMAT). Raises CatalogError naming the bad field."""
    inventory = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(inventory, dict) and isinstance(inventory.get("items"), list):
        inventory = inventory["items"]  # a page of GET /api/v1/devices
    if not isinstance(inventory, list):
        raise CatalogError(f"{path}: expected a JSON array of devices")
    return [_inventory_device(item, f"{path}: [{index}]") for index, item in enumerate(inventory)]


def _inventory_device(item: Any, where: str) -> Device:
    if not isinstance(item, dict) or not isinstance(item.get("device_id"), str) or not item["device_id"]:
        raise CatalogError(f"{where}.device_id: expected a non-empty string")
    fields = ("vendor", "product", "software_version", "model", "family", "firmware_version", "site_id")
    for field in fields:
        if item.get(field) is not None and not isinstance(item[field], str):
            raise CatalogError(f"{where}.{field}: expected a string")
    site = item.get("site_id")
    return Device(
        device_id=f"{site}/{item['device_id']}" if site else item["device_id"],
        vendor=item.get("vendor") or "",
        product=item.get("product") or item.get("model") or item.get("family") or "",
        software_version=item.get("software_version") or item.get("firmware_version") or "",
    )


def _base_url(args: argparse.Namespace) -> str:
    return (args.controller or os.environ.get("FERNWART_CONTROLLER_URL") or DEFAULT_CONTROLLER).rstrip("/")


_TOKEN: list[str | None] = [None]  # the API token of this invocation (credentials.api_token)


class _Unreachable(CatalogError):
    """The controller did not answer at all (exit 69)."""


class _Refused(CatalogError):
    """The controller answered, but not as hoped: ``code`` is the exit code (77, 70)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _failed(err: CatalogError) -> int:
    """Print ``err``; its exit code: 77/70 as the controller answered, else 69 (no answer)."""
    _error(str(err))
    return err.code if isinstance(err, _Refused) else EXIT_UNAVAILABLE


def _request(method: str, url: str, body: bytes | None = None, source: str | None = None) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise CatalogError(f"controller URL must be http(s): {url}")
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - scheme checked above
    request.add_header("Accept", "application/json")
    for name, value in auth_headers(_TOKEN[0]).items():
        request.add_header(name, value)
    if source is not None:  # shown as the advisory's source by the controller
        request.add_header("X-Fernwart-Source", source.encode("ascii", "replace").decode("ascii")[:1024])
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
    except (urllib.error.URLError, OSError) as err:
        raise _Unreachable(f"cannot reach the controller at {url}: {err}") from err
    except ValueError as err:
        raise _Refused(exits.SOFTWARE, f"{url}: unexpected answer: {err}") from err


def run_import(args: argparse.Namespace) -> int:
    """POST each document to ``/api/v1/advisories``; ``--kev`` PUTs the feed to ``/api/v1/kev``.

    A provider URL is fetched here (firmware_catalog.provider: hashes verified, conditional GETs
    with ``--state``), not by the controller, so the controller never fetches URLs on request.
    Exit codes (fernwart_cli.exits): 0 when all went in, 1 when some were rejected, 2 for usage
    errors, 69 when the controller (or the provider's metadata) cannot be reached, 77 when the
    controller refuses the token.
    """
    if args.source is None and args.kev is None:
        _error("give a CSAF file, directory or provider URL, and/or --kev FILE")
        return EXIT_USAGE
    base = _base_url(args)
    sends: list[tuple[str, str, str, bytes]] = []  # method, URL, name, body
    failed = 0
    if args.source is not None:
        loaded = _load_documents(args.source, args.state)
        if isinstance(loaded, int):
            return loaded
        documents, fetch_errors = loaded
        for message in fetch_errors:
            _error(message)
        failed += len(fetch_errors)
        sends.extend(("POST", f"{base}/api/v1/advisories", name, data) for name, data in documents)
    if args.kev is not None:
        try:
            sends.append(("PUT", f"{base}/api/v1/kev", str(args.kev), args.kev.read_bytes()))
        except OSError as err:
            _error(f"{args.kev}: cannot read: {err.strerror}")
            return EXIT_USAGE
    if (code := _use_token(args)) is not None:
        return code
    try:
        results = _send(sends, quiet=args.json)
    except CatalogError as err:
        return _failed(err)
    failed += sum(1 for r in results if not 200 <= r["status"] < 300)
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return EXIT_FINDINGS_REJECTED if failed else EXIT_OK


def _send(sends: list[tuple[str, str, str, bytes]], *, quiet: bool) -> list[dict[str, Any]]:
    """Send each (method, URL, name, body); one line per answer unless ``quiet``. Raises CatalogError
    when the controller cannot be reached."""
    results = []
    for method, url, name, data in sends:
        status, payload = _request(method, url, data, source=name)
        if status in {401, 403}:
            raise _Refused(exits.NOPERM, refused(status))
        ok = 200 <= status < 300
        results.append({"file": name, "status": status, "response": payload})
        if not quiet:
            sys.stdout.write(f"{name}\t{'ok' if ok else 'rejected'}\t{status}\t{json.dumps(payload)[:300]}\n")
    return results


def _load_documents(source: str, state: Path | None) -> tuple[list[tuple[str, bytes]], list[str]] | int:
    """(name, bytes) of every document to send and the fetch errors, or an exit code."""
    if source.startswith(("https://", "http://")):
        try:
            report = asyncio.run(fetch_provider(source, state))
        except CatalogError as err:
            _error(str(err))
            return EXIT_UNAVAILABLE
        for url in report.unchanged:
            sys.stderr.write(f"unchanged since the last fetch: {url}\n")
        return [(doc.url, doc.data) for doc in report.documents], [str(err) for err in report.errors]
    root = Path(source)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*.json") if p.is_file())
    elif root.is_file():
        files = [root]
    else:
        _error(f"{root}: no such file or directory")
        return EXIT_USAGE
    documents: list[tuple[str, bytes]] = []
    errors: list[str] = []
    for file in files:
        try:
            documents.append((str(file), file.read_bytes()))
        except OSError as err:
            errors.append(f"{file}: cannot read: {err.strerror}")
    return documents, errors


def run_list(args: argparse.Namespace) -> int:
    """Every advisory of the controller (all pages of ``GET /api/v1/advisories``)."""
    if (code := _use_token(args)) is not None:
        return code
    base = _base_url(args)
    items: list[Any] = []
    offset: int | None = 0
    while offset is not None:
        try:
            status, payload = _request("GET", f"{base}/api/v1/advisories?limit=1000&offset={offset}")
        except CatalogError as err:
            return _failed(err)
        if status in {401, 403}:
            _error(refused(status))
            return exits.NOPERM
        if not 200 <= status < 300 or not isinstance(payload, dict):
            _error(f"controller answered {status}: {json.dumps(payload)[:300]}")
            return exits.SOFTWARE
        page = payload.get("items")
        items.extend(page if isinstance(page, list) else [])
        next_offset = payload.get("next_offset")
        offset = next_offset if isinstance(next_offset, int) and next_offset > offset else None
    if args.json:
        sys.stdout.write(json.dumps({"items": items, "total": len(items)}, indent=2) + "\n")
        return EXIT_OK
    for item in items:
        if isinstance(item, dict):
            cves = ",".join(item.get("cves", []))
            kev = "KEV" if item.get("kev") else "-"
            affected = item.get("affected_devices", "-")
            sys.stdout.write(
                f"{item.get('id')}\t{cves}\t{item.get('cvss')}\t{kev}\t{affected}\t{item.get('title', '')}\n"
            )
    return EXIT_OK
