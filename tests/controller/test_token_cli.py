"""``fernwart controller token create|list|revoke --config FILE``: the bootstrap path, no API."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from controller.storage import Store, tokens

FERNWART = str(Path(sys.executable).parent / "fernwart")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    argv_ = [FERNWART, "controller", *argv]
    return subprocess.run(argv_, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "controller.toml"
    path.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "c.db"}"\n')
    assert _run("init", "--config", str(path)).returncode == 0  # the commands never create a database
    return path


async def test_create_list_revoke(config: Path) -> None:
    made = _run("token", "create", "--name", "acme portal", "--role", "customer", "--tenant", "acme",
                "--expires", "2099-12-31", "--config", str(config))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("fwt_")
    assert len(token) >= 40
    db = config.parent / "c.db"
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert token not in dump
    assert token[4:] not in dump
    assert tokens.token_hash(token) in dump
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        info = await tokens.authenticate(store, token)
        assert info is not None
        assert (info.role.value, info.tenant, info.name) == ("customer", "acme", "acme portal")
        assert info.expires_at is not None
        assert info.expires_at.year == 2099

    listed = _run("token", "list", "--json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [(r["name"], r["role"], r["tenant"], r["revoked_at"]) for r in records] == [
        ("acme portal", "customer", "acme", None)
    ]
    assert token not in listed.stdout
    plain = _run("token", "list", "--config", str(config))
    assert "acme portal" in plain.stdout
    assert "active" in plain.stdout

    revoked = _run("token", "revoke", str(records[0]["id"]), "--config", str(config))
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in _run("token", "list", "--config", str(config)).stdout
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        assert await tokens.authenticate(store, token) is None
    assert _run("token", "revoke", "999", "--config", str(config)).returncode == 1


def test_bad_requests_are_refused_with_the_reason(config: Path, tmp_path: Path) -> None:
    no_tenant = _run("token", "create", "--name", "x", "--role", "customer", "--config", str(config))
    assert no_tenant.returncode == 2
    assert "tenant" in no_tenant.stderr
    noc_tenant = _run(
        "token", "create", "--name", "x", "--role", "noc-admin", "--tenant", "a", "--config", str(config)
    )
    assert noc_tenant.returncode == 2
    past = _run("token", "create", "--name", "x", "--role", "noc-admin", "--expires", "2001-01-01",
                "--config", str(config))
    assert past.returncode == 2
    assert "past" in past.stderr
    bad_role = _run("token", "create", "--name", "x", "--role", "root", "--config", str(config))
    assert bad_role.returncode == 2
    broken = tmp_path / "broken.toml"
    broken.write_text("[database]\nurl = 3\n")
    bad_config = _run("token", "list", "--config", str(broken))
    assert bad_config.returncode == 78
    assert "database.url" in bad_config.stderr
