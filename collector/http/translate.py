"""Vendor answers → our few error types, with the vendor's request id in the message.

Graph errors: ``{"error": {"code", "message", "innerError": {"request-id", "client-request-id"}}}``
(``innererror`` in lower case also occurs) and headers ``request-id`` / ``client-request-id``.
Entra token errors: ``{"error": "invalid_client", "error_description", "trace_id",
"correlation_id"}``. Webex: ``{"message", "errors": [{"description"}], "trackingId"}`` and header
``TrackingID``; a Webex 429 may have no body at all. See /work/shared/reference/vendor-apis.md
§1.7 and §2.7. Bodies are read defensively: any shape may be missing or not JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collector.errors import (
    AuthFailed,
    BadResponse,
    Conflict,
    DriverError,
    Forbidden,
    Gone,
    NotFound,
    Throttled,
    Unreachable,
    VendorError,
)

_REQUEST_ID_HEADERS = ("request-id", "client-request-id", "trackingid", "x-request-id")
# OAuth 2.0 (RFC 6749 §5.2) error codes that mean the client's credentials or grant are bad.
_OAUTH_AUTH_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client", "invalid_request"})
_MAX_MESSAGE = 300


def _inner(error: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = error.get("innerError", error.get("innererror"))
    return inner if isinstance(inner, Mapping) else {}


def request_id(headers: Mapping[str, str], body: Any) -> str | None:
    """The vendor's id of this exchange: response header first, then the error body."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value[:128]
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            inner = _inner(error)
            for key in ("request-id", "client-request-id"):
                if isinstance(inner.get(key), str):
                    return str(inner[key])[:128]
        for key in ("trackingId", "trace_id", "correlation_id"):
            if isinstance(body.get(key), str):
                return str(body[key])[:128]
    return None


def vendor_code_and_message(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from any of the vendors' error envelopes."""
    if not isinstance(body, Mapping):
        return None, None
    error = body.get("error")
    if isinstance(error, Mapping):  # Graph
        code, message = error.get("code"), error.get("message")
        return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)
    if isinstance(error, str):  # OAuth token endpoint
        description = body.get("error_description")
        return error, description if isinstance(description, str) else None
    message = body.get("message")  # Webex
    if not isinstance(message, str):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            description = errors[0].get("description")
            message = description if isinstance(description, str) else None
        else:
            message = None
    return None, message


def describe(vendor: str, method: str, path: str, *, status: int, body: Any, rid: str | None) -> str:
    code, message = vendor_code_and_message(body)
    text = f"{vendor} {method} {path} answered {status}"
    if code:
        text += f" {code}"
    if message:
        # First line only: Entra descriptions carry trace lines and timestamps after it.
        text += f": {message.splitlines()[0][:_MAX_MESSAGE]}"
    if rid:
        text += f" (request-id {rid})"
    return text


REDACTED = "[redacted]"


def redact(text: str | None, secrets: Iterable[str]) -> str | None:
    """``text`` with every secret we sent replaced: a vendor (or a hostile server posing as one)
    may echo the client secret, refresh token or bearer token in its error description."""
    if text is None:
        return None
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


_BY_STATUS: dict[int, type[VendorError]] = {403: Forbidden, 404: NotFound, 410: Gone, 409: Conflict}


def error_for_status(
    vendor: str,
    method: str,
    path: str,
    *,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    retry_after_s: float | None = None,
    secrets: Iterable[str] = (),
) -> DriverError:
    """The error to raise for a non-2xx answer that will not be retried (any more); ``secrets``
    (what the request carried) never appear in it."""
    rid = redact(request_id(headers, body), secrets)
    message = redact(describe(vendor, method, path, status=status, body=body, rid=rid), secrets) or ""
    code, _ = vendor_code_and_message(body)
    if status == 401 or (status == 400 and code in _OAUTH_AUTH_ERRORS):
        return AuthFailed(message)
    if status in _BY_STATUS:
        return _BY_STATUS[status](message, status=status, request_id=rid)
    if status in (423, 429, 503):
        return Throttled(message, status=status, request_id=rid, retry_after_s=retry_after_s)
    if status >= 500:
        return Unreachable(message)
    return BadResponse(message)
