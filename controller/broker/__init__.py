"""The broker's side of agent identity: password hashes and generated broker configuration."""

from controller.broker.config import BrokerConfigError, BrokerFile, BrokerUser, render_emqx, render_mosquitto
from controller.broker.passwd import hash_password, new_password, verify_password

__all__ = [
    "BrokerConfigError",
    "BrokerFile",
    "BrokerUser",
    "hash_password",
    "new_password",
    "render_emqx",
    "render_mosquitto",
    "verify_password",
]
