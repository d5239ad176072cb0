"""A small simulated site for ``fernwart discover``: one snmpsim per loopback address.

127.0.20.0/29 on one UDP port, every device answering the same community:

- 127.0.20.1 ber-sw-acc-01, a Catalyst 9200L whose LLDP-MIB remote table names the Room Kit
  Pro, a Cisco 8851 (127.0.20.5), a Poly CCX 500 (127.0.20.6) and a Yealink T54W (127.0.20.9,
  outside the /29); the three phones have SNMP off, so only LLDP finds them
- 127.0.20.2 ber-konf-2-12 (Room Kit Pro) and 127.0.20.3 ham-desk-4-07 (Desk Pro) answer SNMP
- 127.0.20.4 has nothing listening

snmpsim 1.2.2 cannot pick a recording by the endpoint a v2c request arrived on (the community's
context is a hash its transport lookup never matches), hence one process per address.
``python -m lab.site --port 16100 --community public`` serves it until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.devices import RECORDINGS
from lab.snmpsim import SnmpSim, free_udp_port, start_snmpsim

CIDR = "127.0.20.0/29"
SWITCH = "127.0.20.1"
ANSWERING = {
    SWITCH: "cisco-c9200l-switch",
    "127.0.20.2": "cisco-roomkitpro-roomos11",
    "127.0.20.3": "cisco-deskpro-roomos11",
}
SILENT = "127.0.20.4"
LLDP_ONLY = {
    "127.0.20.5": "sep5ca62d0088a1",
    "127.0.20.6": "poly-ccx500-b1c500",
    "127.0.20.9": "yealink-t54w-c3d7e8",
}


@contextlib.contextmanager
def running_site(community: str, port: int | None = None) -> Iterator[list[SnmpSim]]:
    """Start the site's snmpsim processes (in parallel) and stop them, by PID, on exit."""
    port = port or free_udp_port(SWITCH)
    workdir = Path(tempfile.mkdtemp(prefix="fernwart-site-"))
    sims: list[SnmpSim] = []

    def start(address: str) -> SnmpSim:
        data_dir = workdir / address
        data_dir.mkdir()
        shutil.copy(RECORDINGS / f"{ANSWERING[address]}.snmprec", data_dir / f"{community}.snmprec")
        sim = start_snmpsim(port, host=address, data_dir=data_dir, probe_community=community)
        sims.append(sim)
        return sim

    try:
        with ThreadPoolExecutor(len(ANSWERING)) as pool:
            started = list(pool.map(start, ANSWERING))
        yield started
    finally:
        for sim in sims:
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.site", description=__doc__)
    parser.add_argument("--port", type=int, default=16100)
    parser.add_argument("--community", default="public")
    args = parser.parse_args(argv)
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with running_site(args.community, args.port) as sims:
        for sim in sims:
            sys.stdout.write(f"snmpsim pid {sim.pid} on {sim.host}:{sim.port}\n")
        sys.stdout.write(f"try: fernwart discover --cidr {CIDR} --port {args.port} --community …\n")
        sys.stdout.flush()
        while not stop and all(sim.proc.poll() is None for sim in sims):
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
