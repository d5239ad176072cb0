"""One settings style for both daemons: ``ConfigError``, its formatter, the file reader, ``[mqtt.tls]``.

A daemon's settings come from one TOML file (:func:`read_toml`: syntax errors name line and
column), secret references resolved (:mod:`runtime.secrets`: ``{ env = … }``, ``{ credential =
… }``), then ``FERNWART_…`` environment variables override single keys (nested keys joined by
``__``: ``FERNWART_MQTT__PORT=1884``). Every problem is collected and raised at once as
:class:`ConfigError`, one line per problem, each starting with its key path
(``devices[3].options.community: field required``); values are never echoed, since a misplaced
one could be a secret. ``__main__`` prints :func:`config_error_lines` to stderr and exits
:data:`EX_CONFIG`; the units have ``RestartPreventExitStatus=78``.
"""

from __future__ import annotations

import ssl
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collector.validation import clean_message
from runtime.secrets import resolve_secrets

__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "DaemonSettings",
    "TlsSettings",
    "clean_message",
    "config_error_lines",
    "format_loc",
    "problem_message",
    "read_toml",
    "settings_or_problems",
    "tls_context",
    "validation_lines",
]

EX_CONFIG = 78  # sysexits(3): the configuration is unusable; systemd does not restart (see the units)


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` holds one line per fault, each naming its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_error_lines(err: ConfigError) -> list[str]:
    """What a daemon or command prints before exiting 78: ``config error: <path>: <problem>``."""
    return [f"config error: {problem}" for problem in err.problems]


def format_loc(loc: Iterable[str | int], prefix: str = "") -> str:
    """``("devices", 3, "options", "community")`` → ``devices[3].options.community``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path or "(root)"


def problem_message(item: Any) -> str:
    """One pydantic error item as a person reads it; the value is never included."""
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "field required"
    return clean_message(item["msg"])


def validation_lines(err: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """``(key path, problem)`` for every error in ``err``, key paths under ``prefix``."""
    items = err.errors(include_url=False)
    return [(format_loc(item["loc"], prefix), problem_message(item)) for item in items]


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``. Raises :class:`ConfigError` (unreadable, not UTF-8, bad syntax)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"{path}: cannot read config file: {err.strerror or err}"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: config file is not UTF-8: {err.reason}"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # The message ends with "(at line L, column C)".
        raise ConfigError([f"{path}: TOML syntax error: {err}"]) from None


class TlsSettings(BaseModel):
    """``[mqtt.tls]``, the same table for the agent and the controller. Without ``ca_file`` the
    system trust store is used. A client certificate (``cert_file`` + ``key_file``) may replace or
    complement username/password."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    server_hostname_check: bool = True

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file given without cert_file")
        return self


def tls_context(tls: TlsSettings | None) -> ssl.SSLContext | None:
    """An SSL context from a ``[mqtt.tls]`` table, or None when TLS is not configured."""
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        context.load_cert_chain(
            str(tls.cert_file),
            str(tls.key_file) if tls.key_file else None,
            password=tls.key_password.get_secret_value() if tls.key_password else None,
        )
    if not tls.server_hostname_check:
        context.check_hostname = False
    return context


class DaemonSettings(BaseSettings):
    """The root of a daemon's settings: strict, frozen, ``FERNWART_…`` environment beats the file."""

    model_config = SettingsConfigDict(
        env_prefix="FERNWART_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del settings_cls, dotenv_settings
        return (env_settings, file_secret_settings, init_settings)  # env beats the file


SettingsT = TypeVar("SettingsT", bound=DaemonSettings)


def settings_or_problems(
    cls: type[SettingsT], raw: dict[str, Any]
) -> tuple[SettingsT | None, dict[str, Any], list[tuple[str, str]]]:
    """Resolve the secret references in ``raw``, then validate it (with the environment) as ``cls``.

    Returns the settings (None when invalid), the resolved document and every ``(key path,
    problem)``; a reference that could not be resolved is reported once, not again as missing.
    """
    resolved, secret_errors = resolve_secrets(raw)
    problems: list[tuple[str, str]] = list(secret_errors.items())
    try:
        settings = cls(**resolved)
    except ValidationError as err:
        problems.extend(line for line in validation_lines(err) if line[0] not in secret_errors)
        return None, resolved, problems
    return (None if problems else settings), resolved, problems
