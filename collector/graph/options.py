"""Options of one Microsoft tenant source (``kind = "graph"``).

The client secret is a ``SecretStr``; in the agent's TOML it is a secret reference
(``client_secret = { credential = "graph-secret" }`` or ``{ env = "VAR" }``, resolved by
:mod:`runtime.secrets` before validation), so it is never written in the file. Every base URL is
configurable: the same driver talks to the global cloud, a national cloud or a test server.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

# Entra tenant: a GUID or a verified domain (contoso.onmicrosoft.com).
TenantId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")]
ClientId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f-]{8,64}$")]
DEFAULT_APP_NAMES = ("Microsoft Teams Rooms", "Microsoft.SkypeRoomSystem")
# Makers of certified Teams Android devices (phones, MTR-A, panels, displays); an Intune Android
# device from another maker is a phone or tablet, not a Teams device.
DEFAULT_ANDROID_MAKERS = (
    "audiocodes", "bose", "cisco", "crestron", "epos", "hp", "jabra", "lenovo", "logitech", "neat", "poly",
    "yealink",
)  # fmt: skip


class GraphOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: TenantId
    client_id: ClientId
    client_secret: SecretStr
    graph_url: str = "https://graph.microsoft.com"
    login_url: str = "https://login.microsoftonline.com"
    page_size: int = Field(100, ge=1, le=999)  # $top; the beta teamwork listing is capped at 50
    rate_per_s: float = Field(5.0, gt=0, le=1000)  # request budget of this tenant
    burst: int = Field(10, ge=1, le=1000)
    request_deadline_s: float = Field(30.0, gt=0, le=600)
    retries: int = Field(3, ge=0, le=10)
    concurrency: int = Field(4, ge=1, le=64)  # per-device requests in flight (health, actions)
    # The retired beta teamworkDevice API: "auto" uses it where the tenant still answers it
    # (a 404/410 turns it off for this run), "off" never asks.
    teamwork: Literal["auto", "off"] = "auto"
    teams_rooms_app_names: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: list(DEFAULT_APP_NAMES), min_length=1, max_length=16
    )
    android_manufacturers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ANDROID_MAKERS), max_length=64
    )
    action_poll_s: float = Field(15.0, gt=0, le=600)  # how often an action's state is read back

    @field_validator("graph_url", "login_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "@" in value:
            raise ValueError("expected an http(s) URL without credentials")
        return value.rstrip("/")
