"""The Microsoft driver: Teams Rooms and Teams Android devices of one tenant, via Graph (Intune v1.0,
plus the retired beta teamworkDevice API where the tenant still answers it)."""

from collector.graph.options import GraphOptions
from collector.graph.source import GraphSource

__all__ = ["GraphOptions", "GraphSource"]
