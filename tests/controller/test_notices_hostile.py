"""Notices with hostile contact data: no header injection, no extra recipient, no stuck runner.

Found: a contact or customer name with CR/LF (``"Maria\\r\\nBcc: eve@evil.example"``) passed the
policy schema; rendering the e-mail then raised ``ValueError`` out of ``NoticeSender.send`` (not a
NoticeError), so that customer's notice could never go and the runner's step failed with it. A
name with a comma and angle brackets (``"Eve, x <eve@evil.example>"``) showed a foreign address
in the ``To`` header that a reply-all would mail.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import datetime

import aiohttp
import pytest

from controller.campaigns.notices import NoticeSender, SmtpConfig, build_notices, render_email
from controller.scheduler import DataError, parse_policy
from controller.scheduler.policy import Contact
from tests.controller.test_campaigns_notices import (  # noqa: F401 - the fixtures
    JOBS,
    SECRET,
    VIENNA,
    Hooks,
    Mailbox,
    policy,
    smtp,
    webhook,
)
from tests.fixtures.net import free_port

CRLF_NAME = "Maria\r\nBcc: eve@evil.example"


@pytest.mark.parametrize(
    ("customer", "where"),
    [
        ({"name": "ACME\r\nBcc: eve@evil.example"}, "customers.acme.name"),
        ({"contacts": [{"name": CRLF_NAME, "email": "m@acme.example"}]}, "customers.acme.contacts[0].name"),
        (
            {"contacts": [{"name": "M", "email": "m@acme.example", "role": "x\nBcc: e@x"}]},
            "customers.acme.contacts[0].role",
        ),
        ({"contacts": [{"name": "M", "email": "m@acme.example\x0b"}]}, "customers.acme.contacts[0].email"),
    ],
)
def test_control_characters_in_names_are_refused_naming_the_field(
    customer: dict[str, object], where: str
) -> None:
    with pytest.raises(DataError) as err:
        parse_policy({"customers": {"acme": customer}})
    assert [line.split(":")[0] for line in err.value.errors] == [where]


def test_a_display_name_with_address_syntax_stays_one_recipient() -> None:
    acme = policy()
    odd = dataclasses.replace(
        acme, contacts=(Contact('Eve, Mallory <eve@evil.example> "x"', "maria@acme.example"),)
    )
    [notice] = build_notices(odd, 7, JOBS)
    message = render_email(notice, odd, "noc@fernwart.example")
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    addresses = parsed["To"].addresses
    assert [a.addr_spec for a in addresses] == ["maria@acme.example"]
    assert addresses[0].display_name == 'Eve, Mallory <eve@evil.example> "x"'


async def test_a_stored_name_with_crlf_fails_only_its_email(
    smtp: tuple[Mailbox, int],  # noqa: F811
    webhook: tuple[Hooks, str],  # noqa: F811
) -> None:
    """Stored before names were checked: the e-mail fails with a reason code, the webhook still goes."""
    mailbox, port = smtp
    hooks, url = webhook
    acme = policy()
    bad = dataclasses.replace(acme, contacts=(Contact(CRLF_NAME, "maria@acme.example"),))
    [notice] = build_notices(bad, 7, JOBS)
    now = datetime(2026, 5, 11, 16, 30, tzinfo=VIENNA)
    async with aiohttp.ClientSession() as session:
        sender = NoticeSender(SmtpConfig("127.0.0.1", port), session, SECRET)
        delivery = await sender.send(notice, bad, now, webhook_url=url)
    assert [e.split(":")[0] for e in delivery.errors] == ["email_invalid"]
    assert delivery.recipients == ()
    assert delivery.webhook
    assert mailbox.messages == []
    assert len(hooks.received) == 1


@pytest.mark.parametrize("status", [500, None])
async def test_a_failing_webhook_is_named_by_its_origin_only(status: int | None) -> None:
    """Incoming-webhook URLs carry their secret (path, query, user:password@); errors reach the
    log and the audit log. Found: the whole URL was in both."""
    from aiohttp import web  # noqa: PLC0415 - only this test serves
    from aiohttp.test_utils import TestServer  # noqa: PLC0415

    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/{tail:.*}", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    port = server.port if status else free_port()
    url = f"http://hookuser:Hook-pass-77e1@127.0.0.1:{port}/IncomingWebhook/Path-secret-31c9?sig=Query-secret-a0b2"
    acme = policy()
    [notice] = build_notices(acme, 7, JOBS)
    try:
        async with aiohttp.ClientSession() as session:
            sender = NoticeSender(None, session, SECRET)
            delivery = await sender.send(
                notice, acme, datetime(2026, 5, 11, 16, 30, tzinfo=VIENNA), webhook_url=url
            )
    finally:
        await server.close()
    (error,) = delivery.errors
    assert error.startswith("webhook_refused" if status else "webhook_unreachable")
    assert f"http://127.0.0.1:{port}" in error
    for secret in ("Hook-pass-77e1", "Path-secret-31c9", "Query-secret-a0b2", "hookuser"):
        assert secret not in error


async def test_an_smtp_server_echoing_the_password_in_its_refusal() -> None:
    """A relay that answers AUTH with the decoded credentials: the NoticeError names the code only.
    Found on the way: every SMTP refusal was reported as ``smtp_unreachable`` (SMTPException is an
    OSError, and OSError was caught first), so a wrong password looked like a network fault."""
    import asyncio  # noqa: PLC0415
    import base64  # noqa: PLC0415

    from structlog.testing import capture_logs  # noqa: PLC0415

    password = "Smtp-pa55-e3d1"

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 relay.example ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"EHLO"):
                writer.write(b"250-relay.example\r\n250 AUTH PLAIN LOGIN\r\n")
            elif line.upper().startswith(b"AUTH"):
                echoed = base64.b64decode(line.split()[-1] + b"==").replace(b"\x00", b" ")
                writer.write(b"535 5.7.8 refused: " + echoed + b"\r\n")
            else:
                writer.write(b"221 bye\r\n")
                break
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    acme = policy()
    [notice] = build_notices(acme, 7, JOBS)
    config = SmtpConfig("127.0.0.1", port, username="noc", password=password, timeout_s=5)
    try:
        with capture_logs() as logs:
            delivery = await NoticeSender(config).send(
                notice, acme, datetime(2026, 5, 11, 16, 0, tzinfo=VIENNA)
            )
    finally:
        server.close()
    assert [e.split(":")[0] for e in delivery.errors] == ["smtp_refused"], delivery.errors
    assert "535" in delivery.errors[0]
    assert password not in f"{delivery} {config!r} {logs}"
