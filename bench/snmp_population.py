"""A population of simulated SNMP devices for benchmarks: net-snmp snmpd on many loopback addresses.

Each device is an address 127.1.X.Y on one UDP port, answering 10 scalars (the system group,
ifNumber, snmpEnableAuthenTraps… as below), a 2-row ifTable (12 columns, 24 varbinds) and a
1-row ENTITY-MIB chassis entry from ``override`` lines. One snmpd serves ~100 addresses: its
``agentAddress`` list is cut at about 2,500 characters. snmpd's own interface and entity
modules are switched off, or it would serve the host's real tables instead of the overrides.
snmpd cannot put a newline into an override string (``\\n`` stays literal), so this population
has one-line sysDescr values; multi-line ones (Room codecs) are in the snmpsim lab recordings.

All devices of one snmpd answer the same values (overrides are per process, not per address).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.net import terminate
from tests.fixtures.snmpd import start_snmpd, write_config

COMMUNITY = "bench-public"
PORT = 16100
SNMP_IN_PKTS = "1.3.6.1.2.1.11.1.0"


def device_overrides(group: int) -> list[tuple[str, str, str]]:
    scalars = [
        ("1.3.6.1.2.1.1.1.0", "octet_str", '"Cisco IP Phone CP-8851, V3, sip88xx.14-2-1MPP0001-272"'),
        ("1.3.6.1.2.1.1.2.0", "object_id", ".1.3.6.1.4.1.9.1.1735"),
        ("1.3.6.1.2.1.1.3.0", "timeticks", str(4_821_130 + group)),
        ("1.3.6.1.2.1.1.4.0", "octet_str", '"it-support@example.invalid"'),
        ("1.3.6.1.2.1.1.5.0", "octet_str", f'"bench-phone-{group:02d}"'),
        ("1.3.6.1.2.1.1.6.0", "octet_str", f'"Bench floor {group}"'),
        ("1.3.6.1.2.1.1.7.0", "integer", "72"),
        ("1.3.6.1.2.1.2.1.0", "integer", "2"),
        ("1.3.6.1.2.1.25.1.1.0", "timeticks", str(4_821_130 + group)),
        ("1.3.6.1.2.1.11.30.0", "integer", "2"),
    ]
    table = []
    for index, (descr, mac, oper) in enumerate(
        (("LAN", "5ca62d0088a1", 1), ("PC", "5ca62d0088a2", 2)), start=1
    ):
        p = "1.3.6.1.2.1.2.2.1"
        table += [
            (f"{p}.1.{index}", "integer", str(index)),
            (f"{p}.2.{index}", "octet_str", f'"{descr}"'),
            (f"{p}.3.{index}", "integer", "6"),
            (f"{p}.4.{index}", "integer", "1500"),
            (f"{p}.5.{index}", "unsigned", "1000000000"),
            (f"{p}.6.{index}", "octet_str", f"0x{mac}"),
            (f"{p}.7.{index}", "integer", "1"),
            (f"{p}.8.{index}", "integer", str(oper)),
            (f"{p}.10.{index}", "counter", str(3_822_019_911 // index)),
            (f"{p}.14.{index}", "counter", "0"),
            (f"{p}.16.{index}", "counter", str(2_911_837_710 // index)),
            (f"{p}.20.{index}", "counter", "0"),
        ]
    e = "1.3.6.1.2.1.47.1.1.1.1"
    entity = [
        (f"{e}.2.1", "octet_str", '"Cisco IP Phone 8851"'),
        (f"{e}.5.1", "integer", "3"),
        (f"{e}.7.1", "octet_str", '"CP-8851"'),
        (f"{e}.10.1", "octet_str", '"sip88xx.14-2-1MPP0001-272"'),
        (f"{e}.11.1", "octet_str", f'"FCH24{group:02d}A0B1"'),
        (f"{e}.12.1", "octet_str", '"Cisco Systems, Inc."'),
        (f"{e}.13.1", "octet_str", '"CP-8851-3PCC"'),
    ]
    return scalars + table + entity


def addresses(count: int) -> list[str]:
    """127.1.X.Y, Y in 1..250: all of 127.0.0.0/8 is loopback on Linux, no set-up needed."""
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(count)]


@dataclass
class Population:
    workdir: Path
    devices: list[str]  # addresses, all on `port`
    port: int = PORT
    community: str = COMMUNITY
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # one address per snmpd, to read its snmpInPkts counter
    heads: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.procs:
            terminate(proc)
        self.procs.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def in_packets(self) -> int:
        """Sum of snmpInPkts over all snmpd processes (each read adds one packet per process)."""
        total = 0
        for head in self.heads:
            out = subprocess.run(
                ["snmpget", "-v2c", "-c", self.community, "-On", "-Oqv", f"{head}:{self.port}", SNMP_IN_PKTS],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout
            total += int(out.strip())
        return total


def start_population(workdir: Path, count: int = 1000, per_snmpd: int = 100, port: int = PORT) -> Population:
    workdir.mkdir(parents=True, exist_ok=True)
    all_addresses = addresses(count)
    population = Population(workdir, all_addresses, port)
    try:
        for group, start in enumerate(range(0, count, per_snmpd)):
            chunk = all_addresses[start : start + per_snmpd]
            gdir = workdir / f"snmpd{group:02d}"
            gdir.mkdir(exist_ok=True)
            config = gdir / "snmpd.conf"
            write_config(config, [f"udp:{a}:{port}" for a in chunk], device_overrides(group), COMMUNITY)
            population.procs.append(start_snmpd(config, gdir, gdir / "snmpd.log"))
            population.heads.append(chunk[0])
    except BaseException:
        population.stop()
        raise
    return population


if __name__ == "__main__":
    import tempfile
    import time

    with tempfile.TemporaryDirectory() as tmp:
        pop = start_population(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
        print(f"{len(pop.devices)} devices on port {pop.port}, snmpd pids {pop.pids}; Ctrl-C stops")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            pop.stop()
