"""Signed commands: the envelope, its canonical bytes, Ed25519 signing and the ordered checks.

The controller turns an :class:`~collector.actions.ActionRequest` into a
:class:`CommandEnvelope`, serialises it to canonical bytes (sorted-key compact JSON, UTC times)
and signs *those bytes* with its Ed25519 key (RFC 8032). The wire message
(:class:`~collector.wire.messages.Command`) carries the bytes themselves, base64, beside the
signature, so the agent verifies exactly what was signed and parses it only afterwards: no
re-serialisation can make a valid signature fail or a forged field pass.

:func:`verify_command` runs the stateless checks in a fixed order and raises only
:class:`CommandRefused`, whose ``code`` is one of :data:`REFUSAL_CODES` (also the metric label).
The one stateful check, ``replayed``, is the agent's (it needs the seen command ids); it raises
the same error. Nothing here logs, and no message ever contains a key or a signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from collector.actions import ActionKind, ActionRequest
from collector.model import DeviceId, ShortText, SiteId
from collector.validation import clean_message
from collector.wire.messages import SCHEMA_VERSION, Command
from collector.wire.topics import Topic, TopicError, TopicKind, parse_topic

# Stable refusal codes (metric label values), in the order the checks run.
MALFORMED: Final = "malformed"
UNSIGNED: Final = "unsigned"
BAD_SIGNATURE: Final = "bad_signature"
WRONG_SITE: Final = "wrong_site"
NOT_YET_VALID: Final = "not_yet_valid"
EXPIRED: Final = "expired"
REPLAYED: Final = "replayed"
REFUSAL_CODES: Final = (MALFORMED, UNSIGNED, BAD_SIGNATURE, WRONG_SITE, NOT_YET_VALID, EXPIRED, REPLAYED)
# Codes raised only after the signature was verified: the command id they report is authentic.
AUTHENTICATED_CODES: Final = frozenset({WRONG_SITE, NOT_YET_VALID, EXPIRED, REPLAYED})

MAX_COMMAND_BYTES: Final = 16 * 1024
DEFAULT_MAX_SKEW: Final = timedelta(minutes=5)  # clocks of controller and agent may differ by this
MAX_LIFETIME: Final = timedelta(days=7)  # bounds how long an agent must remember a command id
PUBLIC_KEY_PREFIX: Final = "ed25519:"

JobId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class CommandRefused(ValueError):
    """A command the agent will not execute. ``code`` is one of :data:`REFUSAL_CODES`;
    ``command_id``/``device_id`` are what the command claims (authentic only for the codes in
    :data:`AUTHENTICATED_CODES`)."""

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        command_id: uuid.UUID | None = None,
        device_id: str | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.command_id = command_id
        self.device_id = device_id
        self.job_id = job_id


class CommandEnvelope(BaseModel):
    """What the controller signs. Times are aware and kept in UTC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: uuid.UUID  # random 128 bits (UUID4): the nonce
    site_id: SiteId
    device_id: DeviceId
    action: ActionKind
    target_version: ShortText | None = None
    package_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    deadline: datetime  # the driver stops following the vendor's operation then
    issued_at: datetime
    expires_at: datetime  # not executed at or after this instant
    job_id: JobId

    @field_validator("deadline", "issued_at", "expires_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return value.astimezone(UTC)

    def request(self) -> ActionRequest:
        return ActionRequest(
            device_id=self.device_id,
            action=self.action,
            target_version=self.target_version,
            package_url=self.package_url,
            deadline=self.deadline,
        )


def new_command_id() -> uuid.UUID:
    """128 random bits (the nonce): not a UUID4, whose version bits would take six of them."""
    return uuid.UUID(bytes=secrets.token_bytes(16))


def envelope_for(
    site_id: str,
    request: ActionRequest,
    *,
    issued_at: datetime,
    expires_at: datetime,
    job_id: str,
    command_id: uuid.UUID | None = None,
) -> CommandEnvelope:
    """The envelope for ``request``; raises :class:`ValueError` for a lifetime the agent would
    refuse (not after ``issued_at``, or longer than :data:`MAX_LIFETIME`)."""
    if not issued_at < expires_at <= issued_at + MAX_LIFETIME:
        raise ValueError(f"expires_at must lie after issued_at and within {MAX_LIFETIME} of it")
    return CommandEnvelope(
        command_id=command_id or new_command_id(),
        site_id=site_id,
        device_id=request.device_id,
        action=request.action,
        target_version=request.target_version,
        package_url=request.package_url,
        deadline=request.deadline,
        issued_at=issued_at,
        expires_at=expires_at,
        job_id=job_id,
    )


def canonical_bytes(envelope: CommandEnvelope) -> bytes:
    """Sorted keys, no whitespace, UTF-8, times as ISO 8601 UTC: equal envelopes, equal bytes."""
    doc = envelope.model_dump(mode="json")
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(envelope: CommandEnvelope, key: Ed25519PrivateKey) -> Command:
    body = canonical_bytes(envelope)
    return Command(
        site_id=envelope.site_id,
        envelope=base64.b64encode(body).decode(),
        signature=base64.b64encode(key.sign(body)).decode(),
    )


def public_key_text(key: Ed25519PublicKey) -> str:
    """``ed25519:`` and the 32 raw bytes, base64: what ``fernwart controller key show`` prints."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Read ``ed25519:BASE64`` or a PEM public key; raises :class:`ValueError` without echoing."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError):
            raise ValueError("not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 key")
        return key
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"expected {PUBLIC_KEY_PREFIX}BASE64 (from `fernwart controller key show`) or PEM")
    try:
        raw = base64.b64decode(text[len(PUBLIC_KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key after 'ed25519:' is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _claims(body: bytes) -> tuple[uuid.UUID | None, str | None, str | None]:
    """The ids an unverified envelope claims, for the refusal report; never trusted."""
    try:
        doc = json.loads(body)
        command_id = uuid.UUID(str(doc["command_id"]))
    except (ValueError, TypeError, KeyError, RecursionError):
        return None, None, None
    device = doc.get("device_id")
    job = doc.get("job_id")
    return command_id, device if isinstance(device, str) else None, job if isinstance(job, str) else None


def _shape(payload: bytes | bytearray | str) -> Command:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise CommandRefused(MALFORMED, f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise CommandRefused(MALFORMED, f"(root): expected an object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA_VERSION:
        raise CommandRefused(MALFORMED, f"schema: expected {SCHEMA_VERSION}, got {doc.get('schema')!r}")
    try:
        return Command.model_validate(doc)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise CommandRefused(MALFORMED, f"{loc}: {clean_message(first['msg'])}") from None


def _received(topic_name: str, payload: bytes | bytearray | str, prefix: str) -> tuple[Topic, Command, bytes]:
    """The first ``malformed`` checks: size, topic, JSON and shape; returns the envelope bytes."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRefused(MALFORMED, f"payload of {len(payload)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        topic = parse_topic(topic_name, prefix)
    except TopicError as err:
        raise CommandRefused(MALFORMED, str(err)) from None
    if topic.kind is not TopicKind.CMD:
        raise CommandRefused(MALFORMED, f"topic {topic_name!r} is not a command topic")
    command = _shape(payload)
    try:
        body = base64.b64decode(command.envelope, validate=True)
    except (binascii.Error, ValueError):
        raise CommandRefused(MALFORMED, "envelope: not base64") from None
    return topic, command, body


def verify_command(
    topic_name: str,
    payload: bytes | bytearray | str,
    *,
    key: Ed25519PublicKey,
    site_id: str,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    prefix: str = "fernwart/v1",
) -> CommandEnvelope:
    """Check a command received on ``topic_name``; return its envelope if it may be executed.

    Order: ``malformed`` (size, topic, JSON, shape), ``unsigned``, ``bad_signature`` (another
    key, or any changed byte), ``malformed`` (the signed envelope, or a lifetime over
    :data:`MAX_LIFETIME`), ``wrong_site`` (envelope or topic not this agent's site),
    ``not_yet_valid`` (issued more than ``max_skew`` ahead of ``now``), ``expired`` (``now`` ≥
    ``expires_at``). Replay is the caller's check.
    """
    topic, command, body = _received(topic_name, payload, prefix)
    claimed, device, job = _claims(body)
    if not command.signature:
        raise CommandRefused(
            UNSIGNED, "the command carries no signature", command_id=claimed, device_id=device, job_id=job
        )
    try:
        key.verify(base64.b64decode(command.signature, validate=True), body)
    except (binascii.Error, ValueError, InvalidSignature):
        why = "the signature does not verify with the controller's key"
        raise CommandRefused(BAD_SIGNATURE, why, command_id=claimed, device_id=device, job_id=job) from None
    try:
        envelope = CommandEnvelope.model_validate_json(body)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        why = f"envelope.{loc}: {clean_message(first['msg'])}"
        raise CommandRefused(MALFORMED, why, command_id=claimed, device_id=device, job_id=job) from None
    _check_validity(envelope, {topic.site_id, command.site_id}, site_id, now, max_skew)
    return envelope


def _check_validity(
    envelope: CommandEnvelope, routed: set[str], site_id: str, now: datetime, max_skew: timedelta
) -> None:
    """The checks of a verified envelope: lifetime, site, not before, not after."""

    def refused(code: str, reason: str) -> CommandRefused:
        return CommandRefused(
            code, reason, command_id=envelope.command_id, device_id=envelope.device_id, job_id=envelope.job_id
        )

    lifetime = envelope.expires_at - envelope.issued_at
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise refused(MALFORMED, f"envelope: lifetime {lifetime} outside (0, {MAX_LIFETIME}]")
    if envelope.site_id != site_id or routed != {site_id}:
        raise refused(WRONG_SITE, f"addressed to site {envelope.site_id!r}, this agent serves {site_id!r}")
    if envelope.issued_at > now + max_skew:
        ahead = f"issued at {envelope.issued_at.isoformat()}, more than {max_skew} ahead of this clock"
        raise refused(NOT_YET_VALID, ahead)
    if now >= envelope.expires_at:
        raise refused(EXPIRED, f"expired at {envelope.expires_at.isoformat()}")
