"""CSAF 2.0 ``csaf_security_advisory`` documents → :class:`Advisory`.

Order of checks, each failing with a :class:`DocumentError` that names the document and the JSON
path: size and nesting limits (before anything recursive touches the data), the CSAF 2.0 JSON
schema shipped in ``firmware_catalog/schema/``, then what matching relies on: the profile, unique
product ids, every referenced product id defined, every ``vers:`` range well formed and able to
match something.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from firmware_catalog.errors import DocumentError, RangeError
from firmware_catalog.model import (
    PRODUCT_STATUSES,
    Advisory,
    ProductEntry,
    Remediation,
    Score,
    Threat,
    Vulnerability,
)
from firmware_catalog.products import ProductKey, normalize_product, normalize_vendor
from firmware_catalog.vers import parse_vers

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_STRING_LENGTH = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 2_000_000
_CVSS_URLS = ("cvss-v2.0", "cvss-v3.0", "cvss-v3.1")


def format_path(parts: Iterator[str | int] | list[str | int] | tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def _json_type(value: object) -> str:  # noqa: PLR0911 - one return per JSON type
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def decode_document(data: bytes | str, source: str) -> Any:
    """Parse JSON text; errors (syntax, size, nesting) name ``source``."""
    size = len(data)
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            source, "$", f"document of {size} bytes exceeds the limit of {MAX_DOCUMENT_BYTES}"
        )
    try:
        return json.loads(data)
    except RecursionError:
        raise DocumentError(source, _deep_path(data), f"nesting deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as err:
        raise DocumentError(source, "$", f"not UTF-8 text: {err.reason} at byte {err.start}") from None
    except ValueError as err:
        raise DocumentError(source, "$", f"not JSON: {err}") from None


def _deep_path(data: bytes | str) -> str:  # noqa: C901, PLR0912 - a tokenizer
    """JSON path where nesting first exceeds MAX_DEPTH (a small tokenizer; only run on failure)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    stack: list[list[Any]] = []  # [kind, key_or_index]
    in_string = escaped = False
    current = ""
    last_string = ""
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                last_string = current
            else:
                current += char if len(current) < 200 else ""
            continue
        if char == '"':
            in_string, current = True, ""
        elif char in "[{":
            if stack and stack[-1][0] == "{":
                stack[-1][1] = last_string
            stack.append(["[" if char == "[" else "{", 0 if char == "[" else ""])
            if len(stack) > MAX_DEPTH:
                return format_path([frame[1] for frame in stack[:-1]])
        elif char in "]}":
            if stack:
                stack.pop()
        elif char == "," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
    return "$"


def check_limits(document: Any, name: str) -> None:  # noqa: C901 - one branch per JSON type
    """Reject oversize strings, deep nesting and huge node counts, iteratively, with the JSON path."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    nodes = 0
    while stack:
        value, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise DocumentError(name, format_path(path), f"more than {MAX_NODES} JSON values")
        if len(path) > MAX_DEPTH:
            raise DocumentError(name, format_path(path), f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            if len(value) > MAX_STRING_LENGTH:
                raise DocumentError(
                    name,
                    format_path(path),
                    f"string of {len(value)} characters exceeds the limit of {MAX_STRING_LENGTH}",
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise DocumentError(name, format_path(path), f"object key {key!r} is not a string")
                if len(key) > MAX_STRING_LENGTH:
                    raise DocumentError(name, format_path(path), "object key exceeds the string limit")
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
        elif not (value is None or isinstance(value, (bool, int, float))):
            raise DocumentError(name, format_path(path), f"not a JSON value: {type(value).__name__}")


@functools.cache
def _validator() -> Any:
    import jsonschema  # noqa: PLC0415 - imported on first validation: no work at package import
    from referencing import Registry, Resource  # noqa: PLC0415

    schema_dir = resources.files("firmware_catalog") / "schema"
    resources_list = []
    for stem in _CVSS_URLS:
        contents = json.loads((schema_dir / f"{stem}.json").read_text(encoding="utf-8"))
        resources_list.append((f"https://www.first.org/cvss/{stem}.json", Resource.from_contents(contents)))
    registry: Registry[Any] = Registry().with_resources(resources_list)
    schema = json.loads((schema_dir / "csaf_json_schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _schema_message(error: Any) -> str:
    instance = error.instance
    if error.validator == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(f"an {n}" if n[0] in "aeiou" else f"a {n}" for n in names)
        return f"expected {wanted}, got {_json_type(instance)}"
    if error.validator == "required":
        return str(error.message)[:200].replace("is a required property", "is required")
    if error.validator in {"enum", "const"}:
        return f"expected one of {json.dumps(error.validator_value)[:200]}, got {json.dumps(instance)[:60]}"
    if error.validator in {"minLength", "maxLength", "pattern"} and isinstance(instance, str):
        rule = f"{error.validator} {str(error.validator_value)[:80]}"
        return f"string {instance[:60]!r} does not match the schema ({rule})"
    return str(error.message)[:300]


def validate_schema(document: Any, name: str) -> None:
    """Validate against the CSAF 2.0 JSON schema; the most relevant error is raised."""
    from jsonschema.exceptions import best_match  # noqa: PLC0415

    error = best_match(_validator().iter_errors(document))
    if error is not None:
        raise DocumentError(name, format_path(list(error.absolute_path)), _schema_message(error))


def document_name(document: Any, fallback: str) -> str:
    try:
        tracking_id = document["document"]["tracking"]["id"]
    except (KeyError, TypeError, IndexError):
        return fallback
    return (
        tracking_id
        if isinstance(tracking_id, str) and tracking_id.strip() and len(tracking_id) < 200
        else fallback
    )


def parse_advisory(document: Any, source: str = "<memory>", *, validate: bool = True) -> Advisory:
    """Check and normalize one CSAF document. Raises only :class:`DocumentError`.

    ``validate=False`` skips the JSON schema (for documents already validated, e.g. reloaded from
    storage); the limits and the checks matching relies on always run.
    """
    name = document_name(document, source)
    if not isinstance(document, dict):
        raise DocumentError(name, "$", f"expected an object, got {_json_type(document)}")
    check_limits(document, name)
    if validate:
        validate_schema(document, name)
    try:
        return _Builder(document, name, source).build()
    except (KeyError, TypeError, AttributeError, IndexError) as err:  # only without schema validation
        raise DocumentError(
            name, "$", f"malformed document ({type(err).__name__}: {str(err)[:100]})"
        ) from None


class _Builder:
    def __init__(self, document: dict[str, Any], name: str, source: str) -> None:
        self.doc = document
        self.name = name
        self.source = source
        self.products: dict[str, ProductEntry] = {}
        self.defined_at: dict[str, str] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.publisher = str(document["document"]["publisher"]["name"])

    def fail(self, path: str, reason: str) -> DocumentError:
        return DocumentError(self.name, path, reason)

    def text(self, value: Any, path: str) -> str:
        """What matching relies on is checked even without the schema (``validate=False``)."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_json_type(value)}")
        return value

    def build(self) -> Advisory:
        meta = self.doc["document"]
        if meta.get("category") != "csaf_security_advisory":
            raise self.fail(
                "document.category",
                f"expected 'csaf_security_advisory', got {str(meta.get('category'))[:60]!r}",
            )
        tracking = meta["tracking"]
        self.text(tracking["id"], "document.tracking.id")
        tree = self.doc.get("product_tree")
        if not isinstance(tree, dict):
            raise self.fail("product_tree", "a security advisory needs a product tree")
        self._walk(tree.get("branches", []), "product_tree.branches", {})
        for index, full in enumerate(tree.get("full_product_names", [])):
            self._full_product(full, f"product_tree.full_product_names[{index}]", {})
        for index, rel in enumerate(tree.get("relationships", [])):
            self._relationship(rel, f"product_tree.relationships[{index}]")
        for index, group in enumerate(tree.get("product_groups", [])):
            path = f"product_tree.product_groups[{index}]"
            ids = tuple(
                self._ref(pid, f"{path}.product_ids[{i}]") for i, pid in enumerate(group["product_ids"])
            )
            self.groups[group["group_id"]] = ids
        vulnerabilities = self.doc.get("vulnerabilities")
        if not vulnerabilities:
            raise self.fail("vulnerabilities", "a security advisory needs at least one vulnerability")
        vulns = tuple(self._vulnerability(v, f"vulnerabilities[{i}]") for i, v in enumerate(vulnerabilities))
        url = next((r.get("url") for r in meta.get("references", []) if r.get("category") == "self"), None)
        return Advisory(
            id=str(tracking["id"]),
            title=str(meta["title"]),
            publisher=self.publisher,
            tracking_version=str(tracking["version"]),
            initial_release_date=str(tracking["initial_release_date"]),
            current_release_date=str(tracking["current_release_date"]),
            url=url,
            products=self.products,
            vulnerabilities=vulns,
            source=self.source,
            document=self.doc,
        )

    def _walk(self, branches: list[dict[str, Any]], path: str, ctx: dict[str, str]) -> None:
        for index, branch in enumerate(branches):
            here = f"{path}[{index}]"
            category = self.text(branch["category"], f"{here}.category")
            value = self.text(branch["name"], f"{here}.name")
            sub = dict(ctx)
            if category == "vendor":
                sub["vendor"] = value
            elif category == "product_family":
                sub["family"] = f"{ctx.get('family', '')} {value}".strip()
            elif category == "product_name":
                sub["product"] = value
            elif category == "product_version":
                sub["version"] = value
                sub["version_path"] = f"{here}.name"
            elif category == "product_version_range":
                sub["range"] = value
                sub["version_path"] = f"{here}.name"
            if "product" in branch:
                self._full_product(branch["product"], f"{here}.product", sub)
            if "branches" in branch:
                self._walk(branch["branches"], f"{here}.branches", sub)

    def _full_product(self, full: dict[str, Any], path: str, ctx: dict[str, str]) -> ProductEntry:
        product_id = self.text(full["product_id"], f"{path}.product_id")
        self.text(full["name"], f"{path}.name")
        helper = full.get("product_identification_helper") or {}
        cpe, purl = helper.get("cpe"), helper.get("purl")
        vendor, product, version = (
            ctx.get("vendor"),
            ctx.get("product") or ctx.get("family"),
            ctx.get("version"),
        )
        if not (vendor and product):
            from_helper = _from_cpe(cpe) if cpe else _from_purl(purl) if purl else None
            if from_helper:
                vendor = vendor or from_helper[0]
                product = product or from_helper[1]
                version = version or from_helper[2]
        vendor = vendor or self.publisher
        product = product or full["name"]
        version_range = None
        range_text = ctx.get("range")
        if range_text is not None and range_text.startswith("vers:"):
            try:
                version_range = parse_vers(range_text)
            except RangeError as err:
                raise self.fail(ctx.get("version_path", f"{path}.name"), str(err)) from None
            range_text = None
        key = normalize_product(vendor, product, ctx.get("family", ""))
        entry = ProductEntry(
            product_id=product_id,
            name=full["name"],
            product=product,
            vendor=vendor,
            key=key,
            version=version,
            version_range=version_range,
            range_text=range_text,
            cpe=cpe,
            purl=purl,
        )
        self._define(product_id, f"{path}.product_id", entry)
        return entry

    def _define(self, product_id: str, path: str, entry: ProductEntry) -> None:
        if product_id in self.products:
            raise self.fail(
                path, f"duplicate product id {product_id!r} (first defined at {self.defined_at[product_id]})"
            )
        self.products[product_id] = entry
        self.defined_at[product_id] = path

    def _relationship(self, rel: dict[str, Any], path: str) -> None:
        software = self.products.get(self._ref(rel["product_reference"], f"{path}.product_reference"))
        platform = self.products.get(
            self._ref(rel["relates_to_product_reference"], f"{path}.relates_to_product_reference")
        )
        assert software is not None
        assert platform is not None
        full = rel["full_product_name"]
        self.text(full["product_id"], f"{path}.full_product_name.product_id")
        self.text(rel["category"], f"{path}.category")
        sk, pk = software.key, platform.key
        key = ProductKey(
            vendor=sk.vendor or pk.vendor,
            families=sk.families | pk.families,
            models=pk.models or sk.models,
            series=frozenset() if pk.models else (pk.series or sk.series),
            device_class=pk.device_class or sk.device_class,
        )
        entry = ProductEntry(
            product_id=full["product_id"],
            name=full["name"],
            product=f"{software.product} {rel['category'].replace('_', ' ')} {platform.product}",
            vendor=software.vendor,
            key=key,
            version=software.version,
            version_range=software.version_range,
            range_text=software.range_text,
        )
        self._define(full["product_id"], f"{path}.full_product_name.product_id", entry)

    def _ref(self, product_id: str, path: str) -> str:
        self.text(product_id, path)
        if product_id not in self.products:
            raise self.fail(path, f"product id {product_id!r} is not defined in the product tree")
        return product_id

    def _ids(self, holder: dict[str, Any], path: str) -> tuple[str, ...]:
        ids = [
            self._ref(pid, f"{path}.product_ids[{i}]") for i, pid in enumerate(holder.get("product_ids", []))
        ]
        for index, group_id in enumerate(holder.get("group_ids", [])):
            if group_id not in self.groups:
                raise self.fail(f"{path}.group_ids[{index}]", f"group id {group_id!r} is not defined")
            ids.extend(self.groups[group_id])
        return tuple(dict.fromkeys(ids))

    def _vulnerability(self, vuln: dict[str, Any], path: str) -> Vulnerability:
        status: dict[str, tuple[str, ...]] = {}
        for category in PRODUCT_STATUSES:
            ids = vuln.get("product_status", {}).get(category, [])
            status[category] = tuple(
                self._ref(pid, f"{path}.product_status.{category}[{i}]") for i, pid in enumerate(ids)
            )
        remediations = tuple(
            Remediation(
                category=r["category"],
                details=r["details"],
                url=r.get("url"),
                product_ids=self._ids(r, f"{path}.remediations[{i}]"),
            )
            for i, r in enumerate(vuln.get("remediations", []))
        )
        threats = tuple(
            Threat(
                category=t["category"], details=t["details"], product_ids=self._ids(t, f"{path}.threats[{i}]")
            )
            for i, t in enumerate(vuln.get("threats", []))
        )
        scores = tuple(
            s
            for i, item in enumerate(vuln.get("scores", []))
            for s in self._scores(item, f"{path}.scores[{i}]")
        )
        return Vulnerability(
            cve=vuln.get("cve"),
            title=vuln.get("title"),
            product_status={k: v for k, v in status.items() if v},
            remediations=remediations,
            scores=scores,
            threats=threats,
        )

    def _scores(self, item: dict[str, Any], path: str) -> list[Score]:
        ids = tuple(self._ref(pid, f"{path}.products[{i}]") for i, pid in enumerate(item["products"]))
        found = []
        for field in ("cvss_v2", "cvss_v3", "cvss_v4"):
            cvss = item.get(field)
            if cvss is None:
                continue
            where = f"{path}.{field}"
            if not isinstance(cvss, dict):
                raise self.fail(where, f"expected an object, got {_json_type(cvss)}")
            base = cvss.get("baseScore")
            if isinstance(base, bool) or not isinstance(base, (int, float)) or not 0 <= base <= 10:
                raise self.fail(f"{where}.baseScore", "expected a number from 0 to 10")
            vector = cvss.get("vectorString")
            if not isinstance(vector, str):
                raise self.fail(f"{where}.vectorString", f"expected a string, got {_json_type(vector)}")
            severity = cvss.get("baseSeverity")
            found.append(
                Score(
                    cvss_version=str(cvss.get("version", field[-1])),
                    base_score=float(base),
                    vector=vector,
                    severity=severity if isinstance(severity, str) else None,
                    product_ids=ids,
                )
            )
        return found


def _from_cpe(cpe: str) -> tuple[str, str, str | None] | None:
    parts = cpe.split(":")
    if len(parts) < 6 or parts[0] != "cpe" or parts[1] != "2.3":
        return None
    vendor, product, version = (p.replace("_", " ").replace("\\", "") for p in parts[3:6])
    return vendor, product, None if version in {"*", "-", ""} else version


def _from_purl(purl: str) -> tuple[str, str, str | None] | None:
    if not purl.startswith("pkg:"):
        return None
    body, _, version = purl[4:].split("?", maxsplit=1)[0].split("#", maxsplit=1)[0].partition("@")
    parts = body.split("/")
    if len(parts) < 3:
        return None
    return parts[-2], parts[-1], version or None


def vendors_of(advisory: Advisory) -> set[str]:
    return {normalize_vendor(p.vendor) for p in advisory.products.values()}


def iter_status(advisory: Advisory) -> Iterator[tuple[int, str, ProductEntry]]:
    """(vulnerability index, status category, product) for every product status statement."""
    for index, vuln in enumerate(advisory.vulnerabilities):
        for category, ids in vuln.product_status.items():
            for pid in ids:
                yield index, category, advisory.products[pid]
