"""The enrollment API: admin only, the broker password in the answer to enroll/rotate only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from controller.auth import Role
from controller.broker.passwd import verify_password
from controller.metrics import Metrics
from controller.storage import Store
from controller.storage import models as m
from controller.storage.tokens import create_token
from controller.web import AppState, make_app
from controller.web.auth import authenticate

Client = TestClient[Any, Any]

# controller/web/auth.py (not wired into make_app yet) keys request storage with strings, which
# aiohttp 3.10+ warns about; ours to remove once the lead's middleware uses web.RequestKey.


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store.open(database_url) as store:
        yield store


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    app = make_app(AppState(store, Metrics(), lambda: True))
    if authenticate not in app.middlewares:  # until make_app installs it
        app.middlewares.append(authenticate)
    _, token = await create_token(store, name="admin", role=Role.NOC_ADMIN)
    async with TestClient(
        TestServer(app, host="127.0.0.1"), headers={"Authorization": f"Bearer {token}"}
    ) as c:
        yield c


async def _hash(store: Store, site: str) -> str | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(m.SITES.select().where(m.SITES.c.site_id == site))).first()
    return None if row is None else row.password_hash


async def test_enroll_list_rotate_unenroll(client: Client, store: Store) -> None:
    resp = await client.post("/api/v1/enrollments", json={"site_id": "site-1", "agent_id": "agent-1"})
    assert resp.status == 201
    body = await resp.json()
    assert (body["site_id"], body["agent_id"], body["broker_username"]) == ("site-1", "agent-1", "agent-1")
    assert body["enrolled_by"] == "admin"
    password = body["password"]
    stored = await _hash(store, "site-1")
    assert stored is not None
    assert password not in stored
    assert verify_password(password, stored)

    again = await client.post("/api/v1/enrollments", json={"site_id": "site-1", "agent_id": "agent-2"})
    assert again.status == 409
    assert (await again.json())["errors"][0]["loc"] == ["body", "site_id"]
    taken = await client.post("/api/v1/enrollments", json={"site_id": "site-2", "agent_id": "agent-1"})
    assert taken.status == 409
    assert (await taken.json())["errors"][0]["loc"] == ["body", "agent_id"]

    listing = await client.get("/api/v1/enrollments")
    text = await listing.text()
    assert listing.status == 200
    assert password not in text
    assert "password_hash" not in text
    items = (await listing.json())["items"]
    assert [(i["site_id"], i["agent_id"], i["has_password"]) for i in items] == [("site-1", "agent-1", True)]
    assert all("password" not in item for item in items)

    rotated = await client.post("/api/v1/enrollments/site-1/rotate")
    assert rotated.status == 200
    new_password = (await rotated.json())["password"]
    assert new_password != password
    stored = await _hash(store, "site-1")
    assert stored is not None
    assert verify_password(new_password, stored)
    assert not verify_password(password, stored)

    assert (await client.delete("/api/v1/enrollments/site-1")).status == 204
    assert (await client.delete("/api/v1/enrollments/site-1")).status == 404
    assert (await client.post("/api/v1/enrollments/site-1/rotate")).status == 404
    assert (await (await client.get("/api/v1/enrollments")).json())["items"] == []
    # Released: the site may be enrolled again, with another agent.
    other = await client.post("/api/v1/enrollments", json={"site_id": "site-1", "agent_id": "agent-9"})
    assert other.status == 201


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"site_id": "bad site", "agent_id": "a"}, ["body", "site_id"]),
        ({"site_id": "s", "agent_id": "a:b"}, ["body", "agent_id"]),
        ({"site_id": "s"}, ["body", "agent_id"]),
        ({"site_id": "s", "agent_id": "a", "password": "mine"}, ["body", "password"]),
    ],
)
async def test_bad_input_names_the_field(client: Client, body: dict[str, str], loc: list[str]) -> None:
    resp = await client.post("/api/v1/enrollments", json=body)
    assert resp.status == 422
    errors = (await resp.json())["errors"]
    assert [e["loc"] for e in errors] == [loc]
    assert "mine" not in await resp.text()


async def test_only_admins_enroll(client: Client, store: Store) -> None:
    _, viewer = await create_token(store, name="viewer", role=Role.NOC_OPERATOR)
    resp = await client.post(
        "/api/v1/enrollments",
        json={"site_id": "s", "agent_id": "a"},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert resp.status == 403
    for method, path in (
        ("GET", "/api/v1/enrollments"),
        ("POST", "/api/v1/enrollments"),
        ("DELETE", "/api/v1/enrollments/s"),
        ("POST", "/api/v1/enrollments/s/rotate"),
    ):
        resp = await client.request(
            method, path, headers={"Authorization": "Bearer fwt_not-a-real-token-at-all"}
        )
        assert resp.status == 401, (method, path)
