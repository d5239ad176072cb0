"""Reconnect backoff: capped, jittered, never below the minimum."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.backoff import Backoff, backoff_delay


@given(
    attempt=st.integers(0, 10_000),
    min_s=st.floats(0.01, 10, allow_nan=False),
    spread=st.floats(1, 100, allow_nan=False),
)
def test_backoff_stays_between_min_and_capped_max(attempt: int, min_s: float, spread: float) -> None:
    max_s = min_s * spread
    delay = backoff_delay(attempt, min_s, max_s)
    assert min_s <= delay <= max_s + 1e-9
    assert delay <= min(max_s, min_s * 2 ** min(attempt, 30)) + 1e-9


def test_backoff_is_jittered() -> None:
    delays = {backoff_delay(10, 0.5, 30.0) for _ in range(50)}
    assert len(delays) > 1


def test_backoff_counts_failures_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    assert backoff.next_delay() == 0.5  # the first wait is the minimum: nothing to spread yet
    assert [backoff.next_delay() <= cap for cap in (1.0, 2.0, 4.0, 4.0)] == [True] * 4
    backoff.reset()
    assert backoff.next_delay() == 0.5
