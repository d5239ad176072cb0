"""The controller's HTTP side: REST API, /metrics, /healthz and the first fleet page."""

from controller.web.app import make_app
from controller.web.state import AppState

__all__ = ["AppState", "make_app"]
