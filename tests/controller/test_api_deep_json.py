"""JSON bodies nested deeper than the parser's stack: 400 (or 422), never 500.

Found: ``[[[[…`` (100,000 levels) as the body of the contracts, campaigns and approvals routes
raised RecursionError out of ``json.loads`` and answered 500.
"""

from __future__ import annotations

import pytest

from controller.storage import Store
from tests.controller.test_campaigns_api import POLICY, WINDOWS, Client, call, client  # noqa: F401

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/contracts"),
        ("POST", "/api/v1/campaigns"),
        ("POST", "/api/v1/customers/acme/approvals"),
        ("PUT", "/api/v1/customers/acme/webhook"),
        ("PUT", "/api/v1/scope/site-1/dev-1"),
        ("POST", "/api/v1/advisories"),
        ("PUT", "/api/v1/kev"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/enrollments"),
    ],
)
async def test_a_body_nested_too_deeply_is_refused_not_500(
    client: tuple[Client, Store],  # noqa: F811
    method: str,
    path: str,
) -> None:
    http, _store = client
    await call(http, "PUT", "/api/v1/contracts", 200, {"policy": POLICY, "windows": WINDOWS})
    response = await http.request(method, path, data=DEEP, headers={"Content-Type": "application/json"})
    assert response.status in {400, 413, 415, 422}, (path, response.status, await response.text())
