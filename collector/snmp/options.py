"""Options of one SNMP device: where it is, how to authenticate, how long to wait."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

AuthProto = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProto = Literal["DES", "AES", "AES-192", "AES-256"]


class SnmpOptions(BaseModel):
    """SNMPv2c when ``community`` is set, SNMPv3 when ``user`` is set (exactly one of them).

    SNMPv3 security level follows the keys given: no ``auth_key`` is noAuthNoPriv, ``auth_key``
    alone authNoPriv, ``auth_key`` and ``priv_key`` authPriv. Keys are passphrases (RFC 3414 §2.6
    password-to-key), as net-snmp's ``createUser`` and the devices' admin pages take them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(161, ge=1, le=65535)
    community: SecretStr | None = None
    user: str | None = Field(None, min_length=1, max_length=32)
    auth_proto: AuthProto = "SHA"
    auth_key: SecretStr | None = None
    priv_proto: PrivProto = "AES"
    priv_key: SecretStr | None = None
    # Per request: each GET/GETBULK waits timeout_s, and is sent again up to `retries` times.
    timeout_s: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=5)
    max_repetitions: int = Field(25, ge=1, le=100)
    # The tables besides the system group; many endpoints (RoomOS codecs) answer only the latter.
    read_entity: bool = True
    read_interfaces: bool = True

    @model_validator(mode="after")
    def _one_security_model(self) -> Self:
        if (self.community is None) == (self.user is None):
            raise ValueError("set either community (SNMPv2c) or user (SNMPv3), not both or neither")
        if self.user is None and (self.auth_key is not None or self.priv_key is not None):
            raise ValueError("auth_key/priv_key are SNMPv3 settings and need user")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs auth_key: SNMPv3 has no noAuthPriv level")
        for name, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
            if key is not None and len(key.get_secret_value()) < 8:
                raise ValueError(f"{name} must be at least 8 characters (RFC 3414 §11.2)")
        return self

    @property
    def version(self) -> Literal["2c", "3"]:
        return "2c" if self.community is not None else "3"

    @property
    def security_level(self) -> str:
        if self.user is None:
            return "community"
        if self.auth_key is None:
            return "noAuthNoPriv"
        return "authNoPriv" if self.priv_key is None else "authPriv"
