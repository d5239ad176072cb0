"""Controller storage: models, Alembic migrations, the store."""

from controller.storage.reads import DeviceFilter
from controller.storage.records import FlushResult, GapRecord, Received, Rejection
from controller.storage.repository import Store, create_engine

__all__ = ["DeviceFilter", "FlushResult", "GapRecord", "Received", "Rejection", "Store", "create_engine"]
