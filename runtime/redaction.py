"""Keep secrets out of log output: known values, URL passwords, secret-named keys.

A daemon registers its secrets once, at start (:func:`register_settings_secrets` walks its
settings for every ``SecretStr``); :func:`scrub` then replaces each of them with ``***`` wherever
it appears in a rendered log line, in the spellings a renderer produces (as is, ``repr``-escaped,
JSON-escaped). It also masks the password of any ``scheme://user:password@host`` URL, known or
not, so a database or broker URL in an exception message comes out as
``postgresql+asyncpg://fw:***@db/fernwart``. Values shorter than :data:`MIN_SECRET_LENGTH` are not
registered: replacing every ``"abc"`` in every line would garble the log and still say which
three letters were the secret.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "***"
MIN_SECRET_LENGTH = 4
SECRET_KEY_WORDS = ("password", "community", "token", "secret", "auth_key", "priv_key", "passphrase")

# scheme://user:password@ — the password ends at the last "@" before the host part. Quotes and
# whitespace end a URL inside a message or a repr.
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*:)[^\s'\"/?#]*(?=@)")

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def _spellings(value: str) -> Iterator[str]:
    yield value
    yield repr(value)[1:-1]
    yield json.dumps(value)[1:-1]
    yield json.dumps(repr(value)[1:-1])[1:-1]


def register_secret(value: str | bytes | None) -> None:
    """Mask ``value`` in every log line from now on (and the password, if it is a URL)."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    found = {text}
    password = _url_password(text)
    if password:
        found |= {password, unquote(password)}
    new = {spelling for item in found for spelling in _spellings(item) if len(item) >= MIN_SECRET_LENGTH}
    global _secrets, _pattern  # noqa: PLW0603 - the one registry, written at start, read per line
    with _lock:
        if new <= _secrets:
            return
        _secrets = _secrets | new
        # Longest first, so a secret containing another is masked whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(map(re.escape, alternatives)))


def registered_count() -> int:
    return len(_secrets)


def clear_secrets() -> None:
    """Forget every registered value (tests)."""
    global _secrets, _pattern
    with _lock:
        _secrets, _pattern = frozenset(), None


def _url_password(text: str) -> str | None:
    if "://" not in text:
        return None
    try:
        return urlsplit(text.strip()).password
    except ValueError:
        return None


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (unchanged when it has none)."""
    return _URL_CREDENTIALS.sub(lambda m: m["head"] + MASK, url)


def scrub(text: str) -> str:
    """``text`` with URL passwords and every registered secret replaced by ``***``."""
    if "://" in text:
        text = mask_url(text)
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


def secret_values(obj: Any) -> Iterator[str]:
    """Every ``SecretStr``/``SecretBytes`` value inside ``obj`` (models, mappings, sequences),
    including private attributes such as a device's validated driver options, and plain strings
    under secret-named keys of a mapping (a device's raw ``options``)."""
    seen: dict[int, Any] = {}  # holding each object, so no id is reused while walking

    def walk(item: Any) -> Iterator[str]:
        if id(item) in seen:
            return
        seen[id(item)] = item
        if isinstance(item, SecretStr | SecretBytes):
            value = item.get_secret_value()
            yield value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        elif isinstance(item, BaseModel):
            fields = [getattr(item, name) for name in type(item).model_fields]
            yield from walk([*fields, *(item.__pydantic_private__ or {}).values()])
        elif isinstance(item, Mapping):
            yield from (value for key, value in item.items() if isinstance(value, str) and _secret_key(key))
            yield from walk([value for value in item.values() if not isinstance(value, str)])
        elif isinstance(item, list | tuple | set | frozenset):
            for value in item:
                yield from walk(value)

    return walk(obj)


def _secret_key(key: object) -> bool:
    # "community", "auth_key", "mqtt_password"; not "token_url".
    return isinstance(key, str) and key.lower().endswith(SECRET_KEY_WORDS)


def register_settings_secrets(*settings: Any) -> None:
    """Register every secret in ``settings`` (see :func:`secret_values`)."""
    for obj in settings:
        for value in secret_values(obj):
            register_secret(value)


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)
