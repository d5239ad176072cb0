"""The agent's counters, in one prometheus-client registry per service instance.

A registry per instance (not the process-global default) lets tests run several agents in one
process. Labelled children are resolved once here, so a poll costs one ``inc()``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from collector.actions import ActionState
from collector.wire.commands import REFUSAL_CODES

POLL_RESULTS = ("ok", "unreachable", "timeout", "auth_failed", "error")


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        polls = Counter(
            "fernwart_polls",
            "Source polls (one device or a whole tenant) by result",
            ["result"],
            registry=self.registry,
        )
        self.polls = {result: polls.labels(result=result) for result in POLL_RESULTS}
        self.device_errors = Counter(
            "fernwart_device_errors",
            "Per-device errors a source reported (the source's other devices were read)",
            registry=self.registry,
        )
        self.devices_missing = Counter(
            "fernwart_devices_missing",
            "Devices a source listed before and no longer lists (reported down once)",
            registry=self.registry,
        )
        self.source_devices = Gauge(
            "fernwart_source_devices",
            "Devices of each source's latest listing, by state (up, down)",
            ["source", "state"],
            registry=self.registry,
        )
        self.observations = Counter(
            "fernwart_observations", "Observations handed to the outbox", registry=self.registry
        )
        self.outbox_dropped = Counter(
            "fernwart_outbox_dropped",
            "Messages (batches) dropped by the outbox drop policy",
            registry=self.registry,
        )
        self.outbox_store_failed = Counter(
            "fernwart_outbox_store_failed",
            "Messages (batches) not stored: full disk, I/O error, or outbox unavailable",
            registry=self.registry,
        )
        self.outbox_quarantined = Counter(
            "fernwart_outbox_quarantined",
            "Corrupt outbox files renamed aside at open (a new outbox was started)",
            registry=self.registry,
        )
        self.outbox_available = Gauge(
            "fernwart_outbox_available",
            "1 while the outbox file is open, 0 while it could not be opened",
            registry=self.registry,
        )
        self.outbox_rows = Gauge(
            "fernwart_outbox_rows", "Messages waiting in the outbox", registry=self.registry
        )
        self.outbox_bytes = Gauge(
            "fernwart_outbox_bytes", "Bytes of messages waiting in the outbox", registry=self.registry
        )
        self.published = Counter(
            "fernwart_published", "Messages acknowledged by the broker (PUBACK)", registry=self.registry
        )
        self.confirmed = Counter(
            "fernwart_confirmed",
            "Messages the controller confirmed as committed (then deleted from the outbox)",
            registry=self.registry,
        )
        self.resent = Counter(
            "fernwart_resent",
            "Messages published again, not yet confirmed by the controller",
            registry=self.registry,
        )
        self.connects = Counter(
            "fernwart_mqtt_connects", "Successful broker connections", registry=self.registry
        )

        refused = Counter(
            "fernwart_commands_refused",
            "Commands refused, by reason (unsigned, bad_signature, expired, replayed, …)",
            ["reason"],
            registry=self.registry,
        )
        self.commands_refused = {code: refused.labels(reason=code) for code in REFUSAL_CODES}
        executed = Counter(
            "fernwart_commands_executed",
            "Commands executed through a driver, by the action's end state",
            ["state"],
            registry=self.registry,
        )
        self.commands_executed = {state: executed.labels(state=state.value) for state in ActionState}

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (``fernwart_polls_total``, result="ok"); 0 if absent."""
        found = self.registry.get_sample_value(name, labels)
        return found if found is not None else 0.0
