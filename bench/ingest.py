"""Ingest benchmark: simulated agents → Mosquitto → controller → SQLite / PostgreSQL.

    .venv/bin/python bench/ingest.py [--observations 400000] [--rate 20000] [--backends sqlite,postgres]

For each backend it starts a Mosquitto on a free port, the controller as a subprocess with its
decode workers (and, for PostgreSQL, its own server via initdb in a temporary directory), a raw
``mosquitto_sub`` on the same stream (alone, first), and a publisher process with simulated agents
sending ObservationBatches of 40 observations of ~620 bytes at QoS 1, as fast as the broker takes
them or at ``--rate`` observations/s. The publisher writes MQTT packets to its sockets itself
(:class:`RawPublisher`), so that the load generator takes little of the CPU that the measured
processes share. It prints the sustained rate of stored observations (first publish → last
commit), the publish → commit latency of each batch (p50, p99 over the whole run and p99 after the
first ``--warmup-s`` seconds, from sent_at and batches.stored_at), the controller's CPU per
observation (its workers included), the PostgreSQL server's, and, beside it, the rate
mosquitto_sub reached on the same stream. ``--pg-statements N`` prints the server's N costliest
statements of the run (pg_stat_statements); ``--dump-latency PREFIX`` writes each batch's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.model import Health, HealthStatus, Identity, Observation, SoftwareComponent  # noqa: E402
from collector.wire import ObservationBatch, encode  # noqa: E402
from controller.storage import Store, enrollment  # noqa: E402
from controller.storage import models as m  # noqa: E402

MARKER = datetime(1999, 9, 9, 9, 9, 9, 90909, tzinfo=UTC)
MARKER_TEXT = b"1999-09-09T09:09:09.090909Z"
# observed_at too is stamped when the message is sent, as an agent's observations are seconds
# old when it sends them: built minutes before (the payloads are built up front), they passed the
# controller's stale limit during long runs and measured the stale marker, not ingest.
OBSERVED = datetime(1999, 9, 9, 9, 9, 9, 80808, tzinfo=UTC)
OBSERVED_TEXT = b"1999-09-09T09:09:09.080808Z"


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_tcp(port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- servers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def mosquitto(workdir: Path):
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n"
    )
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)])
    try:
        wait_tcp(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise SystemExit(f"{name} not found")
    return str(found)


@contextlib.contextmanager
def postgres(extra_options: str = ""):
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="fernwart-bench-pg-"))
    (base / "sock").mkdir()
    if prefix:
        owner = pwd.getpwnam("postgres")
        for path in (base, base / "sock"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    data = base / "data"
    subprocess.run(
        [*prefix, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=base,
    )
    port = free_port()
    # Durable commits by default (fsync on, synchronous_commit on): the figures are for a real setup.
    options = (
        f"-p {port} -k {base}/sock -c listen_addresses=127.0.0.1 -c shared_buffers=256MB {extra_options}"
    )
    pg_ctl = _pg_bin("pg_ctl")
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=base,
    )
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", postmaster
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            cwd=base,
        )
        if os.environ.get("FW_PGLOG"):
            shutil.copy(base / "log", os.environ["FW_PGLOG"])
        shutil.rmtree(base, ignore_errors=True)


# --- simulated agents -------------------------------------------------------------------------


def observation(agent: int, device: int) -> Observation:
    return Observation(
        device_id=f"room-{device:04}",
        driver="snmp",
        observed_at=OBSERVED,
        identity=Identity(
            vendor="cisco",
            family="roomos",
            model="Room Kit Pro",
            serial=f"FOC{agent:03}{device:05}",
            macs=["00:11:22:33:44:55"],
            hostname=f"room-{device:04}.site-{agent}.example.net",
            location="Building 4, floor 2",
        ),
        software=[SoftwareComponent(name="firmware", version="ce11.14.2.3", scheme="roomos")],
        health=Health(status=HealthStatus.OK),
        uptime_s=123456.0,
        metrics={"cpu_pct": 12.5, "mem_pct": 40.1, "temp_c": 41.0, "calls": 1.0},
        raw={"sysDescr": "Cisco Codec Soft Release ce11.14.2.3 MainBoard"},
    )


def build_payloads(agents: int, batches_per_agent: int, per_batch: int) -> list[tuple[str, list[bytes]]]:
    out = []
    for a in range(agents):
        site = f"site-{a}"
        payloads = []
        for seq in range(batches_per_agent):
            obs = [observation(a, (seq * per_batch + k) % 500) for k in range(per_batch)]
            batch = ObservationBatch(
                site_id=site,
                agent_id=f"agent-{a}",
                sent_at=MARKER,
                batch_id=uuid.uuid4(),
                boot=1,
                seq=seq,
                observations=obs,
            )
            payload = encode(batch)
            assert payload.count(MARKER_TEXT) == 1
            assert payload.count(OBSERVED_TEXT) == per_batch
            payloads.append(payload)
        out.append((site, payloads))
    return out


class RawPublisher:
    """One simulated agent's MQTT 3.1.1 connection, QoS 1, written straight to a socket.

    The load generator must leave the CPU to what is measured: paho-mqtt, a pure-Python client,
    took 0.4 ms of CPU per 24 KiB message (a fifth of a core at 500 messages/s, on the same two
    cores as the controller, its database and the broker). This writes each PUBLISH with one
    ``sendmsg`` (header and payload, no copy) and counts the PUBACKs on a thread; at most
    ``inflight`` messages are unacknowledged, as paho's ``max_inflight_messages_set`` did. Packet
    formats: MQTT 3.1.1, sections 3.1-3.4.
    """

    def __init__(self, port: int, client_id: str, inflight: int = 200) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        name = client_id.encode()
        # CONNECT: protocol "MQTT" level 4, clean session, keep-alive 0 (off), the client id.
        body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(name).to_bytes(2, "big") + name
        self._sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        connack = self._read(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise SystemExit(f"broker refused {client_id}: CONNACK {connack.hex()}")
        self._window = threading.Semaphore(inflight)
        self._next_id = 0
        self.sent = 0
        self.acked = 0
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                head = self._read(2)
                if head[0] >> 4 != 4 or head[1] != 2:
                    raise SystemExit(f"unexpected packet from the broker: {head.hex()}")
                self._read(2)  # the packet id; the broker acknowledges in order
                self.acked += 1
                self._window.release()

    def publish(self, topic: bytes, payload: bytes) -> None:
        self._window.acquire()
        self._next_id = self._next_id % 65535 + 1
        variable = len(topic).to_bytes(2, "big") + topic + self._next_id.to_bytes(2, "big")
        header = b"\x32" + _remaining_length(len(variable) + len(payload)) + variable  # QoS 1
        if self._sock.sendmsg([header, payload]) < len(header) + len(payload):
            raise SystemExit("short write to the broker")  # a blocking socket sends it all
        self.sent += 1

    def close(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        self._sock.close()


def _remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        size, digit = divmod(size, 128)
        out.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(out)


def publish_process(
    port: int, prefix: str, work: list[tuple[str, list[bytes]]], ready, go, rate_msgs: float
) -> None:
    """Publish every payload at QoS 1, round-robin over the agents; ``rate_msgs`` > 0 paces it.
    Each message is stamped (sent_at, observed_at) just before it is written to the socket."""
    clients = [RawPublisher(port, f"bench-agent-{i}-{uuid.uuid4().hex[:4]}") for i in range(len(work))]
    topics = [f"{prefix}/{site}/obs".encode() for site, _ in work]
    ready.set()
    go.wait()
    longest = max(len(payloads) for _, payloads in work)
    start, sent = time.monotonic(), 0
    for seq in range(longest):
        for (_, payloads), client, topic in zip(work, clients, topics, strict=True):
            if seq < len(payloads):
                if rate_msgs > 0:
                    ahead = sent / rate_msgs - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
                sent += 1
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
                client.publish(
                    topic, payloads[seq].replace(MARKER_TEXT, stamp, 1).replace(OBSERVED_TEXT, stamp)
                )
    for client in clients:
        client.close()


# --- one run ----------------------------------------------------------------------------------


def mosquitto_sub_rate(
    port: int, prefix: str, count: int, result: dict[str, float]
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            f"{prefix}/+/obs",
            "-q",
            "1",
            "-C",
            str(count),
            "-F",
            ".",
        ],
        stdout=subprocess.PIPE,
    )

    def read() -> None:
        assert proc.stdout is not None
        first = None
        n = 0
        for _line in proc.stdout:
            n += 1
            if first is None:
                first = time.monotonic()
        last = time.monotonic()
        if first is not None and n > 1:
            result["messages"] = n
            result["rate"] = (n - 1) / (last - first)

    threading.Thread(target=read, daemon=True).start()
    return proc


async def raw_rate(args: argparse.Namespace, work, workdir: Path) -> float:
    """The rate ``mosquitto_sub`` receives the same stream at, alone (no controller beside it)."""
    with mosquitto(workdir) as port:
        prefix = f"bench-raw-{uuid.uuid4().hex[:6]}/v1"
        total = sum(len(p) for _, p in work)
        result: dict[str, float] = {}
        sub = mosquitto_sub_rate(port, prefix, total, result)
        await asyncio.sleep(0.5)  # let it subscribe
        ctx = multiprocessing.get_context("fork")
        ready, go = ctx.Event(), ctx.Event()
        publisher = ctx.Process(
            target=publish_process, args=(port, prefix, work, ready, go, args.rate / args.per_batch)
        )
        publisher.start()
        ready.wait(60)
        go.set()
        await asyncio.to_thread(sub.wait, args.timeout)
        publisher.join(60)
        await asyncio.sleep(0.2)  # the reader thread records the last line
        return result.get("rate", float("nan"))


def _samples(text: str) -> dict[str, float]:
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def _metrics(session: aiohttp.ClientSession, http_port: int) -> dict[str, float]:
    async with session.get(f"http://127.0.0.1:{http_port}/metrics") as resp:
        return _samples(await resp.text())


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of process ``pid`` and its children, living and exited (0 for None): the
    controller with its decode workers, the PostgreSQL server with its backends."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


_PG_STATEMENTS = """
SELECT calls, total_exec_time, rows, wal_bytes, regexp_replace(query, '\\s+', ' ', 'g') AS query
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT :n
"""


async def print_pg_statements(url: str, limit: int) -> None:
    """The server's ``limit`` costliest statements of the run (needs pg_stat_statements loaded)."""
    async with Store.open(url) as store, store.engine.connect() as conn:
        await conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        rows = (await conn.execute(sa.text(_PG_STATEMENTS), {"n": limit})).all()
    print(f"{'calls':>8} {'total ms':>10} {'mean ms':>8} {'rows':>9} {'WAL MiB':>8}  statement")
    for row in rows:
        print(
            f"{row.calls:8} {row.total_exec_time:10.0f} {row.total_exec_time / row.calls:8.2f} "
            f"{row.rows:9} {int(row.wal_bytes) / 2**20:8.1f}  {row.query[:150]}"
        )


async def run_backend(
    name: str, db_url: str, args: argparse.Namespace, work, workdir: Path, server_pid: int | None = None
) -> dict[str, float]:
    with mosquitto(workdir) as port:
        prefix = f"bench-{uuid.uuid4().hex[:6]}/v1"
        http_port = free_port()
        config = workdir / f"controller-{name}.toml"
        config.write_text(
            f'log_level = "warning"\n[database]\nurl = "{db_url}"\n'
            f'[mqtt]\nport = {port}\nprefix = "{prefix}"\nclient_id = "bench-controller"\n'
            f"receive_maximum = {args.receive_maximum}\n"
            f"[http]\nport = {http_port}\nmetrics_public = true\n"  # /metrics without a token
            f"[ingest]\nmax_batch_messages = {args.max_batch_messages}\n"
            f"flush_interval_ms = {args.flush_interval_ms}\n"
        )
        subprocess.run(  # noqa: ASYNC221 (once, before the controller starts)
            [sys.executable, "-m", "fernwart_cli.main", "controller", "init", "--config", str(config)],
            check=True,
            capture_output=True,
        )
        log = (workdir / f"controller-{name}.log").open("wb")
        profile = (
            ["-m", "cProfile", "-o", os.environ["FW_PROFILE"] + name] if os.environ.get("FW_PROFILE") else []
        )
        ctl = subprocess.Popen(  # noqa: ASYNC220 (started once, waited for in finally)
            [sys.executable, *profile, "-m", "controller", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(600):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"http://127.0.0.1:{http_port}/healthz") as resp:
                            if (await resp.json()).get("mqtt") == "connected":
                                break
                    await asyncio.sleep(0.1)
                else:
                    raise SystemExit(f"controller did not come up, see {log.name}")
            async with Store.open(db_url) as store:  # the controller accepts enrolled sites only
                for site, _ in work:
                    await enrollment.enroll(store, site, "agent-" + site.removeprefix("site-"))
            total_msgs = sum(len(p) for _, p in work)
            total_obs = total_msgs * args.per_batch
            ctx = multiprocessing.get_context("fork")
            ready, go = ctx.Event(), ctx.Event()
            publisher = ctx.Process(
                target=publish_process, args=(port, prefix, work, ready, go, args.rate / args.per_batch)
            )
            publisher.start()
            ready.wait(60)
            async with Store.open(db_url) as store:
                cpu_before = tree_cpu_s(ctl.pid)
                server_before = tree_cpu_s(server_pid)
                go.set()
                started = datetime.now(UTC)
                deadline = time.monotonic() + args.timeout
                # Wait on the controller's counter, then check the database once: counting the
                # batches table every 0.2 s took a sixth of the PostgreSQL server's CPU by the end
                # of a 100 s run, CPU the controller and the server then lacked.
                async with aiohttp.ClientSession() as session:
                    while (await _metrics(session, http_port)).get(
                        "fernwart_ingest_observations_total", 0.0
                    ) < total_obs:
                        if time.monotonic() > deadline:
                            raise SystemExit(
                                f"{name}: only {await store.count(m.BATCHES)} of {total_msgs} stored"
                            )
                        await asyncio.sleep(0.2)
                if (stored := await store.count(m.BATCHES)) != total_msgs:
                    raise SystemExit(
                        f"{name}: the controller counted {total_obs} observations, {stored} batches stored"
                    )
                async with store.engine.connect() as conn:
                    rows = (await conn.execute(sa.select(m.BATCHES.c.sent_at, m.BATCHES.c.stored_at))).all()
                stored_obs = await store.count(m.OBSERVATIONS)
                cpu_s = tree_cpu_s(ctl.pid) - cpu_before
                server_cpu_s = tree_cpu_s(server_pid) - server_before
            async with aiohttp.ClientSession() as session:
                metrics = await _metrics(session, http_port)
            publisher.join(60)
            first_sent = min(r.sent_at for r in rows)
            last_stored = max(r.stored_at for r in rows)
            if args.dump_latency:  # one line per batch: seconds since the first send, latency
                lines = [
                    f"{(r.sent_at - first_sent).total_seconds():.3f},"
                    f"{(r.stored_at - r.sent_at).total_seconds():.3f}\n"
                    for r in sorted(rows, key=lambda r: r.sent_at)
                ]
                await asyncio.to_thread(Path(f"{args.dump_latency}.{name}.csv").write_text, "".join(lines))
            latencies = sorted((r.stored_at - r.sent_at).total_seconds() for r in rows)
            # Also without the first seconds, when every device is new to the controller (first
            # inserts, findings computed for each): both figures are printed.
            warm = timedelta(seconds=args.warmup_s)
            steady = sorted(
                (r.stored_at - r.sent_at).total_seconds() for r in rows if r.sent_at - first_sent >= warm
            ) or [float("nan")]
            elapsed = (last_stored - first_sent).total_seconds()
            del started
            return {
                "observations": stored_obs,
                "expected": total_obs,
                "obs_per_s": stored_obs / elapsed,
                "msgs_per_s": len(rows) / elapsed,
                "p50_ms": 1000 * statistics.median(latencies),
                "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
                "steady_p99_ms": 1000 * steady[int(0.99 * (len(steady) - 1))],
                "max_ms": 1000 * latencies[-1],
                "obs_per_cpu_s": stored_obs / cpu_s,
                "obs_per_server_cpu_s": stored_obs / server_cpu_s if server_cpu_s else float("nan"),
                "flushes": metrics["fernwart_ingest_flush_seconds_count"],
                "flush_ms": 1000
                * metrics["fernwart_ingest_flush_seconds_sum"]
                / max(1, metrics["fernwart_ingest_flush_seconds_count"]),
                "msgs_per_flush": metrics["fernwart_ingest_flush_messages_sum"]
                / max(1, metrics["fernwart_ingest_flush_messages_count"]),
                "rematched": metrics['fernwart_findings_recomputed_devices_total{cause="device"}'],
            }
        finally:
            ctl.send_signal(signal.SIGTERM)
            try:
                ctl.wait(60)
            except subprocess.TimeoutExpired:
                ctl.kill()
            log.close()


def _forget_database(workdir: Path) -> None:
    """Delete the SQLite run's database and write back what is dirty, so that the next backend
    starts on a quiet disk rather than beside the kernel's write-back of gigabytes of it."""
    for path in workdir.glob("bench.db*"):
        path.unlink()
    os.sync()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=400_000)
    parser.add_argument("--per-batch", type=int, default=40)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--max-batch-messages", type=int, default=500)
    parser.add_argument("--flush-interval-ms", type=float, default=20)
    parser.add_argument("--receive-maximum", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="offered load in observations/s (default 0: as fast as possible)",
    )
    parser.add_argument(
        "--warmup-s", type=float, default=5, help="also report p99 without the first seconds of sends"
    )
    parser.add_argument(
        "--dump-latency", metavar="PREFIX", help="write PREFIX.<backend>.csv: send time, latency"
    )
    parser.add_argument(
        "--pg-options", default="", help="extra server options, e.g. '-c synchronous_commit=off'"
    )
    parser.add_argument(
        "--pg-statements",
        type=int,
        default=0,
        metavar="N",
        help="load pg_stat_statements and print the server's N costliest statements of the run",
    )
    args = parser.parse_args()
    per_agent = max(1, args.observations // (args.per_batch * args.agents))
    t0 = time.monotonic()
    work = build_payloads(args.agents, per_agent, args.per_batch)
    size = statistics.mean(len(p) for _, ps in work for p in ps)
    print(
        f"{args.agents} agents x {per_agent} batches x {args.per_batch} observations "
        f"({size / args.per_batch:.0f} bytes/observation, {size / 1024:.1f} KiB/message), "
        f"built in {time.monotonic() - t0:.1f}s; {os.cpu_count()} CPUs; offered load: "
        f"{f'{args.rate:,.0f} obs/s' if args.rate else 'as fast as the publisher goes'}"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="fernwart-bench-") as tmp:
        workdir = Path(tmp)
        raw = await raw_rate(args, work, workdir)
        print(
            f"{'reference':9} mosquitto_sub on the same stream: {raw:9,.0f} msg/s = "
            f"{raw * args.per_batch:9,.0f} obs/s (receives only; QoS 1)"
        )
        for backend in args.backends.split(","):
            if backend == "sqlite":
                results[backend] = await run_backend(
                    backend, f"sqlite+aiosqlite:///{workdir}/bench.db", args, work, workdir
                )
                await asyncio.to_thread(_forget_database, workdir)
            else:
                options = args.pg_options
                if args.pg_statements:
                    options += (
                        " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
                    )
                with postgres(options) as (url, postmaster):
                    results[backend] = await run_backend(backend, url, args, work, workdir, postmaster)
                    if args.pg_statements:
                        await print_pg_statements(url, args.pg_statements)
            r = results[backend]
            print(
                f"{backend:9} stored {int(r['observations'])}/{r['expected']} obs: "
                f"{r['obs_per_s']:9,.0f} obs/s ({r['msgs_per_s']:7,.0f} msg/s)  "
                f"latency p50 {r['p50_ms']:7.0f} ms  p99 {r['p99_ms']:7.0f} ms  max {r['max_ms']:7.0f} ms  "
                f"(p99 after the first {args.warmup_s:g} s: {r['steady_p99_ms']:.0f} ms)   "
                f"| controller CPU (with its decode workers): {r['obs_per_cpu_s']:,.0f} obs per CPU-second; "
                f"{r['flushes']:.0f} flushes, {r['msgs_per_flush']:.1f} msg and {r['flush_ms']:.0f} ms each; "
                f"findings recomputed for {r['rematched']:.0f} devices"
                + (
                    f" | server: {r['obs_per_server_cpu_s']:,.0f} obs per CPU-second"
                    if backend != "sqlite"
                    else ""
                )
            )


if __name__ == "__main__":
    asyncio.run(main())
