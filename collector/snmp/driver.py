"""The SNMP driver: system group, ENTITY-MIB and IF-MIB of one device, identified."""

from __future__ import annotations

from typing import Any, ClassVar

from gufo.snmp import ValueType
from gufo.snmp.aio import SnmpSession

from collector.errors import BadResponse, Unreachable
from collector.model import Identity, Observation, SoftwareComponent, utcnow
from collector.snmp import normalize, oids
from collector.snmp.client import SnmpClient
from collector.snmp.identify import identify
from collector.snmp.options import SnmpOptions
from collector.snmp.values import integer, non_empty, text

_RAW_LIMIT = 8192


class SnmpDriver:
    """Reads one device with one GET of the system group and one GETBULK walk per table.

    Raises Unreachable when the system group gets no answer and AuthFailed when SNMPv3
    credentials are refused. A table that fails or is missing is an entry in
    ``Observation.errors`` (failure) or nothing at all (missing is normal for endpoints).

    Time budget: an unanswered request costs ``(retries + 1) * timeout_s``, and a poll waits out
    at most two of them (the system group, or one table before the rest are skipped): with the
    defaults 2 * 2 * 2 s = 8 s, inside the agent's default poll deadline of 10 s.
    """

    kind: ClassVar[str] = "snmp"
    options_model: ClassVar[type[SnmpOptions]] = SnmpOptions
    example_options: ClassVar[dict[str, Any]] = {
        "host": "192.0.2.10",
        "port": 161,
        "community": "public",
        "timeout_s": 2.0,
        "retries": 1,
    }

    def __init__(self, device_id: str, options: SnmpOptions) -> None:
        self.device_id = device_id
        self.options = options
        self._client = SnmpClient(options)

    async def collect(self) -> Observation:
        observed_at = utcnow()
        session = await self._client.open()
        try:
            system = await self._client.get_many(session, oids.SYSTEM_GROUP, "system group")
        except BadResponse as err:
            # Nothing usable was read: to the poller that is a device it cannot reach.
            raise Unreachable(str(err)) from err
        if not system:
            raise Unreachable(f"{self._client.target}: the system group is empty")
        errors: list[str] = []
        tables = await self._tables(session, errors)
        return self._observation(observed_at, system, tables.get("entity", {}), tables.get("if", {}), errors)

    async def _tables(
        self, session: SnmpSession, errors: list[str]
    ) -> dict[str, dict[int, dict[str, ValueType]]]:
        """Walk the configured tables. A table that fails is an error and the others still count;
        once one goes unanswered the rest are skipped, so a device that stops answering mid-poll
        costs at most two requests' worth of timeouts and retries, not one per table."""
        wanted = []
        if self.options.read_entity:
            wanted.append(("entity", oids.ENT_PHYSICAL_ENTRY, oids.ENT_COLUMNS, "ENTITY-MIB"))
        if self.options.read_interfaces:
            wanted.append(("if", oids.IF_ENTRY, oids.IF_COLUMNS, "IF-MIB ifTable"))
        tables: dict[str, dict[int, dict[str, ValueType]]] = {}
        silent = False
        for key, entry, columns, what in wanted:
            if silent:
                errors.append(f"{self._client.target}: {what}: skipped, the device stopped answering")
                continue
            try:
                varbinds = await self._client.walk(session, entry, what)
            except Unreachable as err:
                errors.append(str(err)[:1024])
                silent = True
                continue
            except BadResponse as err:
                # The device answered the system group: keep what we have (AuthFailed still raises).
                errors.append(str(err)[:1024])
                continue
            tables[key] = normalize.table_rows(entry, columns, varbinds)
        return tables

    def _observation(
        self,
        observed_at: Any,
        system: dict[str, ValueType],
        entity_rows: dict[int, dict[str, ValueType]],
        if_rows: dict[int, dict[str, ValueType]],
        errors: list[str],
    ) -> Observation:
        sys_descr = text(system.get(oids.SYS_DESCR), _RAW_LIMIT) or ""
        sys_object_id = text(system.get(oids.SYS_OBJECT_ID)) or ""
        chassis = normalize.chassis(entity_rows)
        found = identify(sys_descr, sys_object_id, chassis)
        ifaces = normalize.interfaces(if_rows)
        macs = list(dict.fromkeys(i.mac for i in ifaces if i.mac))[:64]
        ticks = integer(system.get(oids.SYS_UPTIME))
        raw = {"sysDescr": sys_descr, "sysObjectID": sys_object_id}
        if ticks is not None:
            raw["sysUpTime"] = str(ticks)
        raw.update({name: value[:_RAW_LIMIT] for name, value in chassis.items()})
        # Which fingerprint matched, or why none did (fields read, whose enterprise number).
        if found.rule is not None:
            raw["fingerprint"] = found.rule
        if found.build is not None:
            raw["build"] = found.build
        if found.reason is not None:
            raw["identification"] = found.reason[:_RAW_LIMIT]
        software = []
        if found.version is not None:
            software.append(SoftwareComponent(name="firmware", version=found.version, scheme=found.scheme))
        return Observation(
            device_id=self.device_id,
            driver=self.kind,
            observed_at=observed_at,
            identity=Identity(
                vendor=found.vendor,
                family=found.family,
                model=found.model,
                serial=found.serial,
                macs=macs,
                hostname=non_empty(system.get(oids.SYS_NAME)),
                location=non_empty(system.get(oids.SYS_LOCATION)),
                contact=non_empty(system.get(oids.SYS_CONTACT)),
            ),
            software=software,
            health=normalize.health(ifaces, errors),
            uptime_s=None if ticks is None else ticks / 100,
            interfaces=ifaces,
            raw=raw,
            errors=errors[:64],
        )

    async def aclose(self) -> None:
        self._client.forget()
