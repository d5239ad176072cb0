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
