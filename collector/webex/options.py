"""Options of one Webex organisation read through the Webex cloud APIs."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class WebexOptions(BaseModel):
    """An ``access_token`` used as is (a personal token: probes, short tests); or an integration /
    service app's ``client_id`` + ``client_secret`` + ``refresh_token``, refreshed at
    ``/v1/access_token`` before the access token expires; or a service app's first token from
    ``application_id`` + ``integration_token`` + ``target_org_id`` (then refreshed likewise;
    vendor-apis.md §2.1). Secrets come
    from ``{env=…}``/``{credential=…}`` references in the agent config, never from the file.

    Scopes used: ``spark-admin:devices_read`` (inventory), ``spark:xapi_statuses`` (status of
    RoomOS devices), ``spark:xapi_commands`` (restart, upgrade, logs),
    ``spark-admin:telephony_config_read`` (Webex Calling phone details, optional).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field("https://webexapis.com/v1", pattern=r"^https?://", max_length=512)
    org_id: str | None = Field(None, max_length=256)  # partners: the customer's org
    access_token: SecretStr | None = None
    client_id: str | None = Field(None, max_length=256)
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    # A service app's first token: its application id, an integration token with the
    # spark:applications_token scope, and the customer's org (targetOrgId).
    application_id: str | None = Field(None, max_length=256)
    integration_token: SecretStr | None = None
    target_org_id: str | None = Field(None, max_length=256)
    page_size: int = Field(100, ge=1, le=1000)
    read_xapi_status: bool = True  # one /xapi/status per RoomOS device per poll
    read_calling_details: bool = False  # one /telephony/config/devices/{id} per phone per poll
    concurrency: int = Field(4, ge=1, le=32)  # per-device reads in flight
    rate_per_s: float = Field(5.0, gt=0, le=10_000)  # the org's request budget (bench: high)
    burst: int = Field(10, ge=1, le=10_000)
    request_deadline_s: float = Field(30.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    retry_min_s: float = Field(0.5, gt=0, le=60)
    follow_interval_s: float = Field(15.0, ge=0, le=600)
    console_url: str = Field("https://admin.webex.com/devices", max_length=512)

    @model_validator(mode="after")
    def _one_way_to_a_token(self) -> Self:
        service_app = ("application_id", "integration_token", "target_org_id", "client_id", "client_secret")
        refresh = ("client_id", "client_secret", "refresh_token")
        if any(
            getattr(self, k) is not None for k in ("application_id", "integration_token", "target_org_id")
        ):
            missing = [k for k in service_app if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a service app also needs {', '.join(missing)}")
            return self
        if any(getattr(self, k) is not None for k in refresh):
            missing = [k for k in refresh if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"token refresh needs client_id, client_secret and refresh_token together"
                    f" (missing {', '.join(missing)})"
                )
            return self
        if self.access_token is None:
            raise ValueError(
                "set access_token, or client_id + client_secret + refresh_token, or a service app's"
                " application_id + integration_token + target_org_id + client_id + client_secret"
            )
        return self

    @property
    def service_app(self) -> bool:
        return self.application_id is not None
