"""Controller configuration: one TOML file, strictly validated, environment beats the file.

The settings style both daemons share (:mod:`runtime.config`): secret references (``{ env = … }``,
``{ credential = … }``), ``FERNWART_…`` overrides, the ``[mqtt.tls]`` table. ``load_settings(path)``
raises :class:`~runtime.config.ConfigError` carrying every problem at once, one line each with its
key path; ``__main__`` prints them and exits 78 (EX_CONFIG).
"""

from __future__ import annotations

import re
import socket
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from collector.wire import DEFAULT_MAX_PAYLOAD, IDENT_PATTERN
from collector.wire.topics import DEFAULT_PREFIX
from runtime.config import ConfigError, DaemonSettings, TlsSettings, read_toml, settings_or_problems

SiteKey = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,39}")  # RFC 3986 3.1; never reaches the password
SUPPORTED_DATABASES = ("sqlite+aiosqlite:///PATH", "postgresql+asyncpg://USER:PASSWORD@HOST[:PORT]/DB")


class DatabaseSettings(_Section):
    # sqlite+aiosqlite:///path (WAL) or postgresql+asyncpg://user:pw@host/db
    url: SecretStr = SecretStr("sqlite+aiosqlite:///./var/fernwart.db")
    pool_size: int = Field(5, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _supported(cls, url: SecretStr) -> SecretStr:
        """Only the dialects and drivers the store runs on; the message never holds the URL
        (it may hold a password), only its scheme."""
        scheme, separator, _rest = url.get_secret_value().partition("://")
        if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            named = f"scheme {scheme!r}" if separator and _SCHEME.fullmatch(scheme) else "no URL scheme"
            msg = f"unsupported database ({named}); supported: {' or '.join(SUPPORTED_DATABASES)}"
            raise ValueError(msg)
        return url


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None  # the [mqtt.tls] table, as for the agent
    # Stable across restarts: the broker keeps the persistent session (and queues QoS 1
    # messages) under this id while the controller is down.
    client_id: str = Field(default_factory=lambda: f"fernwart-controller-{socket.gethostname()}")
    prefix: str = DEFAULT_PREFIX
    # MQTT 5 shared subscription group, so several controllers split the load; "" subscribes
    # without $share (one controller, or MQTT 3.1.1 brokers). Off by default: with Mosquitto 2.0.11
    # the controller's resumed $share subscription stayed silent after a broker restart (see
    # tests/controller/test_ingest.py::test_controller_reconnects_after_a_broker_restart).
    share_group: str = ""
    protocol: Literal["5", "3.1.1"] = "5"
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0)
    # Unacknowledged QoS 1 messages the broker may send ahead (MQTT 5 Receive Maximum).
    receive_maximum: int = Field(2000, ge=1, le=65535)
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_payload: int = Field(DEFAULT_MAX_PAYLOAD, ge=1024)
    reconnect_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _old_tls_flags(cls, data: Any) -> Any:
        """``tls = true`` / ``ca_file = …`` (before the ``[mqtt.tls]`` table): still read, with a warning."""
        if not isinstance(data, dict) or not (isinstance(data.get("tls"), bool) or "ca_file" in data):
            return data
        data = dict(data)
        ca_file = data.pop("ca_file", None)
        enabled = data.get("tls")
        data["tls"] = {"ca_file": ca_file} if enabled is True else None  # ca_file alone never enabled TLS
        warnings.warn(
            "[mqtt] tls = true / ca_file = … are deprecated: use the [mqtt.tls] table (ca_file = …)",
            FutureWarning,
            stacklevel=2,
        )
        return data


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # A request head (line and headers) must arrive within this long of the connection opening or
    # of its first byte; its body within body_timeout_s of the head. Slower clients are closed.
    header_timeout_s: float = Field(10.0, gt=0, le=3600)
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    # An idle keep-alive connection is closed after this long.
    keepalive_s: float = Field(15.0, gt=0, le=3600)
    # Open connections in total (lowered at start to what the file descriptor limit leaves after a
    # reserve for the database and MQTT: 1024, or a quarter of a smaller limit); when full, the
    # connection idle longest is closed for a new one.
    max_connections: int = Field(4096, ge=1, le=1_000_000)
    # Open connections from one IP address; more are closed at once.
    max_connections_per_client: int = Field(64, ge=1, le=1_000_000)
    # Host names the API answers to, besides the bind address, localhost, 127.0.0.1 and ::1
    # (a request naming any other host, as a DNS-rebinding page's do, gets 421).
    allowed_hosts: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = Field(
        default_factory=list
    )
    # /metrics without a token, for a Prometheus scraper that cannot send one. Off by default:
    # the metrics name sites and agents.
    metrics_public: bool = False
    # One line per request: client address, token name, method, path, status, duration.
    access_log: bool = True


class IngestSettings(_Section):
    # A flush writes up to this many messages in one transaction, or whatever arrived within
    # flush_interval_ms after the first message of the flush.
    max_batch_messages: int = Field(500, ge=1, le=10_000)
    flush_interval_ms: float = Field(20.0, ge=0)
    dead_letter_max_bytes: int = Field(64 * 1024, ge=0)
    # Dead letters kept; the oldest beyond it are deleted (fernwart_ingest_dead_letters_pruned_total).
    dead_letter_max_rows: int = Field(100_000, ge=1)
    # Processes that validate and shape messages beside the event loop; unset: one per spare
    # core, at most four; 0: decode on the event loop (a single-core host).
    decode_workers: int | None = Field(None, ge=0, le=64)
    # A batch whose sent_at or any observed_at lies further than this beyond the time it was
    # received is refused (dead letter future_timestamp): a clock far ahead would pin a device's
    # state, since a device row only moves forward in time.
    max_future_skew_s: float = Field(300.0, gt=0)


class CatalogSettings(_Section):
    # Advisories stored; a new one beyond it is refused (507), replacing a stored one still works.
    max_advisories: int = Field(20_000, ge=1)


class NoticeSettings(_Section):
    """Customers' update notices (controller/campaigns/notices.py): SMTP for e-mail (no
    ``smtp_host``: no e-mail) and the HMAC secret that signs webhooks (secret references allowed)."""

    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    sender: str = Field("fernwart@localhost", pattern=r"^[^@\s]+@[^@\s]+$")
    webhook_secret: SecretStr | None = None
    timeout_s: float = Field(30.0, gt=0, le=300)


class RetentionSettings(_Section):
    """How long rows are kept; a background pass prunes older ones every ``interval_s``, in
    chunks of ``chunk_rows`` (one short transaction each). Batches follow the observations."""

    observations_days: float = Field(30.0, gt=0)
    # Longer: which firmware a device ran when an advisory came out. A device's newest row stays.
    firmware_history_days: float = Field(730.0, gt=0)
    dead_letters_days: float = Field(30.0, gt=0)
    interval_s: float = Field(3600.0, gt=0)
    chunk_rows: int = Field(5000, ge=1, le=1_000_000)


class CommandSettings(_Section):
    """Signed commands to agents (controller/commands): the Ed25519 private key, a PEM file
    written by ``fernwart controller key create`` (mode 0600; never logged)."""

    key_file: Path = Path("./var/command-key.pem")
    publish_timeout_s: float = Field(10.0, gt=0, le=300)
    # Finished command ids remembered, so a result delivered twice is handled once.
    remember_results: int = Field(100_000, ge=100)


class CampaignSettings(_Section):
    """The campaign runner (controller/campaigns): how often it steps, and how long one update
    may take at most — a job starts only if it can finish that long before its window ends."""

    tick_s: float = Field(30.0, gt=0, le=3600)
    expected_duration_s: float = Field(1800.0, gt=0, le=86400)


class SiteSettings(_Section):
    tenant: str = "default"


class ControllerSettings(DaemonSettings):
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    catalog: CatalogSettings = CatalogSettings()
    notices: NoticeSettings = NoticeSettings()
    retention: RetentionSettings = RetentionSettings()
    commands: CommandSettings = CommandSettings()
    campaigns: CampaignSettings = CampaignSettings()
    # A device is stale after this many missed poll intervals.
    stale_after_intervals: float = Field(3.0, gt=0)
    default_interval_s: float = Field(60.0, gt=0)
    stale_check_s: float = Field(10.0, gt=0)
    # An agent is offline once this many of its heartbeat intervals passed without one (checked
    # every stale_check_s): at 30 s heartbeats, offline 60 to 70 s after the last one.
    agent_missed_heartbeats: float = Field(2.0, ge=1.0, le=100.0)
    watchdog_s: float = Field(10.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    default_tenant: str = "default"
    sites: dict[SiteKey, SiteSettings] = Field(default_factory=dict)

    def tenant_of(self, site_id: str) -> str:
        site = self.sites.get(site_id)
        return site.tenant if site is not None else self.default_tenant


SQLITE_HEADER = b"SQLite format 3\0"  # the first 16 bytes of every SQLite 3 file (fileformat2 1.3)


def _sqlite_file_problems(database: str | None) -> list[str]:
    if not database or database == ":memory:":
        return ["database.url: names no SQLite file (sqlite+aiosqlite:///PATH)"]
    path = Path(database)
    if path.is_dir():
        return [f"database.url: {path}: a directory, not a SQLite file"]
    if not path.is_file():
        return []  # missing: refused at start (and by --check), created only by `controller init`
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as err:
        return [f"database.url: {path}: cannot read: {err.strerror}"]
    if header and header != SQLITE_HEADER:  # an empty file is a new SQLite database
        return [f"database.url: {path}: not a SQLite database (corrupt, or another kind of file)"]
    return []


def _runtime_problems(settings: ControllerSettings) -> list[str]:
    """What validates as a value but would fail at run time; names files, never the URL."""
    problems = []
    try:
        url = make_url(settings.database.url.get_secret_value())
    except ArgumentError:
        return ["database.url: cannot be parsed as a database URL"]
    if url.get_backend_name() == "sqlite":
        problems.extend(_sqlite_file_problems(url.database))
    tls = settings.mqtt.tls
    if tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            path: Path | None = getattr(tls, key)
            if path is not None and not path.is_file():
                problems.append(f"mqtt.tls.{key}: {path}: no such file")
    return problems


def settings_from_dict(data: dict[str, Any]) -> ControllerSettings:
    """Validate a parsed document (secret references resolved, environment applied)."""
    settings, _resolved, problems = settings_or_problems(ControllerSettings, data)
    if settings is None:
        raise ConfigError([f"{path}: {problem}" for path, problem in problems])
    found = _runtime_problems(settings)
    if found:
        raise ConfigError(found)
    return settings


def load_settings(path: Path | None) -> ControllerSettings:
    """Read and validate ``path`` (TOML); ``None`` means defaults plus environment.

    Raises :class:`ConfigError` with every problem found.
    """
    return settings_from_dict(read_toml(path) if path is not None else {})
