"""Broker passwords in Mosquitto 2's password-file format (``$7$``), which EMQX reads as well.

A line of Mosquitto's password file is ``username:$7$<iterations>$<salt>$<hash>``: PBKDF2 with
HMAC-SHA512, a random salt, a 64-byte derived key, both standard base64 with padding, 101
iterations (what ``mosquitto_passwd`` 2.0 writes; Mosquitto 2.0.11 reads any count). See
mosquitto ``apps/mosquitto_passwd/mosquitto_passwd.c`` and ``src/password_mosq.c``;
``tests/controller/test_broker_passwd.py`` checks both directions against the installed tools.

Our salts are 12 printable characters (72 random bits), used as bytes: EMQX's built-in
database takes the salt as a string beside a hex hash, so the same hash serves both brokers
(:func:`emqx_fields`).

The passwords themselves are 256 random bits shown once: the iteration count protects a
guessable password, not these, so the broker's default is kept (it hashes on every CONNECT).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

ITERATIONS = 101
_SALT_CHARS = 12  # Mosquitto requires a 12-byte salt (SALT_LEN in password_mosq.c)
_KEY_BYTES = 64
_MAX_ITERATIONS = 10_000_000  # a stored hash is data: refuse absurd work factors


def new_password() -> str:
    """A fresh broker password: 43 URL-safe characters (no ``:``, safe in config files)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``password`` as Mosquitto 2 stores it: ``$7$<iterations>$<b64 salt>$<b64 hash>``."""
    salt = (
        salt if salt is not None else secrets.token_urlsafe(_SALT_CHARS * 3 // 4).encode()
    )  # 72 random bits
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _KEY_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (``$7$`` format); False for any malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    iterations = int(parts[2])
    if not 1 <= iterations <= _MAX_ITERATIONS:
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        return False
    if not salt or len(expected) != _KEY_BYTES:
        return False
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _KEY_BYTES)
    return hmac.compare_digest(key, expected)


def emqx_fields(encoded: str) -> tuple[str, str, int]:
    """(hex hash, salt, iterations) of a ``$7$`` hash, as EMQX's built-in database stores a
    PBKDF2 user. Raises ValueError for a malformed hash or a salt that is not printable."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        raise ValueError("not a $7$ password hash")
    salt = base64.b64decode(parts[3], validate=True)
    if not salt.isascii() or not salt.decode().isprintable() or "," in salt.decode():
        raise ValueError("the hash's salt is not printable (made by mosquitto_passwd, not fernwart)")
    return base64.b64decode(parts[4], validate=True).hex(), salt.decode(), int(parts[2])
