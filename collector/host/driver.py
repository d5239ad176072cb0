"""The host driver: the agent host's own CPU, memory, disks and uptime (psutil)."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from typing import Any, ClassVar

import psutil

from collector.host.options import HostOptions
from collector.model import (
    Health,
    HealthReason,
    HealthStatus,
    Identity,
    Observation,
    Severity,
    SoftwareComponent,
    utcnow,
)
from firmware_catalog.vocabulary import FAMILIES


class HostDriver:
    """Reads the machine it runs on. CPU use is measured between two collects (the first
    collect measures since the driver was created), never by sleeping inside collect."""

    kind: ClassVar[str] = "host"
    options_model: ClassVar[type[HostOptions]] = HostOptions
    example_options: ClassVar[dict[str, Any]] = {
        "disk_paths": ["/", "/var/lib/fernwart"],
        "disk_warn_ratio": 0.9,
    }

    def __init__(self, device_id: str, options: HostOptions) -> None:
        self.device_id = device_id
        self.options = options
        self._cpu_before = psutil.cpu_times()

    async def collect(self) -> Observation:
        return await asyncio.to_thread(self._collect)

    def _cpu_busy_ratio(self) -> float:
        now = psutil.cpu_times()
        before, self._cpu_before = self._cpu_before, now
        total = sum(now) - sum(before)
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
        return 0.0 if total <= 0 else max(0.0, min(1.0, 1.0 - idle / total))

    def _collect(self) -> Observation:
        observed_at = utcnow()
        memory = psutil.virtual_memory()
        load1, load5, _ = os.getloadavg()
        metrics: dict[str, float] = {
            "cpu_busy_ratio": round(self._cpu_busy_ratio(), 4),
            "cpu_count": float(psutil.cpu_count() or 0),
            "load1": load1,
            "load5": load5,
            "memory_total_bytes": float(memory.total),
            "memory_available_bytes": float(memory.available),
            "memory_used_ratio": round(1 - memory.available / memory.total, 4) if memory.total else 0.0,
        }
        reasons: list[HealthReason] = []
        errors: list[str] = []
        for path in self.options.disk_paths:
            try:
                usage = psutil.disk_usage(path)
            except OSError as err:
                errors.append(f"disk {path}: {err}"[:1024])
                continue
            ratio = usage.used / usage.total if usage.total else 0.0
            metrics[f"disk_used_ratio:{path}"[:64]] = round(ratio, 4)
            metrics[f"disk_free_bytes:{path}"[:64]] = float(usage.free)
            if ratio >= self.options.disk_warn_ratio:
                reasons.append(
                    HealthReason(
                        code="disk_full", message=f"{path} is {ratio:.0%} full", severity=Severity.WARNING
                    )
                )
        if metrics["memory_used_ratio"] >= self.options.memory_warn_ratio:
            reasons.append(
                HealthReason(
                    code="memory_low",
                    message=f"memory {metrics['memory_used_ratio']:.0%} used",
                    severity=Severity.WARNING,
                )
            )
        uname = platform.uname()
        return Observation(
            device_id=self.device_id,
            driver=self.kind,
            observed_at=observed_at,
            identity=Identity(
                vendor="host",
                # A family the catalog knows (firmware_catalog.vocabulary): linux, darwin, windows, else host.
                family=uname.system.lower() if uname.system.lower() in FAMILIES else "host",
                model=uname.machine or "unknown",
                hostname=socket.gethostname(),
            ),
            software=[
                SoftwareComponent(name="os", version=f"{uname.system} {uname.release}", scheme="kernel"),
                SoftwareComponent(name="python", version=platform.python_version(), scheme="semver"),
            ],
            health=Health(status=HealthStatus.DEGRADED if reasons else HealthStatus.OK, reasons=reasons),
            uptime_s=max(0.0, time.time() - psutil.boot_time()),
            metrics=metrics,
            errors=errors,
        )

    async def aclose(self) -> None:
        return None
