"""An unsupported database URL is a config error: exit 78, one line, the password never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.settings import load_settings
from runtime.config import ConfigError

PASSWORD = "s3cret-pw"  # a test value that must never be printed


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "controller.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    return path


def test_mysql_url_is_one_line_and_exit_78(tmp_path: Path) -> None:
    path = _config(tmp_path, f"mysql://fernwart:{PASSWORD}@127.0.0.1/fernwart")
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("config error: database.url: unsupported database (scheme 'mysql')")
    assert "sqlite+aiosqlite" in lines[0]
    assert "postgresql+asyncpg" in lines[0]
    assert PASSWORD not in proc.stderr
    assert "Value error" not in proc.stderr


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://fernwart:{PASSWORD}@127.0.0.1/db",  # the default driver is psycopg2, not asyncpg
        f"postgresql+psycopg2://fernwart:{PASSWORD}@127.0.0.1/db",
        "sqlite:///var/fernwart.db",  # pysqlite: not async
        f"{PASSWORD}",  # no scheme at all: nothing of it is echoed
        f"postgresql:{PASSWORD}://host/db",  # a colon in the "scheme": not echoed either
    ],
)
def test_unsupported_dialects_and_drivers_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_config(tmp_path, url))
    (problem,) = err.value.problems
    assert problem.startswith("database.url: unsupported database")
    assert PASSWORD not in problem


def test_an_unsupported_url_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERNWART_DATABASE__URL", f"mysql+aiomysql://u:{PASSWORD}@127.0.0.1/x")
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert err.value.problems[0].startswith("database.url: unsupported database (scheme 'mysql+aiomysql')")


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///./var/x.db", f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:5432/db"]
)
def test_supported_urls_pass(tmp_path: Path, url: str) -> None:
    assert load_settings(_config(tmp_path, url)).database.url.get_secret_value() == url
