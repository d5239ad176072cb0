"""The signed command envelope and its ordered checks (collector/wire/commands.py)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from collector.wire import ActionKind, ActionRequest, Command, encode
from collector.wire import commands as c

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
SITE = "site-a"
TOPIC = f"fernwart/v1/{SITE}/cmd"


def _envelope(
    site: str = SITE, *, issued: datetime = NOW, lifetime: timedelta = timedelta(hours=1)
) -> c.CommandEnvelope:
    request = ActionRequest(
        device_id="room-1",
        action=ActionKind.UPDATE,
        target_version="RoomOS 11.14.2.3",
        deadline=issued + timedelta(hours=2),
    )
    return c.envelope_for(site, request, issued_at=issued, expires_at=issued + lifetime, job_id="job-7")


def _verify(payload: bytes, topic: str = TOPIC, now: datetime = NOW) -> c.CommandEnvelope:
    return c.verify_command(topic, payload, key=KEY.public_key(), site_id=SITE, now=now)


def _refusal(payload: bytes, topic: str = TOPIC, now: datetime = NOW) -> c.CommandRefused:
    with pytest.raises(c.CommandRefused) as caught:
        _verify(payload, topic, now)
    assert caught.value.code in c.REFUSAL_CODES
    return caught.value


def _with(command: Command, **changes: str) -> bytes:
    return encode(command.model_copy(update=changes))


def test_a_signed_command_verifies_to_the_envelope_that_was_signed() -> None:
    envelope = _envelope()
    assert _verify(encode(c.sign(envelope, KEY))) == envelope
    assert envelope.request().target_version == "RoomOS 11.14.2.3"


def test_canonical_bytes_are_sorted_compact_utc_json() -> None:
    envelope = _envelope()
    body = c.canonical_bytes(envelope)
    doc = json.loads(body)
    assert list(doc) == sorted(doc)
    assert b" " not in body.replace(b"RoomOS 11", b"")  # only the version has a space
    assert doc["issued_at"] == "2026-12-05T08:00:00Z"
    # The same instant in another offset gives the same bytes.
    plus_one = NOW.astimezone(timezone(timedelta(hours=1)))
    shifted = c.CommandEnvelope.model_validate({**envelope.model_dump(), "issued_at": plus_one})
    assert c.canonical_bytes(shifted) == body


def test_command_ids_are_random_and_128_bits() -> None:
    ids = {c.new_command_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert any(i.int >> 124 for i in ids)  # the version nibble is random too, not fixed at 4


def test_unsigned_is_refused_with_the_claimed_id() -> None:
    envelope = _envelope()
    refusal = _refusal(_with(c.sign(envelope, KEY), signature=""))
    assert refusal.code == c.UNSIGNED
    assert refusal.command_id == envelope.command_id


def test_signed_by_another_key_is_a_bad_signature() -> None:
    refusal = _refusal(encode(c.sign(_envelope(), OTHER_KEY)))
    assert refusal.code == c.BAD_SIGNATURE
    assert refusal.code not in c.AUTHENTICATED_CODES
    assert "signature" in refusal.reason


def test_a_signature_that_is_not_base64_is_a_bad_signature() -> None:
    assert _refusal(_with(c.sign(_envelope(), KEY), signature="!!not base64!!")).code == c.BAD_SIGNATURE


def test_expired_at_and_after_expiry() -> None:
    payload = encode(c.sign(_envelope(), KEY))
    assert _refusal(payload, now=NOW + timedelta(hours=1)).code == c.EXPIRED
    assert _refusal(payload, now=NOW + timedelta(days=3)).code == c.EXPIRED
    assert _verify(payload, now=NOW + timedelta(minutes=59)).job_id == "job-7"


def test_issued_beyond_the_clock_skew_is_not_yet_valid() -> None:
    ahead = encode(c.sign(_envelope(issued=NOW + c.DEFAULT_MAX_SKEW + timedelta(seconds=1)), KEY))
    refusal = _refusal(ahead)
    assert refusal.code == c.NOT_YET_VALID
    assert refusal.code in c.AUTHENTICATED_CODES
    within = encode(c.sign(_envelope(issued=NOW + c.DEFAULT_MAX_SKEW), KEY))
    assert _verify(within).site_id == SITE


def test_another_sites_command_is_refused_on_either_topic() -> None:
    other = c.sign(_envelope(site="site-b"), KEY)
    assert _refusal(encode(other)).code == c.WRONG_SITE  # on this site's topic
    assert _refusal(encode(other), topic="fernwart/v1/site-b/cmd").code == c.WRONG_SITE
    own = c.sign(_envelope(), KEY)
    assert _refusal(encode(own), topic="fernwart/v1/site-b/cmd").code == c.WRONG_SITE


@pytest.mark.parametrize(
    ("topic", "payload", "where"),
    [
        (TOPIC, b"{not json", "not JSON"),
        (TOPIC, b"[]", "expected an object"),
        (TOPIC, b'{"schema": 2}', "schema"),
        (TOPIC, b'{"schema": 1, "site_id": "site-a", "envelope": "@@@", "signature": "x"}', "envelope"),
        (TOPIC, b'{"schema": 1, "site_id": "site-a", "signature": "x"}', "envelope"),
        ("fernwart/v1/site-a/obs", b"{}", "not a command topic"),
        ("elsewhere/site-a/cmd", b"{}", "not under"),
        (TOPIC, b"x" * (c.MAX_COMMAND_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_names_what_is_wrong(topic: str, payload: bytes, where: str) -> None:
    refusal = _refusal(payload, topic=topic)
    assert refusal.code == c.MALFORMED
    assert where in refusal.reason


def test_a_signed_envelope_with_too_long_a_lifetime_is_malformed() -> None:
    envelope = _envelope()
    longer = envelope.model_copy(update={"expires_at": NOW + c.MAX_LIFETIME + timedelta(seconds=1)})
    assert _refusal(encode(c.sign(longer, KEY))).code == c.MALFORMED
    with pytest.raises(ValueError, match="expires_at"):
        _envelope(lifetime=c.MAX_LIFETIME + timedelta(seconds=1))


def test_a_signed_envelope_that_is_not_an_envelope_is_malformed() -> None:
    body = json.dumps({"command_id": str(uuid.uuid4()), "site_id": SITE}).encode()
    command = Command(
        site_id=SITE,
        envelope=base64.b64encode(body).decode(),
        signature=base64.b64encode(KEY.sign(body)).decode(),
    )
    refusal = _refusal(encode(command))
    assert refusal.code == c.MALFORMED
    assert refusal.reason.startswith("envelope.")


def test_refusals_never_carry_the_signature_or_key() -> None:
    command = c.sign(_envelope(), OTHER_KEY)
    refusal = _refusal(encode(command))
    assert command.signature not in str(refusal)
    assert c.public_key_text(KEY.public_key()) not in str(refusal)


def test_public_key_text_round_trips_and_pem_is_read() -> None:
    public = KEY.public_key()
    text = c.public_key_text(public)
    assert text.startswith("ed25519:")
    assert c.public_key_text(c.parse_public_key(text)) == text
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert c.public_key_text(c.parse_public_key(pem.decode())) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [("ssh-ed25519 AAAA", "expected ed25519:"), ("ed25519:!!!", "not base64"), ("ed25519:AAAA", "32 bytes")],
)
def test_bad_public_keys_are_explained(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        c.parse_public_key(text)


SIGNED = c.sign(_envelope(), KEY)
BODY = base64.b64decode(SIGNED.envelope)
SIGNATURE = base64.b64decode(SIGNED.signature)


@given(st.integers(0, len(BODY) - 1), st.integers(1, 255))
def test_any_changed_byte_of_the_signed_envelope_is_refused(index: int, flip: int) -> None:
    changed = bytearray(BODY)
    changed[index] ^= flip
    payload = _with(SIGNED, envelope=base64.b64encode(bytes(changed)).decode())
    assert _refusal(payload).code == c.BAD_SIGNATURE


@given(st.integers(0, len(SIGNATURE) - 1), st.integers(1, 255))
def test_any_changed_byte_of_the_signature_is_refused(index: int, flip: int) -> None:
    changed = bytearray(SIGNATURE)
    changed[index] ^= flip
    payload = _with(SIGNED, signature=base64.b64encode(bytes(changed)).decode())
    assert _refusal(payload).code == c.BAD_SIGNATURE


@given(st.binary(min_size=1, max_size=len(BODY) + 8))
def test_any_other_signed_bytes_are_refused(other: bytes) -> None:
    payload = _with(SIGNED, envelope=base64.b64encode(other).decode())
    assert _refusal(payload).code == c.BAD_SIGNATURE


@given(st.data())
def test_a_mutated_payload_is_refused_or_still_the_signed_envelope(data: st.DataObject) -> None:
    """Bytes of the transport that are not signed (routing site, base64 padding bits) may
    change; what verifies is then still exactly the envelope that was signed."""
    payload = bytearray(encode(SIGNED))
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] ^= data.draw(st.integers(1, 255))
    outcome: str | bytes
    try:
        outcome = c.canonical_bytes(_verify(bytes(payload)))
    except c.CommandRefused as refusal:
        outcome = refusal.code
    assert outcome in (*c.REFUSAL_CODES, BODY)
