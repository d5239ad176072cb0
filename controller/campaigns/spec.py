"""What an operator asks for when creating a campaign, validated (pure pydantic, no I/O).

Thresholds follow hawkBit's rollout groups and AWS IoT Jobs' abort config: a campaign halts when
more than ``failure_threshold_pct`` of its finished jobs failed, but only once at least
``failure_min_finished`` jobs have finished (one early failure of two must not halt a fleet); the
next wave starts when at least ``success_threshold_pct`` of the previous wave was verified and
``soak_s`` has passed since that wave's last job finished.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from firmware_catalog import VersionParseError, parse_version
from firmware_catalog.products import FAMILY_SCHEME

CampaignState = Literal["draft", "approved", "running", "paused", "cancelled", "halted", "done"]
CAMPAIGN_STATES: tuple[str, ...] = ("draft", "approved", "running", "paused", "cancelled", "halted", "done")
_Id = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class Selection(BaseModel):
    """Which devices of the customer: every list narrows; an empty list selects all."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sites: list[str] = Field(default_factory=list, max_length=10_000)
    models: list[str] = Field(default_factory=list, max_length=1000)
    findings: list[str] = Field(default_factory=list, max_length=1000)  # advisory ids or CVE ids
    devices: list[str] = Field(default_factory=list, max_length=100_000)  # "site/device"


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00]+$")
    customer: str = _Id
    targets: dict[str, str] = Field(default_factory=dict)  # family → version; else the catalog's rule
    selection: Selection = Selection()
    canary: int = Field(1, ge=0, le=100_000)
    soak_s: int = Field(3600, ge=0, le=30 * 86400)
    per_site_concurrency: int = Field(5, ge=1, le=10_000)
    failure_threshold_pct: float = Field(20.0, ge=0, le=100)
    failure_min_finished: int = Field(3, ge=1, le=100_000)
    success_threshold_pct: float = Field(100.0, ge=0, le=100)
    retries: int = Field(1, ge=0, le=10)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: dict[str, str]) -> dict[str, str]:
        for family, version in value.items():
            scheme = FAMILY_SCHEME.get(family)
            if scheme is None:
                msg = f"{family!r}: unknown family; known: {', '.join(sorted(FAMILY_SCHEME))}"
                raise ValueError(msg)
            try:
                parse_version(scheme, version)
            except VersionParseError as err:
                msg = f"{family}: {err.reason}"
                raise ValueError(msg) from None
        return value
