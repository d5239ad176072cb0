"""Prometheus metrics of the controller, on a registry of its own (one per app, so tests don't share)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collector.wire.codec import REASON_CODES
from controller.storage.records import AGENT_MISMATCH, FUTURE_TIMESTAMP, NOT_ENROLLED, STORE_FAILED

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "fernwart_ingest_messages_total", "MQTT messages received, by topic kind", ["kind"], registry=r
        )
        self.rejected = Counter(
            "fernwart_ingest_rejected_total",
            "Messages stored as dead letters, by reason",
            ["reason"],
            registry=r,
        )
        for reason in (*REASON_CODES, AGENT_MISMATCH, NOT_ENROLLED, FUTURE_TIMESTAMP, STORE_FAILED):
            self.rejected.labels(reason=reason)
        self.retention_pruned = Counter(
            "fernwart_retention_pruned_total",
            "Rows deleted because they outlived their retention, by table",
            ["table"],
            registry=r,
        )
        self.batches = Counter(
            "fernwart_ingest_batches_total",
            "Observation batches by outcome (stored, duplicate); late ones are also stored",
            ["result"],
            registry=r,
        )
        for result in ("stored", "duplicate", "late"):
            self.batches.labels(result=result)
        self.observations = Counter("fernwart_ingest_observations_total", "Observations stored", registry=r)
        self.gaps = Counter("fernwart_ingest_gaps_total", "Sequence gaps recorded", registry=r)
        self.missing = Counter(
            "fernwart_ingest_missing_messages_total",
            "Messages missing according to recorded gaps",
            registry=r,
        )
        self.gaps_filled = Counter(
            "fernwart_ingest_gap_fills_total", "Late batches that filled part of a recorded gap", registry=r
        )
        self.dead_letters_pruned = Counter(
            "fernwart_ingest_dead_letters_pruned_total",
            "Oldest dead letters deleted beyond [ingest] dead_letter_max_rows",
            registry=r,
        )
        self.flush_seconds = Histogram(
            "fernwart_ingest_flush_seconds", "Duration of one flush transaction", registry=r
        )
        self.flush_messages = Histogram(
            "fernwart_ingest_flush_messages",
            "Messages per flush",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000),
            registry=r,
        )
        self.lag_seconds = Histogram(
            "fernwart_ingest_lag_seconds",
            "From a batch's sent_at to its commit",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "fernwart_ingest_store_errors_total", "Flushes that failed and will be redelivered", registry=r
        )
        self.decode_restarts = Counter(
            "fernwart_ingest_decode_worker_restarts_total",
            "Decode worker pools replaced after a worker died (that flush was decoded inline)",
            registry=r,
        )
        self.acks = Counter(
            "fernwart_ingest_confirmations_total",
            "Batches confirmed to their agents as committed (BatchAck)",
            registry=r,
        )
        self.connected = Gauge("fernwart_mqtt_connected", "1 while connected to the broker", registry=r)
        self.agents_offline = Counter(
            "fernwart_agents_offline_total", "Last wills (offline) received", registry=r
        )
        self.devices_stale = Counter(
            "fernwart_devices_marked_stale_total", "Devices marked stale", registry=r
        )
