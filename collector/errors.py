"""The few error types that travel inward from the device-facing edge.

Foreign exceptions (SNMP engine, aiohttp, …) are translated where they enter a driver.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error a driver raises."""


class Unreachable(DriverError):
    """The device did not answer in time: retry next tick, mark it down."""


class AuthFailed(DriverError):
    """Credentials were refused: stop polling this device, raise an incident."""


class BadResponse(DriverError):
    """The device answered something we cannot use; the rest of the read stands."""


# --- Cloud API errors (collector/http translates every vendor status into one of these) --------
#
# Each carries the HTTP status and the vendor's request id (Graph ``request-id`` /
# ``client-request-id``, Webex ``TrackingID``) so the NOC can quote it in a support case; both are
# also in the message. None of them ever contains a token or a client secret.


class VendorError(DriverError):
    """An error answered by a vendor API. ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class Throttled(Unreachable):
    """The API kept answering 429/503 (or 423) past the retries or the deadline: try next tick.

    ``retry_after_s`` is what the vendor last asked for, when it said."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.retry_after_s = retry_after_s


class Forbidden(VendorError):
    """The credentials are valid but lack a permission (HTTP 403): this call, not the source, fails."""


class NotFound(VendorError):
    """The resource (or the whole API, e.g. a retired beta endpoint) does not exist (HTTP 404)."""


class Gone(NotFound):
    """The resource or API was removed for good (HTTP 410)."""


class Conflict(VendorError):
    """The vendor refused because of the resource's state (HTTP 409), e.g. an operation of the
    same kind is already queued for the device."""
