"""Broker configuration for enrolled agents: Mosquitto (password file, ACL, mosquitto.conf) and
EMQX (ACL in ``acl.conf`` syntax, users for the built-in database). Pure: renders text, no I/O.

Rules, the same for both brokers (docs/broker.md):

* an agent's broker username is its ``agent_id``; it may publish ``{prefix}/{site}/obs``,
  ``…/status``, ``…/heartbeat`` and ``…/cmd_result`` and subscribe to ``{prefix}/{site}/cmd``
  and ``…/ack`` of its own (one enrolled agent per site: the site's topics are its agent's
  topics), nothing else;
* the controller may read ``{prefix}/#`` and publish ``{prefix}/+/cmd`` and ``{prefix}/+/ack``;
* everyone else, anonymous clients included, nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collector.wire.topics import TopicKind
from controller.broker.passwd import emqx_fields

# An agent publishes at most one batch per outbox linger (200 ms by default) but in practice a
# few per poll interval; 120 batches an hour is a busy agent polling every 30 s.
BATCHES_PER_AGENT_HOUR = 120
OUTAGE_HOURS = 24  # a controller (or its database) down over a weekend night is still lossless
BATCH_BYTES = 16 * 1024  # a batch of ~20 observations, JSON
_MIN_QUEUED = 100_000
# Mosquitto drops a persistent session (and its queue) after this long without the client; the
# controller's own MQTT 5 Session Expiry Interval is mqtt.session_expiry_s (7 days by default).
SESSION_EXPIRATION = "14d"
AUTOSAVE_INTERVAL_S = 60

_PREFIX = re.compile(r"^[^#+\s]+[^#+\s/]$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # no ':' (the password file's separator)


class BrokerConfigError(ValueError):
    """The broker configuration cannot be written; the message names the setting at fault."""


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """One broker identity: an agent (``site_id`` set) or the controller (``site_id`` None)."""

    username: str
    password_hash: str  # $7$ format, see controller.broker.passwd
    site_id: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerFile:
    name: str
    text: str
    secret: bool  # holds password hashes: mode 0600


def _check(prefix: str, controller: BrokerUser, agents: list[BrokerUser]) -> None:
    if not _PREFIX.match(prefix):
        raise BrokerConfigError(f"mqtt.prefix: {prefix!r} is not a topic root (no '#', '+', spaces, end '/')")
    if not _USERNAME.match(controller.username):
        raise BrokerConfigError(
            "mqtt.username: the controller's broker username must match " + _USERNAME.pattern
        )
    seen = {controller.username}
    for agent in agents:
        if not _USERNAME.match(agent.username):
            raise BrokerConfigError(
                f"site {agent.site_id}: agent id {agent.username!r} is not a broker username"
            )
        if agent.username in seen:
            raise BrokerConfigError(
                f"site {agent.site_id}: broker username {agent.username!r} is taken "
                "(by the controller's mqtt.username or another site's agent)"
            )
        seen.add(agent.username)


def agent_topics(prefix: str, site_id: str) -> tuple[list[str], list[str]]:
    """(topics the agent may publish, topics it may read)."""
    kinds = (TopicKind.OBS, TopicKind.STATUS, TopicKind.HEARTBEAT, TopicKind.CMD_RESULT)
    write = [f"{prefix}/{site_id}/{kind.value}" for kind in kinds]
    return write, [f"{prefix}/{site_id}/{kind.value}" for kind in (TopicKind.CMD, TopicKind.ACK)]


def queue_limits(agents: int) -> tuple[int, int]:
    """(max_queued_messages, max_queued_bytes) for the controller's session to outlast an outage."""
    messages = max(_MIN_QUEUED, agents * BATCHES_PER_AGENT_HOUR * OUTAGE_HOURS)
    return messages, messages * BATCH_BYTES


def _passwd(users: list[BrokerUser]) -> str:
    return "".join(f"{user.username}:{user.password_hash}\n" for user in users)


def _mosquitto_acl(prefix: str, controller: BrokerUser, agents: list[BrokerUser]) -> str:
    lines = [
        "# Written by `fernwart controller broker-config`; regenerate after every enrollment change.",
        "# Whatever is not granted here is denied, to every user and to anonymous clients.",
        "",
        "# The controller reads every agent message and sends commands.",
        f"user {controller.username}",
        f"topic read {prefix}/#",
        f"topic write {prefix}/+/{TopicKind.CMD.value}",
        f"topic write {prefix}/+/{TopicKind.ACK.value}",
    ]
    for agent in agents:
        assert agent.site_id is not None
        write, read = agent_topics(prefix, agent.site_id)
        lines += ["", f"# site {agent.site_id}", f"user {agent.username}"]
        lines += [f"topic write {name}" for name in write]
        lines += [f"topic read {name}" for name in read]
    return "\n".join(lines) + "\n"


def _mosquitto_conf(directory: str, agents: int) -> str:
    messages, size = queue_limits(agents)
    return f"""\
# Written by `fernwart controller broker-config --format mosquitto` (Mosquitto 2.0).
# Agents and the controller authenticate with the users in {directory}/passwd; the ACL in
# {directory}/acl lets each agent publish only under its own site and read only its own commands.
per_listener_settings false
allow_anonymous false
password_file {directory}/passwd
acl_file {directory}/acl

# Persistence: the controller's session (clean_start false) and the QoS 1 messages queued for it
# survive a broker restart. Saved every 60 s and at shutdown: a broker crash loses at most the
# last minute of queued messages, which agents already deleted from their outboxes.
persistence true
persistence_location /var/lib/mosquitto/
autosave_interval {AUTOSAVE_INTERVAL_S}

# Queue limits, sized for an outage of the controller (or its database) of {OUTAGE_HOURS} h: while
# it is away the broker queues every agent message for the controller's session, and a message
# beyond these limits is dropped for good (agents delete a batch once the broker acknowledged it).
#   {agents} agents x {BATCHES_PER_AGENT_HOUR} batches/h x {OUTAGE_HOURS} h, at least {_MIN_QUEUED}:
#   {messages} messages, x {BATCH_BYTES // 1024} KiB per batch: {size} bytes.
# Mosquitto keeps the queue in memory: size the host for it.
max_queued_messages {messages}
max_queued_bytes {size}
# QoS 1 messages in flight per client (0: unlimited; the controller bounds it with Receive Maximum).
max_inflight_messages 0
# Sessions of clients away longer than this are dropped: longer than any outage we plan for.
persistent_client_expiration {SESSION_EXPIRATION}

# TLS is the default for agents: they send their password on this listener only. Give the
# broker's certificate and key, and the CA that signed them (agents check it, [mqtt.tls] ca_file).
listener 8883
protocol mqtt
cafile /etc/mosquitto/certs/ca.crt
certfile /etc/mosquitto/certs/broker.crt
keyfile /etc/mosquitto/certs/broker.key
tls_version tlsv1.2
# Agents with a client certificate instead of a password (its CN is the agent id):
#require_certificate true
#use_identity_as_username true

# Plain MQTT for a controller on the same host only (never for agents: passwords in clear):
#listener 1883 127.0.0.1
"""


def render_mosquitto(
    prefix: str, controller: BrokerUser, agents: list[BrokerUser], directory: str
) -> list[BrokerFile]:
    """``passwd``, ``acl`` and ``mosquitto.conf`` (naming the first two under ``directory``).
    Raises :class:`BrokerConfigError`."""
    _check(prefix, controller, agents)
    return [
        BrokerFile("passwd", _passwd([controller, *agents]), secret=True),
        BrokerFile("acl", _mosquitto_acl(prefix, controller, agents), secret=False),
        BrokerFile("mosquitto.conf", _mosquitto_conf(directory, len(agents)), secret=False),
    ]


def _emqx_acl(prefix: str, controller: BrokerUser, agents: list[BrokerUser]) -> str:
    lines = [
        "%% Written by `fernwart controller broker-config --format emqx` (EMQX 5 file authorizer).",
        "%% Rules are tried in order; the last one denies everything else. Set",
        '%% authorization.no_match = deny and authorization.sources = [{type = file, path = "…/acl.conf"}].',
        "",
        f'{{allow, {{user, "{controller.username}"}}, subscribe, ["{prefix}/#"]}}.',
        (
            f'{{allow, {{user, "{controller.username}"}}, publish, '
            f'["{prefix}/+/{TopicKind.CMD.value}", "{prefix}/+/{TopicKind.ACK.value}"]}}.'
        ),
    ]
    for agent in agents:
        assert agent.site_id is not None
        write, read = agent_topics(prefix, agent.site_id)
        user = f'{{user, "{agent.username}"}}'
        lines.append(f"%% site {agent.site_id}")
        lines.append(f"{{allow, {user}, publish, [{', '.join(repr_topic(t) for t in write)}]}}.")
        lines.append(f"{{allow, {user}, subscribe, [{', '.join(repr_topic(t) for t in read)}]}}.")
    lines.append("{deny, all}.")
    return "\n".join(lines) + "\n"


def repr_topic(name: str) -> str:
    # "eq" matches the topic literally: a '+' in an agent's name could never widen its grant.
    return f'{{eq, "{name}"}}'


def _emqx_users(users: list[BrokerUser]) -> str:
    """Users for EMQX's built-in database, importable with ``emqx ctl`` / the dashboard (CSV:
    user_id, password_hash, salt, is_superuser). EMQX's PBKDF2 settings must match: see
    docs/broker.md (algorithm pbkdf2, mac_fun sha512, iterations from the hash, dk_length 64)."""
    rows = ["user_id,password_hash,salt,is_superuser"]
    for user in users:
        try:
            key, salt, _iterations = emqx_fields(user.password_hash)
        except ValueError as err:
            raise BrokerConfigError(f"broker user {user.username!r}: {err}; rotate its password") from None
        rows.append(f"{user.username},{key},{salt},false")
    return "\n".join(rows) + "\n"


def render_emqx(prefix: str, controller: BrokerUser, agents: list[BrokerUser]) -> list[BrokerFile]:
    """``acl.conf`` and ``users.csv`` for EMQX 5. Raises :class:`BrokerConfigError`."""
    _check(prefix, controller, agents)
    return [
        BrokerFile("acl.conf", _emqx_acl(prefix, controller, agents), secret=False),
        BrokerFile("users.csv", _emqx_users([controller, *agents]), secret=True),
    ]
