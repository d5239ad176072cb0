"""Hostile and broken documents: each rejected with document name and JSON path; the import goes on."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_catalog import Catalog, CatalogError, Device, DocumentError, Matcher, parse_advisory
from tests.catalog.conftest import CSAF_DIR, load_csaf

BASE = "cisco-sa-20161102-tp"

Mutation = Callable[[dict[str, Any]], None]


def _set_branch_name(doc: dict[str, Any]) -> None:
    doc["product_tree"]["branches"][0]["branches"][0]["branches"][2]["name"] = 42


def _huge_string(doc: dict[str, Any]) -> None:
    doc["document"]["notes"][0]["text"] = "A" * (50 * 1024 * 1024)


def _deep(doc: dict[str, Any]) -> None:
    nested: Any = "x"
    for _ in range(10_000):
        nested = [nested]
    doc["document"]["notes"][0]["deep"] = nested


def _duplicate_id(doc: dict[str, Any]) -> None:
    branches = doc["product_tree"]["branches"][0]["branches"][0]["branches"]
    branches[3]["product"]["product_id"] = branches[2]["product"]["product_id"]


def _empty_range(doc: dict[str, Any]) -> None:
    doc["product_tree"]["branches"][0]["branches"][0]["branches"][0]["name"] = "vers:generic/>=9.0|<8.0"


def _undefined_ref(doc: dict[str, Any]) -> None:
    doc["vulnerabilities"][0]["product_status"]["fixed"].append("CSAFPID-9999")


def _no_tracking(doc: dict[str, Any]) -> None:
    del doc["document"]["tracking"]["current_release_date"]


def _wrong_category(doc: dict[str, Any]) -> None:
    doc["document"]["category"] = "csaf_base"


def _status_not_a_list(doc: dict[str, Any]) -> None:
    doc["vulnerabilities"][0]["product_status"]["known_affected"] = "CSAFPID-0001"


HOSTILE: list[tuple[str, Mutation, str, str]] = [
    (
        "wrong type",
        _set_branch_name,
        "product_tree.branches[0].branches[0].branches[2].name",
        "expected a string",
    ),
    ("50 MB string", _huge_string, "document.notes[0].text", "exceeds the limit"),
    ("10,000-deep nesting", _deep, "document.notes[0].deep", "nesting deeper"),
    (
        "duplicate product id",
        _duplicate_id,
        "product_tree.branches[0].branches[0].branches[3].product.product_id",
        "duplicate product id",
    ),
    (
        "range matching nothing",
        _empty_range,
        "product_tree.branches[0].branches[0].branches[0].name",
        "matches no version",
    ),
    ("undefined product id", _undefined_ref, "vulnerabilities[0].product_status.fixed[4]", "is not defined"),
    ("schema violation", _no_tracking, "document.tracking", "current_release_date"),
    ("not a security advisory", _wrong_category, "document.category", "csaf_security_advisory"),
    (
        "wrong container type",
        _status_not_a_list,
        "vulnerabilities[0].product_status.known_affected",
        "expected an array",
    ),
]


@pytest.mark.parametrize(("label", "mutate", "path", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_document_is_rejected_with_document_and_path(
    label: str, mutate: Mutation, path: str, reason: str
) -> None:
    doc = load_csaf(BASE)
    mutate(doc)
    with pytest.raises(DocumentError) as caught:
        parse_advisory(doc, "hostile.json")
    err = caught.value
    assert err.document == BASE, label
    assert err.path.startswith(path), str(err)  # the deep case names the exact (long) path
    assert reason in err.reason, str(err)
    assert str(err).startswith(f"{BASE}: {path}")


@pytest.mark.parametrize(("label", "mutate", "path", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_import_goes_on_after_a_hostile_file(
    tmp_path: Path, label: str, mutate: Mutation, path: str, reason: str
) -> None:
    for source in CSAF_DIR.glob("*.json"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    doc = load_csaf(BASE)
    doc["document"]["tracking"]["id"] = "zz-hostile"
    if mutate is _deep:  # json.dumps itself cannot write 10,000 levels: splice them into the text
        doc["document"]["notes"][0]["deep"] = "@DEEP@"
        text = json.dumps(doc).replace('"@DEEP@"', "[" * 10_000 + "]" * 10_000)
    else:
        mutate(doc)
        text = json.dumps(doc)
    (tmp_path / "zz-hostile.json").write_text(text)
    catalog = Catalog()
    report = catalog.import_path(tmp_path)
    assert len(report.added) == 6, label
    assert len(report.errors) == 1
    err = report.errors[0]
    assert err.document in {"zz-hostile", str(tmp_path / "zz-hostile.json")}
    assert reason in err.reason, str(err)
    assert len(catalog) == 6


def test_deep_nesting_in_raw_json_names_the_path() -> None:
    text = '{"document": {"notes": [' + "[" * 10_000 + "]" * 10_000 + "]}}"
    with pytest.raises(DocumentError) as caught:
        Catalog().add(text.encode(), "deep.json")
    assert caught.value.document == "deep.json"
    assert caught.value.path.startswith("document.notes[0]")
    assert "nesting deeper" in caught.value.reason


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(DocumentError, match=r"^x.json: \$: not JSON"):
        Catalog().add(b"{nope", "x.json")
    with pytest.raises(DocumentError, match=r"^y.json: \$: expected an object"):
        Catalog().add(b"[1, 2]", "y.json")


def test_a_range_that_is_not_vers_is_kept_and_gives_unknown() -> None:
    doc = load_csaf(BASE)
    doc["product_tree"]["branches"][0]["branches"][0]["branches"][0]["name"] = "8.1.x and earlier"
    catalog = Catalog()
    catalog.add(doc)
    (finding,) = Matcher(catalog).match_device(Device("d", "Cisco", "Cisco TelePresence SX20", "ce8.1.1"))
    assert finding.status == "unknown"
    assert finding.reason is not None
    assert "not in vers: notation" in finding.reason


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


BASE_DOC = load_csaf(BASE)
ALL_PATHS = [p for p in _paths(BASE_DOC) if p]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ALL_PATHS), value=_json_values(), validate=st.booleans())
def test_any_replaced_value_gives_an_advisory_or_a_catalog_error(
    path: tuple[Any, ...], value: Any, validate: bool
) -> None:
    doc = copy.deepcopy(BASE_DOC)
    holder: Any = doc
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    try:
        advisory = parse_advisory(doc, "fuzz.json", validate=validate)
    except CatalogError as err:  # the property: nothing but CatalogError escapes, and it names the document
        assert str(err).startswith((BASE, "fuzz.json"))  # noqa: PT017
        return
    assert advisory.id == doc["document"]["tracking"]["id"]


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_bytes_give_a_catalog_error(data: bytes | str) -> None:
    with pytest.raises(CatalogError):
        Catalog().add(data, "fuzz.json")
