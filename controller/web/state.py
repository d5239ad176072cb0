"""Typed application state shared by the handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from controller.metrics import Metrics
from controller.storage import Store

if TYPE_CHECKING:
    from controller.matching import MatchingService


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class AppState:
    store: Store
    metrics: Metrics
    mqtt_connected: Callable[[], bool] = _never
    matching: MatchingService | None = None  # the advisory catalog; its endpoints answer 503 without it


STATE = web.AppKey("state", AppState)
