"""Agent poll benchmark: 1,000 simulated SNMP devices, the fernwart agent vs Prometheus snmp_exporter.

    .venv/bin/python bench/agent_poll.py [--devices 1000] [--rounds 5] [--entity]

Serves the population (bench/snmp_population.py: ~10 net-snmp snmpd on 127.1.X.Y:16100), then
measures, in the same run and against the same devices:

1. snmp_exporter (Debian prometheus-snmp-exporter 0.21), scraped over HTTP with 64 requests in
   flight; its process's CPU time (psutil) and peak RSS (VmHWM).
2. the bare SNMP driver in a child process (no agent around it): 64 polls in flight.
3. the whole agent (`fernwart-agent --config …`: pollers, driver, normalization, outbox,
   MQTT publish to a local mosquitto), with a subscriber counting the observations it publishes.

Every side does the same requests per device: one GET of the system group (7 varbinds) and a
GETBULK (max-repetitions 25) of ifTable (24 varbinds); ``--entity`` adds a walk of ENTITY-MIB
entPhysicalTable on every side. snmpd's own snmpInPkts counters check the requests per poll.
Warm-up round first; figures are for the following rounds only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import aiomqtt
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# bench/ is not a package: put the repository and bench/ on the path before our imports.
from snmp_population import COMMUNITY, Population, start_population  # noqa: E402

from collector.errors import DriverError  # noqa: E402
from collector.snmp import SnmpDriver, SnmpOptions  # noqa: E402

EXPORTER = shutil.which("prometheus-snmp-exporter") or "/usr/bin/prometheus-snmp-exporter"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
CONCURRENCY = 64
SYSTEM_GROUP = [f"1.3.6.1.2.1.1.{n}.0" for n in range(1, 8)]
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
ENT_ENTRY = "1.3.6.1.2.1.47.1.1.1.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, kind)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_tcp(port: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def snmpd_cpu(pop: Population) -> float:
    return sum(cpu_s(psutil.Process(pid)) for pid in pop.pids)


# --------------------------------------------------------------------------------------------
# 1. snmp_exporter


def exporter_config(entity: bool) -> str:
    metrics = [
        ("sysDescr", "1.3.6.1.2.1.1.1", "DisplayString", False),
        ("sysUpTime", "1.3.6.1.2.1.1.3", "gauge", False),
        ("sysName", "1.3.6.1.2.1.1.5", "DisplayString", False),
        ("ifDescr", "1.3.6.1.2.1.2.2.1.2", "DisplayString", True),
        ("ifType", "1.3.6.1.2.1.2.2.1.3", "gauge", True),
        ("ifMtu", "1.3.6.1.2.1.2.2.1.4", "gauge", True),
        ("ifSpeed", "1.3.6.1.2.1.2.2.1.5", "gauge", True),
        ("ifPhysAddress", "1.3.6.1.2.1.2.2.1.6", "PhysAddress48", True),
        ("ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", "gauge", True),
        ("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", "gauge", True),
        ("ifInOctets", "1.3.6.1.2.1.2.2.1.10", "counter", True),
        ("ifInErrors", "1.3.6.1.2.1.2.2.1.14", "counter", True),
        ("ifOutOctets", "1.3.6.1.2.1.2.2.1.16", "counter", True),
        ("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", "counter", True),
    ]
    lines = [
        "bench:",
        "  version: 2",
        "  auth:",  # Debian's 0.21: auth inside the module (0.23+ wants top-level auths:)
        f"    community: {COMMUNITY}",
        "  max_repetitions: 25",
        "  retries: 1",
        "  timeout: 2s",
        "  get:",
        *[f"    - {oid}" for oid in SYSTEM_GROUP],
        "  walk:",
        f"    - {IF_ENTRY}",
    ]
    if entity:
        lines.append(f"    - {ENT_ENTRY}")
        metrics += [
            ("entPhysicalSoftwareRev", f"{ENT_ENTRY}.10", "DisplayString", "ent"),
            ("entPhysicalSerialNum", f"{ENT_ENTRY}.11", "DisplayString", "ent"),
            ("entPhysicalModelName", f"{ENT_ENTRY}.13", "DisplayString", "ent"),
        ]
    lines.append("  metrics:")
    for name, oid, kind, indexed in metrics:
        lines += [f"    - name: {name}", f"      oid: {oid}", f"      type: {kind}"]
        if indexed:
            label = "entPhysicalIndex" if indexed == "ent" else "ifIndex"
            lines += ["      indexes:", f"        - labelname: {label}", "          type: gauge"]
    return "\n".join(lines) + "\n"


async def scrape_one(session, port: int, pop: Population, address: str) -> bool:
    url = f"http://127.0.0.1:{port}/snmp"
    params = {"module": "bench", "target": f"{address}:{pop.port}"}
    try:
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=20)) as resp:
            body = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return False
    return resp.status == 200 and "ifOperStatus{" in body


async def scrape_saturated(session, port: int, pop: Population, rounds: int) -> int:
    """Every device once per round, CONCURRENCY scrapes in flight: as fast as the exporter goes."""
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(address: str) -> bool:
        async with sem:
            return await scrape_one(session, port, pop, address)

    ok = 0
    for _ in range(rounds):
        ok += sum(await asyncio.gather(*(one(a) for a in pop.devices)))
    return ok


async def scrape_paced(session, port: int, pop: Population, rounds: int, interval_s: float) -> int:
    """Each device every interval_s from a random offset, as Prometheus (and the agent) spread them."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def device(address: str) -> int:
        due = start + random.uniform(0, interval_s)
        ok = 0
        for _ in range(rounds):
            await asyncio.sleep(max(0.0, due - loop.time()))
            ok += await scrape_one(session, port, pop, address)
            due += interval_s
        return ok

    return sum(await asyncio.gather(*(device(a) for a in pop.devices)))


async def measure_exporter(
    pop: Population, workdir: Path, rounds: int, entity: bool, interval_s: float
) -> dict[str, dict[str, float]]:
    """The exporter saturated (64 scrapes in flight) and paced (every device every interval_s)."""
    config = workdir / "snmp.yml"
    config.write_text(exporter_config(entity))
    port = free_port()
    with (workdir / "exporter.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - start-up, outside the measured window
            [EXPORTER, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    results: dict[str, dict[str, float]] = {}
    try:
        wait_tcp(port)
        ps = psutil.Process(proc.pid)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            warm = await scrape_saturated(session, port, pop, 1)
            if warm != len(pop.devices):
                raise RuntimeError(
                    f"snmp_exporter warm-up: {warm}/{len(pop.devices)} scrapes ok; see {workdir}"
                )
            for mode, scrape in (
                ("saturated", lambda: scrape_saturated(session, port, pop, rounds)),
                ("paced", lambda: scrape_paced(session, port, pop, rounds, interval_s)),
            ):
                packets0, snmpd0 = pop.in_packets(), snmpd_cpu(pop)
                cpu0, t0 = cpu_s(ps), time.monotonic()
                ok = await scrape()
                elapsed, cpu1 = time.monotonic() - t0, cpu_s(ps)
                snmpd1, packets1 = snmpd_cpu(pop), pop.in_packets()
                polls = rounds * len(pop.devices)
                results[mode] = {
                    "polls": polls,
                    "ok": ok,
                    "devices_per_s": polls / elapsed,
                    "cpu_s_per_1000": (cpu1 - cpu0) / polls * 1000,
                    "peak_rss_mb": peak_rss_mb(proc.pid),
                    "requests_per_poll": (packets1 - packets0 - len(pop.heads)) / polls,
                    "snmpd_cpu_s_per_1000": (snmpd1 - snmpd0) / polls * 1000,
                }
        return results
    finally:
        stop(proc)


# --------------------------------------------------------------------------------------------
# 2. the bare driver, in a child process of its own (so its RSS is the driver's)


async def bare_child(args: argparse.Namespace) -> None:
    addresses = args.addresses.split(",")
    drivers = [
        SnmpDriver(
            f"bench-{i:04d}",
            SnmpOptions(
                host=a, port=args.port, community=COMMUNITY, timeout_s=2, retries=1, read_entity=args.entity
            ),
        )
        for i, a in enumerate(addresses)
    ]
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(driver: SnmpDriver) -> bool:
        async with sem:
            try:
                obs = await driver.collect()
            except DriverError:
                return False
            return not obs.errors and len(obs.interfaces) == 2

    async def round_() -> int:
        return sum(await asyncio.gather(*(one(d) for d in drivers)))

    warm = await round_()
    sys.stdout.write(json.dumps({"event": "warm", "ok": warm}) + "\n")
    sys.stdout.flush()
    sys.stdin.readline()  # the parent reads snmpInPkts, then lets us go
    usage0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    ok = 0
    for _ in range(args.rounds):
        ok += await round_()
    elapsed, usage1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    polls = args.rounds * len(drivers)
    result = {
        "event": "done",
        "polls": polls,
        "ok": ok,
        "devices_per_s": polls / elapsed,
        "cpu_s_per_1000": cpu / polls * 1000,
        "peak_rss_mb": peak_rss_mb(os.getpid()),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def measure_bare(pop: Population, rounds: int, entity: bool) -> dict[str, float]:
    argv = [
        sys.executable,
        __file__,
        "--bare-child",
        f"--addresses={','.join(pop.devices)}",
        f"--port={pop.port}",
        f"--rounds={rounds}",
    ] + (["--entity"] if entity else [])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        warm = json.loads(proc.stdout.readline())
        if warm.get("ok") != len(pop.devices):
            raise RuntimeError(f"bare driver warm-up: {warm}")
        packets0, snmpd0 = pop.in_packets(), snmpd_cpu(pop)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result: dict[str, float] = json.loads(proc.stdout.readline())
        snmpd1, packets1 = snmpd_cpu(pop), pop.in_packets()
        result["requests_per_poll"] = (packets1 - packets0 - len(pop.heads)) / result["polls"]
        result["snmpd_cpu_s_per_1000"] = (snmpd1 - snmpd0) / result["polls"] * 1000
        proc.wait(30)
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------------------------
# 3. the whole agent


def agent_config(pop: Population, workdir: Path, mqtt_port: int, interval_s: float, entity: bool) -> Path:
    lines = [
        'site_id = "bench"',
        'agent_id = "bench-agent"',
        'log_level = "info"',
        "",
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {mqtt_port}",
        'prefix = "fwbench/v1"',
        "",
        "[outbox]",
        f'path = "{workdir / "outbox.db"}"',
        "",
        "[poll]",
        f"max_concurrency = {CONCURRENCY}",
        f"default_interval_s = {interval_s}",
        "timeout_s = 10.0",
        "",
    ]
    for i, address in enumerate(pop.devices):
        lines += [
            "[[devices]]",
            f'id = "bench-{i:04d}"',
            'kind = "snmp"',
            "[devices.options]",
            f'host = "{address}"',
            f"port = {pop.port}",
            f'community = "{COMMUNITY}"',
            "timeout_s = 2.0",
            "retries = 1",
            f"read_entity = {'true' if entity else 'false'}",
            "",
        ]
    path = workdir / "agent.toml"
    path.write_text("\n".join(lines))
    return path


class ObservationCounter:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.messages = 0

    @property
    def total(self) -> int:
        return self.ok + self.failed

    async def run(self, port: int, topic: str, ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier="fwbench-counter") as client:
            await client.subscribe(topic, qos=1)
            ready.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                batch = json.loads(payload)
                self.messages += 1
                for obs in batch["observations"]:
                    if obs.get("reachable", True) and len(obs.get("interfaces", [])) == 2:
                        self.ok += 1
                    else:
                        self.failed += 1


async def wait_until(predicate, timeout_s: float) -> None:
    # Polls a counter another task updates; an Event per increment would cost more than it saves.
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def measure_agent(
    pop: Population, workdir: Path, rounds: int, interval_s: float, entity: bool, profile: bool = False
) -> dict[str, float]:
    mqtt_port = free_port()
    (workdir / "mosquitto").mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto" / "mosquitto.conf"
    conf.write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
    )
    broker = subprocess.Popen(  # noqa: ASYNC220 - start-up, outside the measured window
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL
    )
    agent: subprocess.Popen[bytes] | None = None
    counter = ObservationCounter()
    try:
        wait_tcp(mqtt_port)
        ready = asyncio.Event()
        counting = asyncio.create_task(counter.run(mqtt_port, "fwbench/v1/bench/obs", ready))
        await asyncio.wait_for(ready.wait(), 10)
        config = agent_config(pop, workdir, mqtt_port, interval_s, entity)
        agent_bin = Path(sys.executable).parent / "fernwart-agent"
        command = [str(agent_bin)] if agent_bin.exists() else [sys.executable, "-m", "agent"]
        if profile:
            command = [sys.executable, "-m", "cProfile", "-o", str(workdir / "agent.prof"), "-m", "agent"]
        with (workdir / "agent.log").open("wb") as log:
            agent = subprocess.Popen(  # noqa: ASYNC220 - start-up, outside the measured window
                [*command, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        ps = psutil.Process(agent.pid)
        devices = len(pop.devices)
        # Warm-up: the first polls are spread over one interval; wait for one full round.
        await wait_until(lambda: counter.total >= devices or agent.poll() is not None, interval_s * 3 + 60)
        if agent.poll() is not None:
            raise RuntimeError(f"agent exited with {agent.returncode}; see {workdir / 'agent.log'}")
        packets0, snmpd0 = pop.in_packets(), snmpd_cpu(pop)
        cpu0, n0, ok0, t0 = cpu_s(ps), counter.total, counter.ok, time.monotonic()
        await wait_until(lambda: counter.total >= n0 + rounds * devices, rounds * interval_s * 4 + 120)
        cpu1, n1, ok1, t1 = cpu_s(ps), counter.total, counter.ok, time.monotonic()
        snmpd1, packets1 = snmpd_cpu(pop), pop.in_packets()
        rss = peak_rss_mb(agent.pid)
        polls = n1 - n0
        result = {
            "polls": polls,
            "ok": ok1 - ok0,
            "devices_per_s": polls / (t1 - t0),
            "cpu_s_per_1000": (cpu1 - cpu0) / polls * 1000,
            "peak_rss_mb": rss,
            "requests_per_poll": (packets1 - packets0 - len(pop.heads)) / polls,
            "snmpd_cpu_s_per_1000": (snmpd1 - snmpd0) / polls * 1000,
            "mqtt_messages": counter.messages,
        }
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await counting
        return result
    finally:
        if agent is not None:
            stop(agent)
        stop(broker)


# --------------------------------------------------------------------------------------------


def report(results: dict[str, dict[str, float]], devices: int, rounds: int, entity: bool) -> None:
    refs = {name.split(", ", 1)[1]: r for name, r in results.items() if name.startswith("snmp_exporter, ")}
    requests = "GET system group + GETBULK ifTable" + (" + GETBULK entPhysicalTable" if entity else "")
    print(f"\n{devices} devices x {rounds} rounds after a warm-up round; per poll: {requests}")
    print("saturated: as fast as it goes (64 in flight); paced: every device once per interval, spread")
    header = (
        f"{'poller':38} {'devices/s':>10} {'CPU s/1000 polls':>17} {'x exporter':>11} "
        f"{'peak RSS MB':>12} {'req/poll':>9} {'ok':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ref = refs.get(name.split(", ", 1)[-1])
        ratio = r["cpu_s_per_1000"] / ref["cpu_s_per_1000"] if ref else float("nan")
        print(
            f"{name:38} {r['devices_per_s']:10.0f} {r['cpu_s_per_1000']:17.3f} {ratio:11.2f} "
            f"{r['peak_rss_mb']:12.1f} {r['requests_per_poll']:9.2f} {int(r['ok']):>5}/{int(r['polls'])}"
        )
    snmpd = ", ".join(f"{n} {r['snmpd_cpu_s_per_1000']:.2f}" for n, r in results.items())
    print(f"snmpd (responder) CPU s per 1000 polls during each run: {snmpd}")
    print(json.dumps(results, indent=1, sort_keys=True))


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fwbench-"))
    pop = start_population(workdir / "population", args.devices)
    paced = f"paced {args.devices / args.interval:.0f}/s"
    results: dict[str, dict[str, float]] = {}
    try:
        if "exporter" in args.only:
            exporter = await measure_exporter(pop, workdir, args.rounds, args.entity, args.interval)
            results["snmp_exporter, saturated"] = exporter["saturated"]
        if "bare" in args.only:
            results["SNMP driver alone, saturated"] = await asyncio.to_thread(
                measure_bare, pop, args.rounds, args.entity
            )
        if "agent" in args.only:
            # An interval far below what 1,000 devices need: the agent polls as fast as it can.
            results["fernwart-agent, saturated"] = await measure_agent(
                pop,
                workdir / "agent-saturated",
                args.rounds,
                args.devices / 10_000,
                args.entity,
                args.profile,
            )
        if "exporter" in args.only:
            results[f"snmp_exporter, {paced}"] = exporter["paced"]
        if "agent" in args.only:
            results[f"fernwart-agent, {paced}"] = await measure_agent(
                pop, workdir / "agent-paced", args.rounds, args.interval, args.entity, args.profile
            )
    finally:
        pop.stop()
    report(results, args.devices, args.rounds, args.entity)
    if not (args.keep or args.profile):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="measured polls per device (after a warm-up)")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="interval of the paced runs, s (default 1: 1,000 polls/s)"
    )
    parser.add_argument("--entity", action="store_true", help="also walk ENTITY-MIB on every side")
    parser.add_argument(
        "--only", nargs="+", default=["exporter", "bare", "agent"], choices=["exporter", "bare", "agent"]
    )
    parser.add_argument(
        "--profile", action="store_true", help="run the agent under cProfile (implies --keep)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        asyncio.run(bare_child(args))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
