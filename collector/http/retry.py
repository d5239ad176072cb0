"""When to retry a vendor request, and how long to wait first.

Graph and Webex both answer throttling with 429 and a ``Retry-After`` header in seconds
(learn.microsoft.com/graph/throttling; developer.webex.com/docs/basics); Webex also uses 423
Locked, and both may answer 503/504 while a backend is busy. RFC 9110 §10.2.3 also allows an
HTTP-date in ``Retry-After``. Without the header we fall back to the one shared backoff
(:mod:`runtime.backoff`: capped exponential, full jitter), so a fleet of agents spreads out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from runtime.backoff import backoff_delay

# Statuses after which the same request may succeed if sent again later.
RETRY_STATUSES = frozenset({423, 429, 500, 502, 503, 504})
_SECONDS = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?", re.ASCII)  # delta-seconds (a fraction tolerated)


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` resends at most (so ``retries + 1`` attempts); waits between ``min_s`` and
    ``max_s`` when the vendor did not say how long; a vendor's ``Retry-After`` is honoured up to
    ``max_retry_after_s`` (a longer one ends the attempt: the next poll comes sooner)."""

    retries: int = 3
    min_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.retries < 0 or not 0 < self.min_s <= self.max_s:
            raise ValueError(f"retry policy needs retries >= 0 and 0 < min_s <= max_s, got {self}")

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 0)."""
        if retry_after_s is not None:
            return retry_after_s
        return backoff_delay(attempt, self.min_s, self.max_s)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date); None when absent or malformed."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
