"""The controller's command key: one Ed25519 private key in a PEM file only its owner can read.

``fernwart controller key create`` writes it (PKCS#8, unencrypted, created with mode 0600 and
never overwritten); ``key show`` prints the public half (``ed25519:BASE64``) for the agents'
``[controller] command_key``. A key file others can read is refused, as ssh refuses one: a
leaked key lets anyone update every device of every customer. No message here contains key
material, only the file's path.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.wire.commands import public_key_text

if TYPE_CHECKING:
    from pathlib import Path


class KeyFileError(Exception):
    """The key file is missing, unreadable, too open or not an Ed25519 key; names the path."""


def create_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and write it to ``path`` (mode 0600). Refuses to replace an existing file:
    agents trust the old public key, and replacing it is a rollout, not an accident."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: exists; agents trust its public key, so it is not replaced") from None
    except OSError as err:
        raise KeyFileError(f"{path}: cannot create: {err.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    """Read the private key; raises :class:`KeyFileError` naming the path and what is wrong."""
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            f"{path}: no such file (create it with `fernwart controller key create --config FILE`)"
        ) from None
    except OSError as err:
        raise KeyFileError(f"{path}: cannot read: {err.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(info.st_mode)
        raise KeyFileError(f"{path}: readable by others (mode {mode:04o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def public_text(key: Ed25519PrivateKey) -> str:
    """The public key as agents configure it: ``ed25519:BASE64``."""
    return public_key_text(key.public_key())
