"""The agent's ``[controller]`` table: the key commands must be signed with (agent/settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.settings import load_settings
from collector.wire.commands import public_key_text
from runtime.config import ConfigError
from tests.agent.drivers import lookup
from tests.agent.test_settings import VALID

PUBLIC = public_key_text(Ed25519PrivateKey.generate().public_key())


def _load(tmp_path: Path, table: str) -> list[str] | str:
    path = tmp_path / "agent.toml"
    path.write_text(VALID + "\n[controller]\n" + table + "\n")
    try:
        settings = load_settings(path, lookup=lookup)
    except ConfigError as err:
        return err.problems
    assert settings.controller is not None
    return public_key_text(settings.controller.public_key())


def test_the_key_inline_or_from_a_file(tmp_path: Path) -> None:
    assert _load(tmp_path, f'command_key = "{PUBLIC}"') == PUBLIC
    pem = tmp_path / "controller.pub"
    key = Ed25519PrivateKey.generate().public_key()
    pem.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert _load(tmp_path, f'command_key_file = "{pem}"') == public_key_text(key)


def test_commands_state_lives_beside_the_outbox_by_default(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        VALID + f'\n[outbox]\npath = "{tmp_path}/o/outbox.db"\n[controller]\ncommand_key = "{PUBLIC}"\n'
    )
    assert load_settings(path, lookup=lookup).commands_path == tmp_path / "o" / "commands.db"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'command_key = "ed25519:AAAA"',
            "controller.command_key: an Ed25519 public key is 32 bytes",
        ),
        ('command_key = "hunter2-not-a-key"', "controller.command_key: expected ed25519:BASE64"),
        (
            "max_clock_skew_s = 10",
            "controller: give exactly one of command_key and command_key_file",
        ),
    ],
)
def test_a_bad_key_is_named_by_its_key_path_and_never_echoed(
    tmp_path: Path, table: str, expected: str
) -> None:
    problems = _load(tmp_path, table)
    assert isinstance(problems, list)
    assert any(line.startswith(expected) for line in problems), problems
    assert "hunter2" not in repr(problems)


def test_both_keys_is_an_error(tmp_path: Path) -> None:
    problems = _load(tmp_path, f'command_key = "{PUBLIC}"\ncommand_key_file = "/nonexistent"')
    assert problems == ["controller: give exactly one of command_key and command_key_file"]


def test_a_missing_or_unreadable_key_file_names_the_file(tmp_path: Path) -> None:
    problems = _load(tmp_path, f'command_key_file = "{tmp_path}/missing.pub"')
    assert problems == [
        f"controller.command_key_file: {tmp_path}/missing.pub: cannot read: No such file or directory"
    ]
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert _load(tmp_path, f'command_key_file = "{bad}"') == [
        (
            f"controller.command_key_file: {bad}: expected ed25519:BASE64"
            " (from `fernwart controller key show`) or PEM"
        )
    ]
