"""Options of the host driver: which filesystems to report and when to call them full."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HostOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    disk_paths: list[str] = Field(default_factory=lambda: ["/"], max_length=16)
    # Above these used fractions the host is ``degraded`` (a full disk stops the outbox).
    disk_warn_ratio: float = Field(0.9, gt=0, le=1)
    memory_warn_ratio: float = Field(0.95, gt=0, le=1)
