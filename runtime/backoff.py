"""The one backoff: capped exponential with full jitter, never below the minimum.

Attempt ``n`` waits a random time between ``min_s`` and ``min(max_s, min_s · 2^n)``: clients that
lost the same server together (the agents of a site, the controllers of a cluster) spread out
instead of returning together (AWS Architecture Blog, "Exponential Backoff And Jitter", full
jitter). The floor keeps a failing connection from spinning.
"""

from __future__ import annotations

import random

_random = random.Random()  # noqa: S311 - jitter, not security


def backoff_delay(attempt: int, min_s: float, max_s: float) -> float:
    """Seconds to wait before attempt ``attempt`` + 1 (``attempt`` counts failures, from 0)."""
    ceiling = min(max_s, min_s * 2 ** min(attempt, 30))
    return float(min_s + _random.random() * (ceiling - min_s))


class Backoff:
    """Counts failures; :meth:`next_delay` is the wait after one more, :meth:`reset` after a success."""

    def __init__(self, min_s: float, max_s: float) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"backoff needs 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s = min_s
        self.max_s = max_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = backoff_delay(self.attempt, self.min_s, self.max_s)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
