"""Which messages of a flush the store takes: from the agent enrolled for their site, and not
stamped in the future. The others become dead letters."""

from __future__ import annotations

from datetime import timedelta

from controller.shapes import PreparedBatch, epoch_us, utc_from_us
from controller.storage.records import AGENT_MISMATCH, FUTURE_TIMESTAMP, NOT_ENROLLED, Received


def check_owners(accepted: list[Received], owners: dict[str, str], dead: list[Received]) -> list[Received]:
    """The messages from the agent enrolled for their site; the others go to ``dead``, as
    ``not_enrolled`` (no such site enrolled) or ``agent_mismatch`` (another agent's site)."""
    kept: list[Received] = []
    for item in accepted:
        message = item.message
        assert message is not None
        owner = owners.get(message.site_id)
        if message.agent_id == owner:
            kept.append(item)
            continue
        if owner is None:
            code, reason = NOT_ENROLLED, f"site_id: site {message.site_id!r} is not enrolled"
        else:
            code = AGENT_MISMATCH
            reason = (
                f"agent_id: site {message.site_id!r} belongs to agent {owner!r}, not {message.agent_id!r}"
            )
        dead.append(Received(item.topic, item.payload, item.received_at, code=code, reason=reason))
    return kept


def check_clock(kept: list[Received], dead: list[Received], skew: timedelta | None) -> list[Received]:
    """The messages whose batch is not stamped beyond the skew allowed; the others go to
    ``dead`` as ``future_timestamp``."""
    if skew is None:
        return kept
    valid: list[Received] = []
    for item in kept:
        batch = item.message
        if isinstance(batch, PreparedBatch):
            limit = item.received_at + skew
            reason = ""
            if batch.sent_at > limit:
                reason = f"sent_at: {batch.sent_at.isoformat()} is more than {skew.total_seconds():g}s ahead"
            elif batch.newest_us > epoch_us(limit):
                at = utc_from_us(batch.newest_us).isoformat()
                reason = f"observations: observed_at {at} is more than {skew.total_seconds():g}s ahead"
            if reason:
                reason += f" of the time received ({item.received_at.isoformat()})"
                dead.append(
                    Received(item.topic, item.payload, item.received_at, code=FUTURE_TIMESTAMP, reason=reason)
                )
                continue
        valid.append(item)
    return valid
