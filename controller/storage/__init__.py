"""Controller storage: models, Alembic migrations, the store."""

from controller.storage.records import FlushResult, GapRecord, Received, Rejection
from controller.storage.repository import DeviceFilter, Store, create_engine

__all__ = ["DeviceFilter", "FlushResult", "GapRecord", "Received", "Rejection", "Store", "create_engine"]
