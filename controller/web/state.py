"""Typed application state shared by the handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from controller.metrics import Metrics
from controller.settings import HttpSettings
from controller.storage import Store

if TYPE_CHECKING:
    from controller.matching import MatchingService


def _never() -> bool:
    return False


def _default_tenant(_site: str) -> str:
    return "default"


@dataclass(frozen=True, slots=True)
class AppState:
    store: Store
    metrics: Metrics
    mqtt_connected: Callable[[], bool] = _never
    matching: MatchingService | None = None  # the advisory catalog; its endpoints answer 503 without it
    http: HttpSettings = field(default_factory=HttpSettings)
    tenant_of: Callable[[str], str] = _default_tenant


STATE = web.AppKey("state", AppState)
