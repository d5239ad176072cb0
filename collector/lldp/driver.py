"""The LLDP driver: a switch's system group and LLDP-MIB remote table, over SNMP.

``collect`` reports the switch itself (identified like the SNMP driver does, from its system
group) and keeps one observation per LLDP neighbour, which the poller emits after it
(:class:`collector.base.ReportsNeighbours`): phones and codecs whose own SNMP is off still
announce themselves to their switch, so the controller's inventory shows them as devices on the
network, seen via LLDP, not polled. Options are the SNMP driver's (its table switches unused).
"""

from __future__ import annotations

from typing import Any, ClassVar

from collector.errors import BadResponse, Unreachable
from collector.lldp.neighbours import REMOTE_SYSTEMS_DATA, Neighbour, neighbour_id, parse
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
from collector.snmp import oids
from collector.snmp.client import SnmpClient
from collector.snmp.identify import identify
from collector.snmp.options import SnmpOptions
from collector.snmp.values import integer, non_empty, text

_MAX_NEIGHBOURS = 1024


class LldpDriver:
    kind: ClassVar[str] = "lldp"
    options_model: ClassVar[type[SnmpOptions]] = SnmpOptions
    example_options: ClassVar[dict[str, Any]] = {
        "host": "192.0.2.2",
        "port": 161,
        "community": "public",
        "timeout_s": 2.0,
        "retries": 1,
    }

    def __init__(self, device_id: str, options: SnmpOptions) -> None:
        self.device_id = device_id
        self.options = options
        self._client = SnmpClient(options)
        self._neighbours: list[Observation] = []

    async def collect(self) -> Observation:
        observed_at = utcnow()
        self._neighbours = []
        session = await self._client.open()
        try:
            system = await self._client.get_many(session, oids.SYSTEM_GROUP, "system group")
        except BadResponse as err:
            raise Unreachable(str(err)) from err
        if not system:
            raise Unreachable(f"{self._client.target}: the system group is empty")
        errors: list[str] = []
        neighbours: list[Neighbour] = []
        try:
            neighbours = parse(await self._client.walk(session, REMOTE_SYSTEMS_DATA, "LLDP-MIB remote table"))
        except (Unreachable, BadResponse) as err:
            errors.append(str(err)[:1024])
        self._neighbours = [self._neighbour(n, observed_at) for n in neighbours[:_MAX_NEIGHBOURS]]
        sys_descr = text(system.get(oids.SYS_DESCR), 8192) or ""
        sys_object_id = text(system.get(oids.SYS_OBJECT_ID)) or ""
        found = identify(sys_descr, sys_object_id, {})
        ticks = integer(system.get(oids.SYS_UPTIME))
        return Observation(
            device_id=self.device_id,
            driver=self.kind,
            observed_at=observed_at,
            identity=Identity(
                vendor=found.vendor,
                family=found.family,
                model=found.model,
                hostname=non_empty(system.get(oids.SYS_NAME)),
                location=non_empty(system.get(oids.SYS_LOCATION)),
                contact=non_empty(system.get(oids.SYS_CONTACT)),
            ),
            uptime_s=None if ticks is None else ticks / 100,
            metrics={"lldp_neighbours": float(len(neighbours))},
            raw={"sysDescr": sys_descr, "sysObjectID": sys_object_id},
            errors=errors,
        )

    def _neighbour(self, neighbour: Neighbour, observed_at: Any) -> Observation:
        found = identify(neighbour.sys_descr or "", "", {})
        via = f"lldp:{self.device_id}"
        where = f"{self.device_id} ({self.options.host}) local port {neighbour.local_port}"
        raw = {"seen_via": via, "lldpLocalPort": str(neighbour.local_port)}
        for key, value in (
            ("lldpRemSysName", neighbour.sys_name),
            ("lldpRemSysDesc", neighbour.sys_descr),
            ("lldpRemChassisId", neighbour.chassis_id),
            ("lldpRemPortId", neighbour.port_id),
            ("lldpRemPortDesc", neighbour.port_descr),
            ("lldpRemManAddr", neighbour.address),
        ):
            if value:
                raw[key] = value[:8192]
        software = []
        if found.version is not None:
            software.append(SoftwareComponent(name="firmware", version=found.version, scheme=found.scheme))
        is_mac = neighbour.chassis_id is not None and neighbour.chassis_id.count(":") == 5
        return Observation(
            device_id=neighbour_id(neighbour),
            driver=self.kind,
            observed_at=observed_at,
            reachable=False,  # not polled: nothing says whether it would answer
            identity=Identity(
                vendor=found.vendor,
                family=found.family,
                model=found.model,
                macs=[neighbour.chassis_id] if is_mac and neighbour.chassis_id else [],
                hostname=neighbour.sys_name,
            ),
            software=software,
            health=Health(
                status=HealthStatus.UNKNOWN,
                reasons=[
                    HealthReason(
                        code="seen_via_lldp",
                        message=f"seen via LLDP of {where}; not polled",
                        severity=Severity.INFO,
                    )
                ],
            ),
            raw=raw,
        )

    def neighbours(self) -> list[Observation]:
        taken, self._neighbours = self._neighbours, []
        return taken

    async def aclose(self) -> None:
        self._client.forget()
