"""The log chain keeps secrets out: no frame locals, URL passwords masked, registered values masked."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, PrivateAttr, SecretStr

from fernwart_cli.microsoft import logs_to_stderr
from runtime import logging as logconfig
from runtime import redaction
from runtime.redaction import mask_url, register_secret, register_settings_secrets, scrub, secret_values

SECRET = "S3cr3t-unit-41d9"


@pytest.fixture
def logging_configured(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Restores logging afterwards. Tests call configure_logging themselves: pytest's logging
    plugin resets the root logger's handlers between a test's setup and its call."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    try:
        yield capsys
    finally:
        root.handlers[:], level, sys.excepthook, threading.excepthook = saved
        root.setLevel(level)
        structlog.reset_defaults()
        redaction.clear_secrets()


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+asyncpg://fw:pw@db:5432/fw", "postgresql+asyncpg://fw:***@db:5432/fw"),
        ("mqtt://agent:p%40ss@broker", "mqtt://agent:***@broker"),
        ("error at 'postgresql://u:x@h/d' here", "error at 'postgresql://u:***@h/d' here"),
        ("http://host:8080/a@b", "http://host:8080/a@b"),
        ("sqlite+aiosqlite:///./var/fernwart.db", "sqlite+aiosqlite:///./var/fernwart.db"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_registered_secrets_are_masked_in_every_spelling() -> None:
    try:
        register_secret('q"uo\\te-S3cr3t')
        register_secret("postgresql+asyncpg://fw:db-S3cr3t@h/fw")
        register_secret("abc")  # too short to mask
        text = json.dumps({"v": repr('q"uo\\te-S3cr3t'), "w": 'q"uo\\te-S3cr3t', "x": "db-S3cr3t abc"})
        assert "S3cr3t" not in scrub(text)
        assert "abc" in scrub(text)
    finally:
        redaction.clear_secrets()


class _Options(BaseModel):
    community: SecretStr
    host: str


class _Device(BaseModel):
    options: dict[str, Any]
    _validated: _Options | None = PrivateAttr(None)


def test_secret_values_walks_models_private_attributes_and_secret_keys() -> None:
    device = _Device(options={"community": "raw-community", "token_url": "https://example.invalid/t"})
    device._validated = _Options(community=SecretStr("validated-community"), host="h")
    assert set(secret_values([device])) == {"raw-community", "validated-community"}


def test_tracebacks_have_no_frame_locals_and_lines_are_scrubbed(
    logging_configured: pytest.CaptureFixture[str],
) -> None:
    logconfig.configure_logging("debug", json=True)
    register_settings_secrets(_Options(community=SecretStr(SECRET), host="h"))

    def connect(password: str) -> None:
        raise ConnectionError(f"refused for postgresql://fw:{password}@127.0.0.1/fw")

    log = structlog.get_logger("test")
    try:
        connect(SECRET)
    except ConnectionError:
        log.exception("connect_failed", detail=f"secret is {SECRET}")
    try:
        connect("unregistered-pw")
    except ConnectionError as err:
        logging.getLogger("sqlalchemy.pool").exception("pool error", exc_info=err)

    lines = _lines(logging_configured)
    assert [line["event"] for line in lines] == ["connect_failed", "pool error"]
    for line in lines:
        frames = [frame for stack in line["exception"] for frame in stack["frames"]]
        assert frames
        assert all("locals" not in frame or frame["locals"] is None for frame in frames)
    text = json.dumps(lines)
    assert SECRET not in text
    assert "unregistered-pw" not in text
    assert "postgresql://fw:***@127.0.0.1/fw" in text


def test_unhandled_exceptions_go_through_the_chain(logging_configured: pytest.CaptureFixture[str]) -> None:
    logconfig.configure_logging("debug", json=True)
    register_secret(SECRET)

    def fail() -> None:
        raise RuntimeError(SECRET)

    try:
        fail()
    except RuntimeError as err:
        sys.excepthook(type(err), err, err.__traceback__)
    (line,) = _lines(logging_configured)
    assert line["event"] == "unhandled_exception"
    assert SECRET not in json.dumps(line)


def test_console_tracebacks_have_no_frame_locals(logging_configured: pytest.CaptureFixture[str]) -> None:
    logconfig.configure_logging("debug", json=False)

    def connect(password: str) -> None:
        raise ConnectionError("refused")

    password = "unregistered-" + "console-pw"  # rich shows source lines: not spelt out there
    try:
        connect(password)
    except ConnectionError:
        structlog.get_logger("test").exception("connect_failed")
    out = logging_configured.readouterr().out
    assert "connect_failed" in out
    assert "ConnectionError" in out
    assert password not in out


def test_a_command_logs_scrubbed_to_stderr_and_leaves_the_loggers_unbound(
    logging_configured: pytest.CaptureFixture[str],
) -> None:
    """The Microsoft probe and tenant check print their JSON report on stdout: their warnings go
    to stderr through the same chain (a secret a vendor echoed is scrubbed), and the modules'
    loggers stay unbound, so a later configuration in the process takes effect."""
    logs_to_stderr()
    register_secret(SECRET)
    log = structlog.get_logger("collector.graph")
    log.info("not_shown")  # below warning
    log.warning("graph_retry_given_up", detail=f"invalid_client: {SECRET}")
    out = logging_configured.readouterr()
    assert out.out == ""
    (line,) = [json.loads(text) for text in out.err.splitlines() if text.strip()]
    assert line["event"] == "graph_retry_given_up"
    assert SECRET not in out.err
    structlog.reset_defaults()  # the next command, or a test, configures anew
    with structlog.testing.capture_logs() as captured:
        log.warning("seen_by_capture")
    assert [e["event"] for e in captured] == ["seen_by_capture"]
