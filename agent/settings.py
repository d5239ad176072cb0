"""The agent's one TOML config file, strictly validated.

The settings style both daemons share (:mod:`runtime.config`): :func:`load_settings` reads the
file (syntax errors give line and column), resolves secret references (:mod:`runtime.secrets`),
lets ``FERNWART_…`` environment variables override keys (``FERNWART_MQTT__HOST``), validates the
result against :class:`AgentSettings` (``extra="forbid"`` everywhere, so a typo is an error) and
then each device's and source's ``options`` table against its driver's ``options_model``. Every problem is
collected and raised at once as :class:`~runtime.config.ConfigError`, one line per problem, each
starting with its key path (``devices[3].options.community: field required``,
``sources[2].options.tenant_id: field required``). Values are never
echoed, since a misplaced one could be a secret.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.model import AgentId, DeviceId, SiteId
from collector.registry import UnknownDriverError, load_driver
from collector.sources import is_source, reports_one_device
from collector.wire.codec import DEFAULT_MAX_PAYLOAD
from collector.wire.commands import parse_public_key
from collector.wire.messages import MAX_BATCH
from collector.wire.topics import DEFAULT_PREFIX
from runtime.config import (
    ConfigError,
    DaemonSettings,
    TlsSettings,
    read_toml,
    settings_or_problems,
    validation_lines,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from collector.base import DriverFactory, SourceFactory

# kind → the registered class (a driver or a source: both have ``options_model``).
DriverLookup = Callable[[str], "DriverFactory | SourceFactory"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_agent_id() -> str:
    """The host name, made a valid identifier (it appears in client ids and messages)."""
    name = re.sub(r"[^A-Za-z0-9._:-]", "-", socket.gethostname().split(".")[0].lower()).strip("-._:")
    return (name or "agent")[:128]


class BackoffSettings(_Section):
    min_s: float = Field(0.5, gt=0)
    max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BackoffSettings:
        if self.max_s < self.min_s:
            raise ValueError("max_s must not be smaller than min_s")
        return self


class MqttSettings(_Section):
    host: str = Field(min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = Field(DEFAULT_PREFIX, pattern=r"^[^#+\s]+[^#+\s/]$")
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    client_id: str | None = Field(None, min_length=1, max_length=128)
    keepalive_s: int = Field(30, ge=5, le=65535)
    # TCP connect and CONNECT → CONNACK, each; at most 5 s so a SIGTERM exit stays within 10 s.
    connect_timeout_s: float = Field(5.0, gt=0, le=5)
    publish_timeout_s: float = Field(10.0, gt=0)
    # Publishes awaiting PUBACK at once. Rows go out in order on one connection either way.
    max_inflight: int = Field(16, ge=1, le=1000)
    # A row the controller has not confirmed this long after it was published goes out again;
    # each further re-send waits twice as long, up to resend_max_s. Every reconnect re-sends all.
    confirm_timeout_s: float = Field(30.0, gt=0, le=3600)
    resend_max_s: float = Field(600.0, gt=0, le=86_400)
    # The agent's heartbeat (outbox depth, drops, poll results); the controller marks the agent
    # offline after three missed heartbeats.
    heartbeat_s: float = Field(30.0, ge=1, le=3600)
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)


class OutboxSettings(_Section):
    path: Path = Path("/var/lib/fernwart-agent/outbox.db")
    max_rows: int = Field(100_000, ge=1)
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    drop_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    linger_ms: float = Field(200.0, ge=0)
    max_batch: int = Field(100, ge=1, le=MAX_BATCH)
    # An outbox that could not be opened (full disk, I/O error) is tried again this often, on
    # the next batch; meanwhile polls go on and what is not stored is counted.
    retry_open_s: float = Field(30.0, ge=0)


class PollSettings(_Section):
    max_concurrency: int = Field(64, ge=1)
    jitter_fraction: float = Field(0.1, ge=0, le=0.5)
    default_interval_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)


class ShutdownSettings(_Section):
    # How long a stopping agent keeps publishing the outbox; must fit in TimeoutStopSec=.
    drain_s: float = Field(5.0, ge=0, le=8)


class ControllerTrust(_Section):
    """The ``[controller]`` table: whom this agent takes commands from (agent/commands.py).

    ``command_key`` is the controller's public key as ``fernwart controller key show`` prints it
    (``ed25519:BASE64``, or PEM), or ``command_key_file`` a file holding it; exactly one. Without
    the table the agent executes no command at all.
    """

    command_key: str | None = None
    command_key_file: Path | None = None
    # A command issued more than this ahead of the agent's clock is refused (not_yet_valid).
    max_clock_skew_s: float = Field(300.0, ge=0, le=3600)
    # Seen command ids (kept until their expiry, so a replay after a restart is refused) and
    # results not yet published. Default: commands.db beside the outbox.
    state_path: Path | None = None

    @field_validator("command_key")
    @classmethod
    def _readable_key(cls, text: str | None) -> str | None:
        if text is not None:
            parse_public_key(text)  # the ValueError names what is wrong, never the value
        return text

    @model_validator(mode="after")
    def _exactly_one_key(self) -> ControllerTrust:
        if (self.command_key is None) == (self.command_key_file is None):
            raise ValueError("give exactly one of command_key and command_key_file")
        return self

    def public_key(self) -> Ed25519PublicKey:
        """The controller's key; raises :class:`ValueError` naming the key (file) at fault."""
        if self.command_key is not None:
            return parse_public_key(self.command_key)
        assert self.command_key_file is not None
        try:
            text = self.command_key_file.read_text()
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or "not text"
            raise ValueError(f"{self.command_key_file}: cannot read: {why}") from None
        try:
            return parse_public_key(text)
        except ValueError as err:
            raise ValueError(f"{self.command_key_file}: {err}") from None


class PolledEntry(_Section):
    """What the agent polls: one driver instance, its kind, schedule and options."""

    id: DeviceId
    kind: str = Field(min_length=1)
    interval_s: float | None = Field(None, gt=0)  # default: poll.default_interval_s
    timeout_s: float | None = Field(None, gt=0)  # default: poll.timeout_s
    # Secret references already resolved; validated against the driver's options_model.
    options: dict[str, Any] = Field(default_factory=dict, repr=False)
    _driver_options: BaseModel | None = PrivateAttr(None)

    @property
    def driver_options(self) -> BaseModel | None:
        """``options`` validated by the driver's ``options_model`` (set by :func:`load_settings`)."""
        return self._driver_options


class DeviceEntry(PolledEntry):
    """``[[devices]]``: one device, read by a one-device driver (SNMP, host); its id is the
    device's id. It is polled as a source that reports this one device."""


class SourceEntry(PolledEntry):
    """``[[sources]]``: what one driver instance reads — a Microsoft tenant, a Webex
    organisation, an on-premises codec — and which reports any number of devices, each under
    its own device id. ``id`` names the source (logs, metrics), not a device."""


class AgentSettings(DaemonSettings):
    site_id: SiteId
    agent_id: AgentId = Field(default_factory=default_agent_id)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    mqtt: MqttSettings
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)
    controller: ControllerTrust | None = None
    devices: list[DeviceEntry] = Field(default_factory=list)
    sources: list[SourceEntry] = Field(default_factory=list)

    @field_validator("devices")
    @classmethod
    def _unique_device_ids(cls, devices: list[DeviceEntry]) -> list[DeviceEntry]:
        dupes = _duplicates(device.id for device in devices)
        if dupes:
            raise ValueError(f"duplicate device ids: {', '.join(dupes)}")
        return devices

    @field_validator("sources")
    @classmethod
    def _unique_source_ids(cls, sources: list[SourceEntry], info: ValidationInfo) -> list[SourceEntry]:
        dupes = _duplicates(source.id for source in sources)
        if dupes:
            raise ValueError(f"duplicate source ids: {', '.join(dupes)}")
        # A [[devices]] entry is polled as a source of the same id: the two id sets must not meet.
        devices: list[DeviceEntry] = info.data.get("devices") or []
        shared = sorted({d.id for d in devices} & {s.id for s in sources})
        if shared:
            raise ValueError(f"ids used by both a device and a source: {', '.join(shared)}")
        return sources

    def polled(self) -> list[PolledEntry]:
        """Everything the agent polls, each a source: the ``[[devices]]``, then the ``[[sources]]``."""
        return [*self.devices, *self.sources]

    def interval_for(self, device: PolledEntry) -> float:
        return device.interval_s if device.interval_s is not None else self.poll.default_interval_s

    def timeout_for(self, device: PolledEntry) -> float:
        return device.timeout_s if device.timeout_s is not None else self.poll.timeout_s

    @property
    def commands_path(self) -> Path:
        trust = self.controller
        if trust is not None and trust.state_path is not None:
            return trust.state_path
        return self.outbox.path.parent / "commands.db"

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"fernwart-agent-{self.site_id}-{self.agent_id}"[:128]


def _duplicates(ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: set[str] = set()
    for one in ids:
        (dupes if one in seen else seen).add(one)
    return sorted(dupes)


def _option_errors(
    section: str, raw_entries: Any, lookup: DriverLookup
) -> tuple[list[tuple[str, str]], dict[int, BaseModel]]:
    """Each entry's ``options`` of ``section`` (``devices``, ``sources``) validated against its
    driver's ``options_model``: the problems (key paths ``section[i].options.…``) and the models."""
    errors: list[tuple[str, str]] = []
    validated: dict[int, BaseModel] = {}
    if not isinstance(raw_entries, list):
        return errors, validated
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            continue  # reported by the model validation
        where = f"{section}[{index}]"
        try:
            factory = lookup(raw["kind"])
        except UnknownDriverError as err:
            errors.append((f"{where}.kind", str(err)))
            continue
        except ImportError as err:
            errors.append((f"{where}.kind", f"driver {raw['kind']!r} could not be loaded: {err}"))
            continue
        if section == "devices" and is_source(factory) and not reports_one_device(factory):
            why = f"{raw['kind']!r} reads a whole tenant or organisation: move this entry to [[sources]]"
            errors.append((f"{where}.kind", why))
        options = raw.get("options", {})
        if not isinstance(options, dict):
            continue  # reported by the model validation
        try:
            validated[index] = factory.options_model.model_validate(options)
        except ValidationError as err:
            errors.extend(validation_lines(err, f"{where}.options"))
    return errors, validated


def _runtime_problems(settings: AgentSettings) -> list[tuple[str, str]]:
    """What validates as a value but would fail (or lose everything) at run time."""
    problems: list[tuple[str, str]] = []
    tls = settings.mqtt.tls
    if tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            path: Path | None = getattr(tls, key)
            if path is not None and not path.is_file():
                problems.append((f"mqtt.tls.{key}", f"{path}: no such file"))
    if settings.controller is not None and settings.controller.command_key_file is not None:
        try:
            settings.controller.public_key()
        except ValueError as err:
            problems.append(("controller.command_key_file", str(err)))
    if settings.outbox.max_bytes < DEFAULT_MAX_PAYLOAD:
        why = (
            f"smaller than one batch may be ({DEFAULT_MAX_PAYLOAD} bytes, the largest message the"
            " wire accepts): such batches would all be dropped"
        )
        problems.append(("outbox.max_bytes", why))
    return problems


def _follows_from(path: str, reported: set[str]) -> bool:
    """Whether the problem at ``path`` is only the echo of one already reported: the same key, or an
    entry's whole-options check (``sources[1].options``: "needs client_id, client_secret and
    refresh_token together (missing client_secret)") when one of its secrets could not be read —
    the option *is* set, its variable or credential is what is missing, and that line says so."""
    if path in reported:
        return True
    return path.endswith(".options") and any(p.startswith(path + ".") for p in reported)


def parse_settings(raw: dict[str, Any], *, lookup: DriverLookup = load_driver) -> AgentSettings:
    """Validate an already-parsed config document (plus the environment); raises
    :class:`ConfigError` with every problem."""
    settings, resolved, errors = settings_or_problems(AgentSettings, raw)
    reported = {path for path, _problem in errors}
    validated: dict[str, dict[int, BaseModel]] = {}
    for section in ("devices", "sources"):
        option_errors, validated[section] = _option_errors(section, resolved.get(section), lookup)
        errors.extend(line for line in option_errors if not _follows_from(line[0], reported))
    if settings is not None:
        errors.extend(_runtime_problems(settings))
    if errors or settings is None:
        raise ConfigError([f"{path}: {message}" for path, message in errors])
    entries: dict[str, list[DeviceEntry] | list[SourceEntry]] = {
        "devices": settings.devices,
        "sources": settings.sources,
    }
    for section, listed in entries.items():
        for index, entry in enumerate(listed):
            entry._driver_options = validated[section].get(index)  # noqa: SLF001 - set once, before anyone reads it
    return settings


def load_settings(path: str | Path, *, lookup: DriverLookup = load_driver) -> AgentSettings:
    """Read and validate the agent config at ``path``.

    Raises :class:`~runtime.config.ConfigError` whose ``problems`` hold one line per problem.
    """
    return parse_settings(read_toml(Path(path)), lookup=lookup)
