"""Options of one on-premises RoomOS/CE codec reached over its HTTP XML API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from collector.model import DeviceId


class XapiOptions(BaseModel):
    """A local admin user of the codec (HTTP Basic auth over HTTPS, vendor-update-paths.md §4.1).

    ``min_interval_s`` paces requests to this codec: RoomOS serves Basic-auth requests at one per
    second from a queue of 30 and answers 503 past it (RoomOS 26 release notes, "HTTP Rate
    limiting"). ``package_base_url`` is the customer's package host the codec downloads upgrades
    from; without it (and without a URL in the request) an update is a manual step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    scheme: Literal["https", "http"] = "https"
    verify_tls: bool = True  # codecs ship self-signed certificates: install one, or set False knowingly
    user: str = Field(min_length=1, max_length=64)
    password: SecretStr
    device_id: DeviceId | None = None  # default: the source id
    timeout_s: float = Field(10.0, gt=0, le=120)
    min_interval_s: float = Field(1.0, ge=0, le=60)
    busy_retries: int = Field(2, ge=0, le=10)  # resends after a 503 (queue full)
    follow_interval_s: float = Field(10.0, ge=0, le=600)  # between reads while following an action
    package_base_url: str | None = Field(None, pattern=r"^https?://", max_length=1024)
    # [I] cisco.com package names: cmterm-<Software.Name>ce<major_minor_patch_build>.k4.cop.sha512
    package_file: str = Field("cmterm-{name}ce{version_}.k4.cop.sha512", max_length=256)
    upgrade_forced: bool = True  # the codec's own default (RoomOS 26 release notes)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port else "")
