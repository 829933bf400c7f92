"""The daemon through a real mosquitto on loopback: latency, ingest rate, RSS, READY=1, writes.

1. Latency, in-process `Daemon` with a player that stamps `time.perf_counter()` when
   `start` is called: a seed-format motion (QoS 1) for a sensor with no active session is
   published, the hub decodes it, creates the session, commits the row, then hands `start`
   to the player. One motion at a time, each for a fresh sensor (every one makes a new
   session), with a short pause so each sees an idle hub. Baseline, interleaved in the
   same loop: the same publish to a bare aiomqtt subscriber, publish → message received.
2. Sustained ingest: `BENCH_INGEST` (default 50,000) motion messages over 100 sensors,
   published as fast as two publisher processes go (QoS 1), counted until the runner has
   decided every one and the store writer has committed the last. Baseline: a bare aiomqtt
   loop in this process that only counts the same pattern of messages. Two alternating
   rounds (bare, daemon, bare, daemon); the best of each is compared.
3-5. `python -m hub run` as a real process (100 sensors, dry-run player): start → READY=1
   on a `$NOTIFY_SOCKET` bound here (warm bytecode cache, as installed; baseline
   `python -c pass`); VmRSS after READY and after a flood (baseline: a bare interpreter
   sleeping); and the bytes it writes per motion event (`/proc/PID/io` `write_bytes`: what
   reaches the block layer, counted when a page is dirtied; `wchar`, every write() call,
   logs included; and the WAL's size), for three kinds of motion: a new session, a repeat
   inside the debounce window (coalesced: the row is rewritten, no event row) and a
   counted repeat after it. Log lines go to a pipe, so they are in `wchar` only. The
   flood is `BENCH_INGEST` / 5 repeats.
6. Memory under a sustained flood: the same process, flooded by the publisher processes
   as fast as they go for `BENCH_FLOOD_SECONDS` (default 60); VmRSS sampled every 0.25 s
   and its peak (or VmHWM) against the same 60 MB target.

"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from hub.config import HubConfig, HubSection, MqttSection, SensorConfig
from hub.daemon import Daemon
from hub.ingest.mqtt_decode import encode_seed_motion
from hub.model import Session
from hub.playback.port import PlaybackResult
from hub.systemd import Notifier
from hub.timeutil import parse_iso
from tests.bench._dataset import CACHE_DIR, REPO, Dataset
from tests.bench._process import installed_env
from tests.bench._report import (
    BYTES_PER_EVENT,
    MB,
    PER_SECOND,
    Figure,
    Samples,
    noise_note,
    show_ms,
)
from tests.broker import Broker

ORDER = 3
TITLE = "daemon: motion via real mosquitto → session → player; ingest, RSS, READY=1, writes"

LATENCY_P50_TARGET_MS = 5.0
LATENCY_P99_TARGET_MS = 20.0
LATENCY_WARMUP, LATENCY_RUNS = 30, 300
LATENCY_PAUSE = 0.003  # seconds between samples: each motion meets an idle hub

INGEST_ENV = "BENCH_INGEST"
DEFAULT_INGEST = 50_000
INGEST_RATE_TARGET = 5_000.0  # motion events per second
INGEST_RATIO_TARGET = 0.6  # of the bare loop's rate
INGEST_ROUNDS = 2  # alternating bare / daemon rounds; the best of each is compared
PUBLISHERS = 2  # processes
PUBLISH_WORKERS = 64  # concurrent QoS-1 publishes per publisher
STALL_SECONDS = 10.0  # no progress this long: give up and report what was counted

FLOOD_ENV = "BENCH_FLOOD_SECONDS"
DEFAULT_FLOOD_SECONDS = 60.0

SENSORS = 100
SENTINELS = ("end-new", "end-repeat", "end-counted")
RSS_TARGET_MB = 60.0
READY_TARGET_MS = 1_500.0
READY_WARMUP, READY_RUNS = 1, 5
DEBOUNCE_SECONDS = 10.0  # the default [sessions].debounce_seconds, used as is
CONTEXT_URI = "spotify:playlist:37i9dQZF1DX0XUsuxWHRQd"
HOST = "127.0.0.1"
WAL_FRAME = 4096 + 24  # one page plus its frame header


def _ingest_count() -> int:
    raw = os.environ.get(INGEST_ENV, "").strip()
    if not raw:
        return DEFAULT_INGEST
    try:
        count = int(raw)
    except ValueError:
        raise SystemExit(f"{INGEST_ENV} must be a whole number, got {raw!r}") from None
    if count < SENSORS * 10:
        raise SystemExit(f"{INGEST_ENV} must be at least {SENSORS * 10}, got {count}")
    return count


def run(dataset: Dataset) -> list[Figure]:
    del dataset  # the daemon makes its own sessions
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    count = _ingest_count()
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="daemon-") as tmp,
        Broker(Path(tmp) / "mosquitto", "max_queued_messages 0\n", logging=False) as broker,
    ):
        print(f"  mosquitto on {HOST}:{broker.port} (pid {broker.pid})")
        figures = asyncio.run(_latency(broker, Path(tmp)))
        figures += asyncio.run(_ingest(broker, Path(tmp), count))
        figures += asyncio.run(_process(broker, Path(tmp), count))
    return figures


# -- shared ---------------------------------------------------------------------------


def _sensor_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:03d}" for n in range(count)]


def _config(database: Path, port: int, prefix: str, sensors: Iterable[str]) -> HubConfig:
    return HubConfig(
        hub=HubSection(database=database),
        mqtt=MqttSection(host=HOST, port=port, topic_prefix=prefix),
        sensors=tuple(
            SensorConfig(id=sensor, user_id=f"user-{n % 10}", context_uri=CONTEXT_URI)
            for n, sensor in enumerate(sensors)
        ),
    )


class StampingPlayer:
    """A player that answers at once and remembers when `start` was handed to it."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.starts = 0

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        at = time.perf_counter()
        self.starts += 1
        waiter = self.waiting.pop(session.sensor_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)
        return PlaybackResult(started=True, device_id="bench-device")

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        return True


@contextlib.asynccontextmanager
async def _running(daemon: Daemon) -> AsyncIterator[Daemon]:
    """The daemon in a task of this loop, from READY to a clean stop."""
    task = asyncio.create_task(daemon.run(), name="bench-daemon")
    ready = asyncio.create_task(daemon.ready.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when="FIRST_COMPLETED")
        if ready not in done:
            if task.done():
                task.result()
            raise RuntimeError("the in-process daemon was not READY within 10 s")
        yield daemon
    finally:
        ready.cancel()
        # Stop only once the link has sent its pending session states: cancelling its
        # publisher while a PUBACK lands can be lost on Python 3.11 (asyncio.wait_for,
        # CPython gh-86296) and the stop then waits out the link's 5 s shutdown timeout.
        link = daemon.link
        for _ in range(200):
            if link is None or not link._pending:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        stopping = time.perf_counter()
        daemon.stop()
        await asyncio.wait_for(task, 15)
        took = time.perf_counter() - stopping
        if took > 1:
            print(f"  (the in-process daemon took {took:.1f} s to stop)")


async def _publish_all(client: aiomqtt.Client, messages: Iterable[tuple[str, bytes]]) -> None:
    """Every message at QoS 1, PUBLISH_WORKERS in flight, each PUBACKed."""
    pending = iter(messages)

    async def worker() -> None:
        for topic, payload in pending:  # one shared iterator: each message once
            await client.publish(topic, payload, qos=1)

    async with asyncio.TaskGroup() as group:
        for _ in range(PUBLISH_WORKERS):
            group.create_task(worker())


async def _progress(
    counted: Callable[[], int], target: int, stall: float = STALL_SECONDS
) -> tuple[float, int]:
    """Poll `counted()` until it reaches `target`: (perf_counter then, count reached).

    Stops early, returning what was counted, when nothing moved for `stall` seconds.
    """
    last, moved = counted(), time.perf_counter()
    while last < target:
        await asyncio.sleep(0.005)
        now_count = counted()
        if now_count != last:
            last, moved = now_count, time.perf_counter()
        elif time.perf_counter() - moved > stall:
            break
    return time.perf_counter(), last


# -- 1. latency -----------------------------------------------------------------------


async def _latency(broker: Broker, tmp: Path) -> list[Figure]:
    sensors = _sensor_ids("lat", LATENCY_WARMUP + LATENCY_RUNS)
    player = StampingPlayer()
    config = _config(tmp / "latency.db", broker.port, "bench-lat", sensors)
    daemon = Daemon(config, notifier=Notifier(None), player=player, client_id="bench-latency")
    loop = asyncio.get_running_loop()
    base_waiting: dict[str, asyncio.Future[float]] = {}
    hub_ms: list[float] = []
    base_ms: list[float] = []

    async def receive(subscriber: aiomqtt.Client) -> None:
        async for message in subscriber.messages:
            at = time.perf_counter()
            waiter = base_waiting.pop(message.topic.value, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(at)

    async def sample(
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        waiting: dict[str, asyncio.Future[float]],
    ) -> float:
        key = topic if waiting is base_waiting else topic.split("/")[1]
        stamped: asyncio.Future[float] = loop.create_future()
        waiting[key] = stamped
        sent = time.perf_counter()
        await client.publish(topic, payload, qos=1)
        return (await asyncio.wait_for(stamped, 5) - sent) * 1000

    async with (
        _running(daemon),
        aiomqtt.Client(HOST, broker.port, identifier="bench-lat-pub") as publisher,
        aiomqtt.Client(HOST, broker.port, identifier="bench-lat-sub") as subscriber,
    ):
        await subscriber.subscribe("bench-base/+/motion", qos=1)
        reader = asyncio.create_task(receive(subscriber))
        try:
            for n, sensor in enumerate(sensors):
                payload = encode_seed_motion(sensor, seq=1)
                hub_topic, base_topic = f"bench-lat/{sensor}/motion", f"bench-base/{sensor}/motion"
                if n % 2:
                    base = await sample(publisher, base_topic, payload, base_waiting)
                    await asyncio.sleep(LATENCY_PAUSE)
                    hub = await sample(publisher, hub_topic, payload, player.waiting)
                else:
                    hub = await sample(publisher, hub_topic, payload, player.waiting)
                    await asyncio.sleep(LATENCY_PAUSE)
                    base = await sample(publisher, base_topic, payload, base_waiting)
                await asyncio.sleep(LATENCY_PAUSE)
                if n >= LATENCY_WARMUP:
                    hub_ms.append(hub)
                    base_ms.append(base)
        finally:
            reader.cancel()
        runner = daemon.runner
        assert runner is not None
        sessions = len(runner.engine.active)
        stats = runner._writer.stats
    hub_samples = Samples("motion published → row committed → player.start", tuple(hub_ms))
    base_samples = Samples("  baseline: published → a bare aiomqtt subscriber", tuple(base_ms))
    print(hub_samples.line())
    print(base_samples.line())
    print(
        f"  {sessions} sessions made, {player.starts} starts handed to the player; the writer "
        f"committed {stats.rows} rows in {stats.transactions} transactions; p50 above the "
        f"bare subscriber: {show_ms(hub_samples.p50 - base_samples.p50)}"
    )
    name = "daemon motion → commit → player.start"
    return [
        Figure(f"{name} p50", hub_samples.p50, LATENCY_P50_TARGET_MS, base_samples.p50),
        Figure(
            f"{name} p99",
            hub_samples.p99,
            LATENCY_P99_TARGET_MS,
            base_samples.p99,
            noise_note(base_samples),
        ),
    ]


# -- 2. sustained ingest --------------------------------------------------------------


class Publishers:
    """PUBLISHERS processes, connected and holding their messages until `go()`."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self._processes = processes

    @classmethod
    async def connect(cls, port: int, prefix: str, count: int) -> Publishers:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                "publish",
                str(port),
                prefix,
                str(first),
                str(PUBLISHERS),
                str(count),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for first in range(PUBLISHERS)
        ]
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if line.strip() != b"ready":
                raise RuntimeError(f"a publisher did not start: {line!r}")
        return cls(processes)

    def go(self) -> float:
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
        return time.perf_counter()

    async def finish(self) -> float:
        """The slowest publisher's seconds from `go` to its last PUBACK."""
        return (await self.finish_counted())[0]

    async def finish_counted(self) -> tuple[float, int]:
        """(the slowest publisher's seconds from `go` to its last PUBACK, messages sent)."""
        seconds: list[float] = []
        sent = 0
        for process in self._processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 600)
            await process.wait()
            seconds.append(float(line.split()[1]))
            sent += int(line.split()[2])
        return max(seconds), sent


def _endless(prefix: str, first: int, step: int) -> Iterator[tuple[str, bytes]]:
    """The same pattern as `_messages`, without end (a flood bounded by time)."""
    for k in itertools.count(first, step):
        sensor = f"s{k % SENSORS:03d}"
        yield f"{prefix}/{sensor}/motion", encode_seed_motion(sensor, seq=k // SENSORS + 1)


def _messages(prefix: str, first: int, step: int, count: int) -> list[tuple[str, bytes]]:
    """Message k goes to sensor k % 100 with seq k // 100 + 1: never a duplicate seq."""
    messages = []
    for k in range(first, count, step):
        sensor = f"s{k % SENSORS:03d}"
        messages.append(
            (f"{prefix}/{sensor}/motion", encode_seed_motion(sensor, seq=k // SENSORS + 1))
        )
    return messages


async def _publisher_main(port: int, prefix: str, first: int, step: int, count: int) -> None:
    """One publisher process: connect, say ready, wait for go, publish, say how long.
    A negative `count` floods for -count seconds instead, and says how many it sent."""
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(
        HOST, port, max_inflight_messages=PUBLISH_WORKERS, timeout=60
    ) as client:
        client.pending_calls_threshold = PUBLISH_WORKERS  # many in flight is the point
        messages = _Counted(_messages(prefix, first, step, count) if count >= 0 else ())
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        if count < 0:  # the flood's time starts at "go"
            ends = time.monotonic() - count
            messages = _Counted(
                itertools.takewhile(
                    lambda _m: time.monotonic() < ends, _endless(prefix, first, step)
                )
            )
        await _publish_all(client, messages)
        sent = messages.count
        print(f"done {time.perf_counter() - started:.6f} {sent}", flush=True)


class _Counted:
    """An iterable that counts what was taken from it."""

    def __init__(self, items: Iterable[tuple[str, bytes]]) -> None:
        self._items = iter(items)
        self.count = 0

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return self

    def __next__(self) -> tuple[str, bytes]:
        item = next(self._items)
        self.count += 1
        return item


async def _bare_loop(broker: Broker, prefix: str, count: int) -> tuple[float, float]:
    """The floor: receive and count. (seconds to the last message, publishers' seconds)."""
    async with aiomqtt.Client(HOST, broker.port, identifier=f"bench-{prefix}") as client:
        await client.subscribe(f"{prefix}/+/motion", qos=1)
        publishers = await Publishers.connect(broker.port, prefix, count)
        received = 0
        started = publishers.go()
        async with asyncio.timeout(120):
            async for _ in client.messages:
                received += 1
                if received == count:
                    break
        seconds = time.perf_counter() - started
        return seconds, await publishers.finish()


async def _hub_ingest(broker: Broker, tmp: Path, count: int, name: str) -> HubRound:
    """One round: a fresh daemon (its own database, topics and client id) takes the flood."""
    config = _config(tmp / f"{name}.db", broker.port, name, _sensor_ids("s", SENSORS))
    player = StampingPlayer()
    daemon = Daemon(config, notifier=Notifier(None), player=player, client_id=name)
    async with _running(daemon):
        runner = daemon.runner
        assert runner is not None
        writer = runner._writer
        publishers = await Publishers.connect(broker.port, name, count)
        started = publishers.go()
        _, decided = await _progress(lambda: runner.counters["motion"], count)
        # The runner queues each save before it counts the next motion: this call runs on
        # the writer thread after the last of them is committed.
        await writer.call(lambda _repository: None)
        seconds = time.perf_counter() - started
        publish_seconds = await publishers.finish()
        stats = writer.stats
        summary = (
            f"{stats.rows:,} rows in {stats.transactions:,} transactions "
            f"({stats.rows / max(stats.transactions, 1):.2f} rows per commit); "
            f"mqtt counters {dict(daemon.link.counters) if daemon.link else {}}"
        )
    return HubRound(seconds, publish_seconds, decided, summary)


@dataclass(frozen=True)
class HubRound:
    seconds: float  # publishers' go → the last motion decided and committed
    publish_seconds: float
    decided: int
    summary: str

    @property
    def rate(self) -> float:
        return self.decided / self.seconds


async def _ingest(broker: Broker, tmp: Path, count: int) -> list[Figure]:
    # Alternating rounds, the best of each: one busy moment on a shared 2-core machine must
    # not decide the ratio either way.
    bare: list[tuple[float, float]] = []
    hub: list[HubRound] = []
    for number in range(1, INGEST_ROUNDS + 1):
        bare.append(await _bare_loop(broker, f"bench-bare-{number}", count))
        hub.append(await _hub_ingest(broker, tmp, count, f"bench-ingest-{number}"))
    base_seconds = min(seconds for seconds, _ in bare)
    best = max(hub, key=lambda r: r.rate)
    hub_rate, base_rate = best.rate, count / base_seconds
    ratio = hub_rate / base_rate
    print(
        "  bare aiomqtt loop: "
        + ", ".join(f"{count / seconds:,.0f} /s" for seconds, _ in bare)
        + " (publishers done in "
        + ", ".join(f"{publish:.2f} s" for _, publish in bare)
        + ")"
    )
    print(
        "  daemon:            "
        + ", ".join(f"{r.rate:,.0f} /s" for r in hub)
        + f" (best: {best.decided:,} of {count:,} motion events decided and committed in "
        f"{best.seconds:.2f} s; publishers done in {best.publish_seconds:.2f} s)"
    )
    print(f"  writer: {best.summary}")
    print(f"  per motion event: {best.seconds / max(best.decided, 1) * 1e6:.0f} µs in the daemon")
    print(
        f"  rate ratio {ratio:.2f} (target >= {INGEST_RATIO_TARGET}), best of "
        f"{INGEST_ROUNDS} rounds each; {hub_rate:,.0f}/s vs target >= "
        f"{INGEST_RATE_TARGET:,.0f}/s"
    )
    if any(r.decided < count for r in hub):
        stalled = min(r.decided for r in hub)
        print(f"  MISSING: the runner stalled after {stalled:,} of {count:,} motion events")
    return [
        Figure(
            f"daemon ingest {count:,} motion events, rate",
            hub_rate,
            max(base_rate * INGEST_RATIO_TARGET, INGEST_RATE_TARGET),
            base_rate,
            note=f"motion events decided and committed per second; baseline: the bare aiomqtt "
            f"loop (best of {INGEST_ROUNDS} alternating rounds each); target: >= "
            f"{INGEST_RATIO_TARGET}x its rate and >= {INGEST_RATE_TARGET:,.0f}/s, whichever "
            "is stricter",
            unit=PER_SECOND,
        )
    ]


# -- 3-5. the daemon as a process -----------------------------------------------------


def _installed_env(notify: Path | None) -> dict[str, str]:
    env = installed_env()
    env.pop("JOURNAL_STREAM", None)
    env.pop("NOTIFY_SOCKET", None)
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify)
    return env


def _write_config(tmp: Path, port: int, prefix: str) -> Path:
    path = tmp / "hub.toml"
    lines = [
        "[hub]",
        f'database = "{tmp / "process.db"}"',
        "[mqtt]",
        f'host = "{HOST}"',
        f"port = {port}",
        f'topic_prefix = "{prefix}"',
        "[sessions]",
        f"debounce_seconds = {DEBOUNCE_SECONDS}",
        "[spotify]",
        "dry_run = true",
    ]
    # Plus one fresh sensor per phase: its new session's published state ends the phase
    # (coalesced repeats change nothing the hub publishes).
    for n, sensor in enumerate(_sensor_ids("s", SENSORS) + list(SENTINELS)):
        lines += [
            "[[sensors]]",
            f'id = "{sensor}"',
            f'user_id = "user-{n % 10}"',
            f'context_uri = "{CONTEXT_URI}"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _proc_io(pid: int) -> dict[str, int]:
    fields = Path(f"/proc/{pid}/io").read_text().split()
    return {
        key.rstrip(":"): int(value) for key, value in zip(fields[::2], fields[1::2], strict=True)
    }


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class DaemonProcess:
    """`python -m hub run` with its log drained from a pipe (so no log bytes hit the disk)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: collections.deque[str] = collections.deque(maxlen=40)
        self._drain = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, config: Path, notify: Path) -> DaemonProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub",
            "run",
            "--config",
            str(config),
            cwd=REPO,
            env=_installed_env(notify),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.log.append(line.decode(errors="replace").rstrip())

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._drain
        if code != 0 or any("Traceback" in line for line in self.log):
            raise RuntimeError(f"the daemon exited {code}:\n" + "\n".join(self.log))
        return code

    async def quiet(self) -> None:
        """Until the process used no CPU for three 50 ms polls in a row (it is idle)."""
        ticks, still = _cpu_ticks(self.pid), 0
        while still < 3:
            await asyncio.sleep(0.05)
            now = _cpu_ticks(self.pid)
            still = still + 1 if now == ticks else 0
            ticks = now


class NotifyListener:
    """What systemd would see: datagrams on `$NOTIFY_SOCKET`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)  # noqa: FBT003 - socket's own API

    async def wait_for(self, needle: str) -> float:
        """perf_counter when a datagram containing `needle` arrived (within 15 s)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(15):
            while True:
                message = (await loop.sock_recv(self.sock, 4096)).decode()
                if needle in message:
                    return time.perf_counter()

    def close(self) -> None:
        self.sock.close()


def _timed_pass(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env, cwd=REPO)
    return (time.perf_counter() - started) * 1000


async def _bare_rss_mb() -> float:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(5)", env=_installed_env(None)
    )
    try:
        await asyncio.sleep(0.5)
        return _proc_kb(process.pid, "VmRSS") / 1024
    finally:
        process.kill()
        await process.wait()


@dataclass(frozen=True, slots=True)
class Phase:
    """The daemon's writes over one kind of motion event."""

    label: str
    short: str  # for the summary table
    events: int
    write_bytes: int
    wchar: int
    wal_bytes: int  # the WAL file's size after the phase
    seconds: float

    def line(self) -> str:
        return (
            f"  {self.label:<44} {self.events:>6,} events in {self.seconds:5.2f} s: "
            f"write_bytes {self.write_bytes / self.events:8,.0f} B/event, "
            f"wchar {self.wchar / self.events:8,.0f} B/event "
            f"(~{self.wchar / self.events / WAL_FRAME:.1f} WAL frames); "
            f"WAL file {self.wal_bytes:,} B"
        )


class ProcessDriver:
    """Publishes phases of motion to the daemon process and waits until it has done them."""

    def __init__(self, daemon: DaemonProcess, client: aiomqtt.Client, prefix: str, wal: Path):
        self.daemon = daemon
        self.client = client
        self.prefix = prefix
        self.wal = wal
        self.seqs: collections.Counter[str] = collections.Counter()
        self._states: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    async def watch(self) -> None:
        """The daemon's session states (retained, one topic per sensor): (sensor, updatedAt)."""
        import json  # noqa: PLC0415 - only here

        async for message in self.client.messages:
            if isinstance(message.payload, bytes):
                record = json.loads(message.payload)
                self._states.put_nowait((record["sensorId"], parse_iso(record["updatedAt"])))

    def _motion(self, sensor: str) -> tuple[str, bytes]:
        self.seqs[sensor] += 1
        return f"{self.prefix}/{sensor}/motion", encode_seed_motion(sensor, seq=self.seqs[sensor])

    async def phase(self, label: str, short: str, sensors: Sequence[str], sentinel: str) -> Phase:
        """Publish one motion per entry of `sensors`, then one for `sentinel` (a sensor with
        no session yet) alone, after the rest are acknowledged: its new session's state says
        the daemon has done them all."""
        pid = self.daemon.pid
        before = _proc_io(pid)
        started = time.perf_counter()
        rest, last = sensors, sentinel
        await _publish_all(self.client, [self._motion(sensor) for sensor in rest])
        sent = time.time()
        await self.client.publish(*self._motion(last), qos=1)
        async with asyncio.timeout(60):
            while True:
                sensor, updated = await self._states.get()
                if sensor == last and updated >= sent:
                    break
        await self.daemon.quiet()  # the player's answers, written after the sentinel's
        seconds = time.perf_counter() - started
        after = _proc_io(pid)
        return Phase(
            label,
            short,
            len(sensors) + 1,
            after["write_bytes"] - before["write_bytes"],
            after["wchar"] - before["wchar"],
            self.wal.stat().st_size if self.wal.exists() else 0,
            seconds,
        )


async def _ready_times(config: Path, listener: NotifyListener) -> tuple[list[float], list[float]]:
    """(spawn → READY=1 ms, `python -c pass` ms), interleaved, after a warm-up run."""
    ready_ms: list[float] = []
    pass_ms: list[float] = []
    env = _installed_env(None)
    for iteration in range(READY_WARMUP + READY_RUNS):
        started = time.perf_counter()
        daemon = await DaemonProcess.spawn(config, listener.path)
        try:
            ready_at = await listener.wait_for("READY=1")
        finally:
            await daemon.stop()
        empty = await asyncio.to_thread(_timed_pass, env)
        if iteration >= READY_WARMUP:
            ready_ms.append((ready_at - started) * 1000)
            pass_ms.append(empty)
    return ready_ms, pass_ms


async def _process(broker: Broker, tmp: Path, count: int) -> list[Figure]:
    prefix = "bench-proc"
    config = _write_config(tmp, broker.port, prefix)
    listener = NotifyListener(tmp / "notify.sock")
    try:
        ready_ms, pass_ms = await _ready_times(config, listener)
        ready = Samples("python -m hub run: spawn → READY=1", tuple(ready_ms))
        empty = Samples("  baseline: python -c pass", tuple(pass_ms))
        print(ready.line())
        print(empty.line())

        bare_mb = await _bare_rss_mb()
        daemon = await DaemonProcess.spawn(config, listener.path)
        try:
            await listener.wait_for("READY=1")
            await daemon.quiet()
            rss_ready = _proc_kb(daemon.pid, "VmRSS") / 1024
            phases, rss_load, hwm = await _drive(daemon, broker, tmp, prefix, count)
            flood = await _flood(daemon, broker, prefix, _flood_seconds())
        finally:
            await daemon.stop()
    finally:
        listener.close()

    print(flood.line())
    repeats = phases[1].events
    print(
        f"  VmRSS: {rss_ready:.1f} MB after READY, {rss_load:.1f} MB after {repeats:,} motion "
        f"events (peak VmHWM {hwm:.1f} MB); a bare interpreter: {bare_mb:.1f} MB"
    )
    for phase in phases:
        print(phase.line())
    total = Phase(
        "all of them",
        "all",
        sum(p.events for p in phases),
        sum(p.write_bytes for p in phases),
        sum(p.wchar for p in phases),
        phases[-1].wal_bytes,
        sum(p.seconds for p in phases),
    )
    print(total.line())
    counted = "write_bytes"
    if total.write_bytes == 0:
        counted = "wchar"
        print(
            "  write_bytes stayed 0 (this kernel or container does not account block I/O per "
            "process): the figures below use wchar, which also counts log lines"
        )

    def per_event(phase: Phase) -> float:
        return (phase.write_bytes if counted == "write_bytes" else phase.wchar) / phase.events

    size = (tmp / "process.db").stat().st_size
    print(f"  database file after shutdown (checkpointed): {size:,} B")
    writes_note = (
        f"/proc/PID/io {counted} per motion event, for each kind of motion (SQLite writes "
        "whole 4 KiB pages to the WAL); no target: reported"
    )
    return [
        Figure("daemon start → READY=1 median", ready.p50, READY_TARGET_MS, empty.p50),
        Figure(
            "daemon VmRSS after READY",
            rss_ready,
            RSS_TARGET_MB,
            bare_mb,
            note="100 sensors; baseline: a bare interpreter",
            unit=MB,
        ),
        Figure(
            f"daemon VmRSS after {repeats:,} motion events",
            rss_load,
            RSS_TARGET_MB,
            bare_mb,
            note=f"peak VmHWM {hwm:.1f} MB",
            unit=MB,
        ),
        Figure(
            f"daemon VmRSS peak during a {flood.seconds:.0f} s flood",
            flood.peak_mb,
            RSS_TARGET_MB,
            bare_mb,
            note=(
                f"{flood.sent:,} motions at {flood.sent / flood.seconds:,.0f} /s; "
                f"drained {flood.drain_seconds:.1f} s after the last publish"
            ),
            unit=MB,
        ),
        *(
            Figure(
                f"daemon disk writes per motion, {p.short}",
                per_event(p),
                note=writes_note if n == 0 else "",
                unit=BYTES_PER_EVENT,
            )
            for n, p in enumerate(phases)
        ),
    ]


def _flood_seconds() -> float:
    raw = os.environ.get(FLOOD_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_FLOOD_SECONDS
    except ValueError:
        raise SystemExit(f"{FLOOD_ENV} must be a number of seconds, got {raw!r}") from None


@dataclass(frozen=True)
class Flood:
    seconds: float
    sent: int
    peak_mb: float  # the highest VmRSS sampled, or VmHWM if higher
    drain_seconds: float  # from the last PUBACK until the daemon is idle again

    def line(self) -> str:
        return (
            f"  {self.seconds:.0f} s flood: {self.sent:,} motions "
            f"({self.sent / self.seconds:,.0f} /s), VmRSS peak {self.peak_mb:.1f} MB, "
            f"the daemon idle again {self.drain_seconds:.1f} s after the last publish"
        )


async def _flood(daemon: DaemonProcess, broker: Broker, prefix: str, seconds: float) -> Flood:
    """Publishers flood for `seconds` as fast as they go; VmRSS is sampled every 0.25 s
    (the inbox is bounded; what waits beyond it waits in aiomqtt's queue and the broker)."""
    publishers = await Publishers.connect(broker.port, prefix, -max(1, round(seconds)))
    peak = 0.0
    publishers.go()
    finishing = asyncio.create_task(publishers.finish_counted())
    while not finishing.done():
        peak = max(peak, _proc_kb(daemon.pid, "VmRSS") / 1024)
        await asyncio.sleep(0.25)
    took, sent = await finishing
    drained = time.perf_counter()
    await daemon.quiet()
    drain = time.perf_counter() - drained
    peak = max(peak, _proc_kb(daemon.pid, "VmHWM") / 1024)
    return Flood(took, sent, peak, drain)


async def _drive(
    daemon: DaemonProcess, broker: Broker, tmp: Path, prefix: str, count: int
) -> tuple[list[Phase], float, float]:
    """The three kinds of motion; (phases, VmRSS after the flood, VmHWM), in MB."""
    sensors = _sensor_ids("s", SENSORS)
    flood = max(count // 5, SENSORS)
    wal = tmp / "process.db-wal"
    async with aiomqtt.Client(
        HOST, broker.port, identifier="bench-proc-driver", max_inflight_messages=PUBLISH_WORKERS
    ) as client:
        client.pending_calls_threshold = PUBLISH_WORKERS  # many in flight is the point
        await client.subscribe("spottypotty/sessions/+", qos=1)
        driver = ProcessDriver(daemon, client, prefix, wal)
        watcher = asyncio.create_task(driver.watch())
        try:
            # New sessions: one motion for each sensor (the last sensor is the sentinel).
            first = time.monotonic()
            created = await driver.phase(
                "new session (row + event + player answer)", "new session", sensors, SENTINELS[0]
            )
            # Repeats inside the debounce window: coalesced, the session row rewritten.
            repeats = [sensors[k % SENSORS] for k in range(1, flood + 1)]
            coalesced = await driver.phase(
                "repeat within debounce (row rewritten)",
                "repeat within debounce",
                repeats,
                SENTINELS[1],
            )
            rss = _proc_kb(daemon.pid, "VmRSS") / 1024
            # Counted repeats once the debounce window has passed: the row and an event row.
            wait = first + DEBOUNCE_SECONDS + 0.5 - time.monotonic()
            if wait > 0:
                print(f"  (waiting {wait:.1f} s for the {DEBOUNCE_SECONDS:.0f} s debounce window)")
                await asyncio.sleep(wait)
            counted = await driver.phase(
                "repeat after debounce (row + event row)", "counted repeat", sensors, SENTINELS[2]
            )
            hwm = _proc_kb(daemon.pid, "VmHWM") / 1024
        finally:
            watcher.cancel()
    return [created, coalesced, counted], rss, hwm


# -- publisher processes: python -m tests.bench.bench_daemon publish ... ---------------


def _main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] != "publish":
        print("usage: python -m tests.bench.bench_daemon publish PORT PREFIX FIRST STEP COUNT")
        return 2
    _, port, prefix, first, step, count = argv
    asyncio.run(_publisher_main(int(port), prefix, int(first), int(step), int(count)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
