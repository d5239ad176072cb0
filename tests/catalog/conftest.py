"""Paths to the shared test data (the ``shared`` folder beside the repository)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
CATALOG_DATA = SHARED / "catalog"
CSAF_DIR = CATALOG_DATA / "csaf"
KEV_FILE = CATALOG_DATA / "kev" / "known_exploited_vulnerabilities.json"


def load_csaf(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CSAF_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def real_documents() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(CSAF_DIR.glob("*.json"))}
