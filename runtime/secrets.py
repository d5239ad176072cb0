"""Secret references in the raw config, resolved before validation.

Any value in the TOML file may be a one-key table instead of the literal value:

    password = { env = "FERNWART_MQTT_PASSWORD" }     # read from an environment variable
    password = { credential = "mqtt-password" }       # $CREDENTIALS_DIRECTORY/mqtt-password

The second form reads a systemd credential (``LoadCredential=mqtt-password:/etc/…``), which is
only readable by the service. A single trailing newline of a credential file is dropped, because
editors add one. Both daemons resolve references the same way, on the raw dict
(:func:`runtime.config.settings_or_problems`), so every ``SecretStr`` field — the broker password,
the database URL, SNMP communities, v3 keys inside a device's ``options`` — supports it without
knowing.
Resolved values are never logged; errors name the key path and the reference, never a value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_REFERENCE_KEYS = frozenset({"env", "credential"})


def _is_reference(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _REFERENCE_KEYS


def _read_credential(name: str) -> tuple[str | None, str | None]:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None, f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set"
    if not name or "/" in name or name in {".", ".."}:
        return None, f"credential name {name!r} is not a plain file name"
    path = Path(directory) / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"credential {name!r} not found in $CREDENTIALS_DIRECTORY"
    except (OSError, UnicodeDecodeError) as err:
        return None, f"credential {name!r} could not be read ({type(err).__name__})"
    return text.removesuffix("\n").removesuffix("\r"), None


def _resolve_reference(ref: dict[str, Any]) -> tuple[str | None, str | None]:
    ((kind, name),) = ref.items()
    if not isinstance(name, str):
        return None, f"{kind}: expected a string"
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            return None, f"environment variable {name} is not set"
        return value, None
    return _read_credential(name)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def resolve_secrets(raw: Any, path: str = "") -> tuple[Any, dict[str, str]]:
    """Return a copy of ``raw`` with every ``{env=…}``/``{credential=…}`` table replaced by its
    value, and ``{key path: problem}`` for each reference that could not be resolved (that key is
    left out; the caller drops validation errors at the same path so it is reported once)."""
    errors: dict[str, str] = {}
    if isinstance(raw, dict):
        out: dict[str, Any] = {}
        for key, value in raw.items():
            where = _join(path, key)
            if _is_reference(value):
                resolved, error = _resolve_reference(value)
                if error is not None:
                    errors[where] = error
                    continue
                out[key] = resolved
            else:
                out[key], sub = resolve_secrets(value, where)
                errors.update(sub)
        return out, errors
    if isinstance(raw, list):
        items = []
        for index, value in enumerate(raw):
            item, sub = resolve_secrets(value, _join(path, index))
            items.append(item)
            errors.update(sub)
        return items, errors
    return raw, errors
