"""Typed application state shared by the handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from controller.metrics import Metrics
from controller.storage import Store


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class AppState:
    store: Store
    metrics: Metrics
    mqtt_connected: Callable[[], bool] = _never


STATE = web.AppKey("state", AppState)
