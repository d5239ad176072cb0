"""Agreement with the customer: before each window its contacts get the plan by e-mail and webhook.

A notice lists, for one customer and one window, which devices get which version, why and when.
It may go out no later than the notice time of the window
(:func:`controller.scheduler.policy.notice_time`: the latest moment inside working hours at least
``notice_lead`` before the window; later would shorten the customer's lead) and only while the
customer is inside its working hours (its public holidays are not working days): the contract
allows planning work only then.
:func:`due` says whether now is such a moment; :class:`NoticeSender` refuses any other.

E-mail goes through SMTP (stdlib ``smtplib`` in a worker thread, with a deadline; STARTTLS and
login when configured). The webhook is a JSON POST signed with HMAC-SHA256 (RFC 2104), with the
customer's own key (:func:`customer_secret`), over ``"<unix time>." + body``, sent as
``X-Fernwart-Signature: t=<unix time>,v1=<hex>``: the time inside the signature lets the
receiver refuse replays (:func:`verify_signature`). Errors from
smtplib and aiohttp are translated here into :class:`NoticeError` with a stable ``code``;
neither the SMTP password nor the webhook secret appears in any message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Final

import aiohttp
import structlog
from yarl import URL

from controller.scheduler import CustomerPolicy, in_working_hours, notice_time
from controller.settings import NoticeSettings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER: Final = "X-Fernwart-Signature"
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)
ERROR_CODES: Final = (
    "not_due",
    "outside_working_hours",
    "no_recipients",
    "smtp_unreachable",
    "smtp_refused",
    "email_invalid",
    "webhook_unreachable",
    "webhook_refused",
)


class NoticeError(Exception):
    """A notice that was not (fully) delivered; ``code`` is one of :data:`ERROR_CODES` (a metric label)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NoticeItem:
    site_id: str
    device_id: str
    current: str | None
    target: str
    update_class: str
    execution: str
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    customer: str
    customer_name: str
    campaign_id: int
    window_start: datetime
    window_end: datetime
    items: tuple[NoticeItem, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "fernwart.update_notice",
            "customer": self.customer,
            "campaign": self.campaign_id,
            "window": {"start": self.window_start.isoformat(), "end": self.window_end.isoformat()},
            "devices": [
                {
                    "site": i.site_id,
                    "device": i.device_id,
                    "current": i.current,
                    "target": i.target,
                    "class": i.update_class,
                    "execution": i.execution,
                    "why": i.reason,
                }
                for i in self.items
            ],
        }


def build_notices(policy: CustomerPolicy, campaign_id: int, jobs: Iterable[dict[str, Any]]) -> list[Notice]:
    """One notice per window of the customer's planned jobs (dicts as the store returns them)."""
    groups: dict[tuple[datetime, datetime], list[NoticeItem]] = {}
    for job in jobs:
        if job.get("state") not in {"planned", "deferred"} or job.get("window_start") is None:
            continue
        item = NoticeItem(
            job["site_id"],
            job["device_id"],
            job.get("from_version"),
            job["target"],
            job["update_class"],
            job["execution"],
            job["reason"],
        )
        groups.setdefault((job["window_start"], job["window_end"]), []).append(item)
    return [
        Notice(policy.customer, policy.name or policy.customer, campaign_id, start, end, tuple(items))
        for (start, end), items in sorted(groups.items())
    ]


def due(policy: CustomerPolicy, window_start: datetime, now: datetime) -> bool:
    """May the notice for a window starting at ``window_start`` be sent at ``now``: inside working
    hours, and no later than the notice time (so at least ``notice_lead`` before the window)."""
    at = notice_time(policy, window_start)
    return at is not None and now <= at and in_working_hours(policy, now)


def render_email(notice: Notice, policy: CustomerPolicy, sender: str) -> EmailMessage:
    """The plan as a plain-text e-mail to every contact, times in the customer's zone."""
    tz = policy.timezone
    start, end = notice.window_start.astimezone(tz), notice.window_end.astimezone(tz)
    message = EmailMessage()
    message["From"] = sender
    # Address objects quote a display name: "Eve, x <eve@evil.example>" stays one contact's name.
    message["To"] = [Address(display_name=c.name, addr_spec=c.email) for c in policy.contacts]
    count = len(notice.items)
    message["Subject"] = (
        f"Planned updates for {notice.customer_name}: {count} device(s) on {start:%a %Y-%m-%d %H:%M %Z}"
    )
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="fernwart.invalid")
    lines = [
        f"Dear {notice.customer_name},",
        "",
        f"in the maintenance window {start:%A %Y-%m-%d %H:%M} to {end:%H:%M %Z} ({tz.key})",
        "we plan to update these devices:",
        "",
    ]
    for item in notice.items:
        change = f"{item.current or 'unknown'} -> {item.target} ({item.update_class}, {item.execution})"
        lines += [f"* {item.site_id}/{item.device_id}: {change}", f"  why: {item.reason}"]
    lines += [
        "",
        f"Campaign {notice.campaign_id}. Reply to this message to object or to ask for another date.",
    ]
    message.set_content("\n".join(lines))
    return message


def customer_secret(master: bytes, customer: str) -> bytes:
    """The webhook key of one customer, derived from the controller's ``[notices] webhook_secret``
    (HMAC-SHA256 of the customer id): each customer gets its own, none can sign for another, and
    nothing more is stored. ``fernwart contracts webhook-secret CUSTOMER`` prints it for them."""
    return hmac.new(master, b"fernwart-webhook\x00" + customer.encode(), hashlib.sha256).hexdigest().encode()


def sign(body: bytes, secret: bytes, at: datetime) -> str:
    """The signature header value for ``body`` sent at ``at``."""
    stamp = int(at.timestamp())
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify_signature(
    body: bytes, header: str, secret: bytes, now: datetime, tolerance: timedelta = DEFAULT_TOLERANCE
) -> bool:
    """What a receiver does: the signature matches and its time is within ``tolerance`` of now."""
    parts = dict(part.partition("=")[::2] for part in header.split(","))
    try:
        stamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now.timestamp() - stamp) > tolerance.total_seconds():
        return False
    expected = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "fernwart@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0


def _deliver(config: SmtpConfig, message: EmailMessage, recipients: Sequence[str]) -> None:
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.username and config.password:
            smtp.login(config.username, config.password)
        refused = smtp.send_message(message, from_addr=config.sender, to_addrs=list(recipients))
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


def _rendered(notice: Notice, policy: CustomerPolicy, sender: str) -> EmailMessage:
    """The e-mail, or :class:`NoticeError` ``email_invalid`` when a name or address cannot go into
    a header (stored before names were checked): one customer's data never stops the runner."""
    try:
        return render_email(notice, policy, sender)
    except (ValueError, IndexError, TypeError) as err:
        raise NoticeError("email_invalid", f"customer {policy.customer}: {type(err).__name__}") from None


async def send_email(config: SmtpConfig, message: EmailMessage, recipients: Sequence[str]) -> None:
    """Deliver through SMTP. Raises :class:`NoticeError` (``smtp_unreachable`` / ``smtp_refused``)."""
    try:
        async with asyncio.timeout(config.timeout_s + 5):
            await asyncio.to_thread(_deliver, config, message, recipients)
    except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as err:
        raise NoticeError("smtp_unreachable", f"{config.host}:{config.port}: {type(err).__name__}") from None
    except smtplib.SMTPException as err:  # before OSError, its base class: a refusal is not "unreachable"
        code = getattr(err, "smtp_code", None)
        raise NoticeError(
            "smtp_refused", f"{config.host}:{config.port} refused the message (SMTP {code})"
        ) from None
    except OSError as err:
        raise NoticeError("smtp_unreachable", f"{config.host}:{config.port}: {type(err).__name__}") from None


async def post_webhook(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes,
    secret: bytes,
    now: datetime,
    timeout_s: float = 30.0,
) -> None:
    """POST the signed body. Raises :class:`NoticeError` (``webhook_unreachable`` / ``webhook_refused``)."""
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret, now)}
    shown = _origin(url)
    try:
        async with (
            asyncio.timeout(timeout_s),
            session.post(url, data=body, headers=headers) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise NoticeError("webhook_unreachable", f"{shown}: {type(err).__name__}") from None
    if not 200 <= status < 300:
        raise NoticeError("webhook_refused", f"{shown} answered HTTP {status}")


def _origin(url: str) -> str:
    """How a webhook is named in errors (which reach the log and the audit log): its origin only.
    Incoming-webhook URLs (Teams, Slack, many ticket systems) carry their secret in the path or
    query, some in user:password@."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return "the webhook URL"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one notice: who got the e-mail, whether the webhook took it, what failed."""

    recipients: tuple[str, ...]
    webhook: bool
    errors: tuple[str, ...]


class NoticeSender:
    """Sends notices, never outside the customer's working hours nor before the notice time."""

    def __init__(
        self,
        smtp: SmtpConfig | None,
        session: aiohttp.ClientSession | None = None,
        webhook_secret: bytes = b"",
    ) -> None:
        self.smtp = smtp
        self.session = session
        self.webhook_secret = webhook_secret

    async def send(
        self, notice: Notice, policy: CustomerPolicy, now: datetime, *, webhook_url: str | None = None
    ) -> Delivery:
        """Raises :class:`NoticeError` when it is not a moment to send; per-channel failures are
        in :attr:`Delivery.errors` (one channel failing does not stop the other)."""
        if not in_working_hours(policy, now):
            raise NoticeError(
                "outside_working_hours",
                f"{now.astimezone(policy.timezone).isoformat()} is outside {policy.working_hours.text}",
            )
        if not due(policy, notice.window_start, now):
            raise NoticeError(
                "not_due", f"the notice for {notice.window_start.isoformat()} is not due at {now.isoformat()}"
            )
        recipients = tuple(c.email for c in policy.contacts)
        if not recipients and webhook_url is None:
            raise NoticeError("no_recipients", f"customer {policy.customer} has no contacts and no webhook")
        errors: list[str] = []
        delivered: tuple[str, ...] = ()
        if recipients and self.smtp is not None:
            try:
                message = _rendered(notice, policy, self.smtp.sender)
                await send_email(self.smtp, message, recipients)
                delivered = recipients
            except NoticeError as err:
                errors.append(str(err))
        hooked = False
        if webhook_url is not None and self.session is not None:
            body = json.dumps(notice.as_json(), sort_keys=True).encode()
            try:
                secret = customer_secret(self.webhook_secret, policy.customer)
                await post_webhook(self.session, webhook_url, body=body, secret=secret, now=now)
                hooked = True
            except NoticeError as err:
                errors.append(str(err))
        log.info(
            "notice_sent" if not errors else "notice_failed",
            customer=policy.customer,
            campaign=notice.campaign_id,
            window=notice.window_start.isoformat(),
            devices=len(notice.items),
            recipients=len(delivered),
            webhook=hooked,
            errors=errors,
        )
        return Delivery(delivered, hooked, tuple(errors))


def sender_from_settings(settings: NoticeSettings, session: aiohttp.ClientSession | None) -> NoticeSender:
    """The controller's sender, as ``[notices]`` configures it."""
    smtp = None
    if settings.smtp_host is not None:
        smtp = SmtpConfig(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=settings.timeout_s,
        )
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else b""
    return NoticeSender(smtp, session if secret else None, secret)
