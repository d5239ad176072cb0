"""Notices: a real SMTP server (aiosmtpd) and a webhook receiver on loopback; never outside working hours."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.campaigns.notices import (
    SIGNATURE_HEADER,
    NoticeError,
    NoticeSender,
    SmtpConfig,
    build_notices,
    customer_secret,
    due,
    sender_from_settings,
    verify_signature,
)
from controller.scheduler import CustomerPolicy, in_working_hours, notice_time, parse_policy
from controller.settings import settings_from_dict
from runtime.config import ConfigError
from tests.fixtures.net import free_port

SECRET = b"webhook-secret-of-acme"
VIENNA = ZoneInfo("Europe/Vienna")


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@dataclass
class Hooks:
    received: list[tuple[bytes, str]] = field(default_factory=list)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Hooks, str]]:
    hooks = Hooks()

    async def receive(request: web.Request) -> web.Response:
        hooks.received.append((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield hooks, str(server.make_url("/hook"))
    finally:
        await server.close()


def policy(
    tz: str = "Europe/Vienna", holidays: str = "AT", hours: str = "Mon-Fri 08:00-17:00"
) -> CustomerPolicy:
    doc = {
        "customers": {
            "acme": {
                "name": "ACME",
                "timezone": tz,
                "holidays": holidays,
                "working_hours": hours,
                "contacts": [
                    {"name": "Maria Huber", "email": "maria@acme.example", "role": "IT lead"},
                    {"name": "Night Desk", "email": "noc@acme.example"},
                ],
            }
        }
    }
    return parse_policy(doc)["acme"]


# Tuesday 2026-05-12 22:00 Vienna: the notice must go by Monday 2026-05-11 17:00 (P1D before, working hours).
WINDOW = (datetime(2026, 5, 12, 22, 0, tzinfo=VIENNA), datetime(2026, 5, 13, 1, 0, tzinfo=VIENNA))
PLANNED = {"state": "planned", "site_id": "vie-hq", "device_id": "codec-1", "from_version": "ce11.5.1"}
JOBS = [
    PLANNED
    | {"target": "26.2.2.2", "update_class": "security", "execution": "automatic"}
    | {"reason": "security update: cisco-sa-1", "window_start": WINDOW[0], "window_end": WINDOW[1]},
    {
        "state": "hold",
        "site_id": "vie-hq",
        "device_id": "phone-9",
        "reason": "out of scope",
        "window_start": None,
    },
]


async def test_notice_by_email_and_signed_webhook(
    smtp: tuple[Mailbox, int], webhook: tuple[Hooks, str]
) -> None:
    mailbox, port = smtp
    hooks, url = webhook
    acme = policy()
    [notice] = build_notices(acme, 7, JOBS)
    now = datetime(2026, 5, 11, 16, 30, tzinfo=VIENNA)
    async with aiohttp.ClientSession() as session:
        sender = NoticeSender(SmtpConfig("127.0.0.1", port, sender="noc@fernwart.example"), session, SECRET)
        delivery = await sender.send(notice, acme, now, webhook_url=url)
    assert delivery.errors == ()
    assert delivery.recipients == ("maria@acme.example", "noc@acme.example")
    assert delivery.webhook
    [(mail_from, rcpt, content)] = mailbox.messages
    assert mail_from == "noc@fernwart.example"
    assert rcpt == ["maria@acme.example", "noc@acme.example"]
    text = email.message_from_bytes(content, policy=email.policy.default).get_body().get_content()  # type: ignore[union-attr]
    assert "vie-hq/codec-1: ce11.5.1 -> 26.2.2.2 (security, automatic)" in text
    assert "why: security update: cisco-sa-1" in text
    assert "Tuesday 2026-05-12 22:00 to 01:00 CEST" in text
    assert "phone-9" not in text
    [(body, signature)] = hooks.received
    acme_key = customer_secret(SECRET, "acme")  # what the customer was given
    assert verify_signature(body, signature, acme_key, now)
    assert not verify_signature(body, signature, SECRET, now)  # the controller's master key signs nothing
    assert not verify_signature(body, signature, customer_secret(SECRET, "globex"), now)  # nor another's
    assert not verify_signature(body, signature, acme_key, now + timedelta(minutes=6))  # a replay, later
    assert not verify_signature(body.replace(b"26.2.2.2", b"99.9.9.9"), signature, acme_key, now)
    sent = json.loads(body)
    assert sent["devices"][0]["target"] == "26.2.2.2"
    assert sent["window"]["start"] == "2026-05-12T22:00:00+02:00"


async def test_never_outside_working_hours_nor_before_the_notice_time(
    smtp: tuple[Mailbox, int], webhook: tuple[Hooks, str]
) -> None:
    mailbox, port = smtp
    hooks, url = webhook
    acme = policy()
    [notice] = build_notices(acme, 7, JOBS)
    async with aiohttp.ClientSession() as session:
        sender = NoticeSender(SmtpConfig("127.0.0.1", port), session, SECRET)
        for now, code in (
            (datetime(2026, 5, 11, 18, 0, tzinfo=VIENNA), "outside_working_hours"),  # after hours
            (datetime(2026, 5, 9, 10, 0, tzinfo=VIENNA), "outside_working_hours"),  # Saturday
            (datetime(2026, 5, 12, 8, 0, tzinfo=VIENNA), "not_due"),  # after the notice time: lead too short
            (datetime(2026, 5, 12, 16, 0, tzinfo=VIENNA), "not_due"),
        ):
            with pytest.raises(NoticeError) as caught:
                await sender.send(notice, acme, now, webhook_url=url)
            assert caught.value.code == code
    assert mailbox.messages == []
    assert hooks.received == []


async def test_smtp_down_is_reported_and_the_webhook_still_goes(webhook: tuple[Hooks, str]) -> None:
    hooks, url = webhook
    acme = policy()
    [notice] = build_notices(acme, 7, JOBS)
    async with aiohttp.ClientSession() as session:
        sender = NoticeSender(SmtpConfig("127.0.0.1", free_port(), password="hunter2-smtp"), session, SECRET)
        delivery = await sender.send(
            notice, acme, datetime(2026, 5, 11, 16, 0, tzinfo=VIENNA), webhook_url=url
        )
    assert delivery.webhook
    assert delivery.recipients == ()
    assert [e.split(":")[0] for e in delivery.errors] == ["smtp_unreachable"]
    assert "hunter2" not in " ".join(delivery.errors)
    assert len(hooks.received) == 1


POLICIES = {
    (tz, cal, hours): policy(tz, cal, hours)
    for tz, cal in (("Europe/Vienna", "AT"), ("America/New_York", "US-NY"), ("Australia/Sydney", "AU-NSW"))
    for hours in ("Mon-Fri 08:00-17:00", "Mon-Thu 07:30-12:00, Mon-Thu 13:00-16:30, Fri 08:00-12:00")
}


@settings(max_examples=400, deadline=None)
@given(
    key=st.sampled_from(sorted(POLICIES)),
    start=st.datetimes(datetime(2026, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),  # noqa: DTZ001 - hypothesis bounds are naive
    offset_min=st.integers(-3 * 24 * 60, 3 * 24 * 60),
)
def test_no_notice_is_ever_due_outside_working_hours(
    key: tuple[str, str, str], start: datetime, offset_min: int
) -> None:
    acme = POLICIES[key]
    now = start + timedelta(minutes=offset_min)
    at = notice_time(acme, start)
    if due(acme, start, now):
        assert in_working_hours(acme, now)
        assert at is not None
        assert now <= at <= start - timedelta(days=1)
    if at is not None and at < start:
        assert in_working_hours(acme, at)
        assert at <= start - timedelta(days=1)
        assert due(acme, start, at)  # the notice time itself is a moment to send


async def test_notice_settings_make_the_sender_and_never_show_secrets(
    smtp: tuple[Mailbox, int], webhook: tuple[Hooks, str]
) -> None:
    mailbox, port = smtp
    hooks, url = webhook
    base = {"database": {"url": "sqlite+aiosqlite:///unused.db"}}
    notices = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "sender": "noc@fw.example",
        "webhook_secret": "s3cret-hook",
        "smtp_password": "s3cret-smtp",
    }
    settings = settings_from_dict(base | {"notices": notices})
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(base | {"notices": {"sender": "nobody", "smtp_port": 0}})
    assert sorted(line.split(":")[0] for line in caught.value.problems) == [
        "notices.sender",
        "notices.smtp_port",
    ]
    acme = policy()
    [notice] = build_notices(acme, 7, JOBS)
    now = datetime(2026, 5, 11, 16, 0, tzinfo=VIENNA)
    async with aiohttp.ClientSession() as session:
        sender = sender_from_settings(settings.notices, session)
        delivery = await sender.send(notice, acme, now, webhook_url=url)
    assert delivery.errors == ()
    assert mailbox.messages[0][0] == "noc@fw.example"
    [(body, signature)] = hooks.received
    assert verify_signature(body, signature, customer_secret(b"s3cret-hook", "acme"), now)
