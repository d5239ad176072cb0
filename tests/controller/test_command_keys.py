"""``fernwart controller key create|show``: the command-signing key (controller/commands/keys.py)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from collector.wire.commands import parse_public_key, public_key_text
from controller.commands.keys import KeyFileError, create_key, load_key

FERNWART = str(Path(sys.executable).parent / "fernwart")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FERNWART, "controller", *argv], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "controller.toml"
    path.write_text(f'[commands]\nkey_file = "{tmp_path / "keys" / "command.pem"}"\n')
    return path


def test_create_then_show_print_the_same_public_key_and_never_the_private_one(config: Path) -> None:
    made = _run("key", "create", "--config", str(config))
    assert made.returncode == 0, made.stderr
    key_file = config.parent / "keys" / "command.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = _run("key", "show", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    public = shown.stdout.strip().splitlines()[-1]
    assert made.stdout.strip().splitlines()[-1] == public
    assert public_key_text(load_key(key_file).public_key()) == public
    parse_public_key(public)  # what the agents' [controller] command_key reads
    private_pem = key_file.read_text()
    body = "".join(private_pem.splitlines()[1:-1])
    for out in (made.stdout, made.stderr, shown.stdout, shown.stderr):
        assert body not in out
        assert "PRIVATE" not in out


def test_create_never_replaces_a_key(config: Path) -> None:
    assert _run("key", "create", "--config", str(config)).returncode == 0
    key_file = config.parent / "keys" / "command.pem"
    before = key_file.read_bytes()
    again = _run("key", "create", "--config", str(config))
    assert again.returncode == 1
    assert "commands.key_file" in again.stderr
    assert "exists" in again.stderr
    assert key_file.read_bytes() == before


def test_show_without_a_key_names_the_file_and_the_fix(config: Path) -> None:
    shown = _run("key", "show", "--config", str(config))
    assert shown.returncode == 1
    assert "command.pem: no such file" in shown.stderr
    assert "key create" in shown.stderr


def test_a_bad_config_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[commands]\nkey_fil = 1\n")
    shown = _run("key", "show", "--config", str(path))
    assert shown.returncode == 78
    assert "commands.key_fil" in shown.stderr


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    create_key(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match=r"readable by others \(mode 0640\)"):
        load_key(path)


def test_a_key_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_key(path)
    path.write_text("garbage")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_key(path)


def _init_config(tmp_path: Path) -> Path:
    path = tmp_path / "controller.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "c.db"}"\n'
        f'[commands]\nkey_file = "{tmp_path / "keys" / "command.pem"}"\n'
    )
    return path


def test_init_creates_the_key_once_and_prints_its_public_key(tmp_path: Path) -> None:
    """``controller init`` makes the controller ready to run campaigns: the database and, when
    missing, the command key; run again, it keeps the key (agents trust it) and prints the same."""
    config = _init_config(tmp_path)
    first = _run("init", "--config", str(config))
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "keys" / "command.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = first.stdout.strip().splitlines()[-1]
    assert public == public_key_text(load_key(key_file).public_key())
    assert "created" in first.stdout
    before = key_file.read_bytes()
    again = _run("init", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == public
    assert "kept" in again.stdout
    assert key_file.read_bytes() == before
    assert _run("key", "show", "--config", str(config)).stdout.strip().splitlines()[-1] == public
    for out in (first.stdout, first.stderr, again.stdout):
        assert "PRIVATE" not in out


def test_init_refuses_an_unusable_key_and_names_it(tmp_path: Path) -> None:
    config = _init_config(tmp_path)
    key_file = tmp_path / "keys" / "command.pem"
    create_key(key_file)
    key_file.chmod(0o644)
    done = _run("init", "--config", str(config))
    assert done.returncode == 1
    assert "commands.key_file" in done.stderr
    assert "readable by others" in done.stderr
    assert (tmp_path / "c.db").exists()  # the database is ready all the same
