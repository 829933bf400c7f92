"""Nothing the broker accepted is lost, on the real daemon (`python -m hub run`) and a real
mosquitto configured as deployed: kill -9 during a flood, a full disk, a read-only remount
and a deleted database folder. Each test publishes QoS-1 motion with a known sensor and
`seq`, and compares what the broker acknowledged with the rows in SQLite afterwards.

The disk faults need a file system the test can fill and remount: a small tmpfs, so they
run as root (as CI does) and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub.ingest.mqtt_decode import encode_seed_motion
from tests.hub_process import HubProcess, NotifySocket

if TYPE_CHECKING:
    from tests.broker import Broker
    from tests.integration.conftest import BrokerFactory

pytestmark = pytest.mark.integration

SENSORS = ("s0", "s1", "s2", "s3")
# The broker as deploy/mosquitto/spottypotty.conf sets it up.
DEPLOYED_BROKER = "max_queued_messages 100000\nmax_inflight_messages 100\n"
KILL_ROUNDS = 8
KILL_SEED = 18
DRAIN_LIMIT = 30.0  # seconds for the hub to take what the broker kept for it
FAULT_MOTIONS = 40


def _config(tmp_path: Path, broker: Broker, prefix: str, database: Path, **hub: str) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in hub.items())
    sensors = "".join(f'[[sensors]]\nid = "{sensor}"\nuser_id = "u1"\n' for sensor in SENSORS)
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "{database}"\n{extra}'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        "[sessions]\ntimeout_minutes = 5\ndebounce_seconds = 0\n"
        "[spotify]\ndry_run = true\n" + sensors,
        encoding="utf-8",
    )
    return path


def _rig(
    tmp_path: Path, broker: Broker, prefix: str, database: Path, notify: NotifySocket
) -> tuple[HubProcess, Sensors]:
    """The hub on `database` (not started) and the sensors that feed it."""
    config = _config(tmp_path, broker, prefix, database)
    return HubProcess(config, notify, tmp_path / "hub.log"), Sensors(broker, prefix)


def _stored(database: Path) -> list[tuple[str, int]]:
    """(sensor, seq) of every motion event row, duplicates included."""
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
        rows = db.execute("SELECT sensorId, seq FROM motion_events").fetchall()
    return [(str(sensor), int(seq)) for sensor, seq in rows]


class Sensors:
    """The sensors' side: QoS-1 motion, each (sensor, seq) recorded once the broker
    acknowledged it (then the broker has accepted it, and the hub must not lose it)."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self._broker = broker
        self._prefix = prefix
        self._seqs = dict.fromkeys(SENSORS, 0)
        self.accepted: list[tuple[str, int]] = []

    async def publish(self, client: aiomqtt.Client, sensor: str) -> None:
        self._seqs[sensor] += 1
        seq = self._seqs[sensor]
        topic = f"{self._prefix}/{sensor}/motion"
        await client.publish(topic, encode_seed_motion(sensor, seq=seq), qos=1)
        self.accepted.append((sensor, seq))

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[aiomqtt.Client]:
        async with aiomqtt.Client(
            self._broker.host, self._broker.port, identifier=f"sensors-{uuid.uuid4().hex[:8]}"
        ) as client:
            yield client

    async def burst(self, count: int) -> None:
        async with self.client() as client:
            for n in range(count):
                await self.publish(client, SENSORS[n % len(SENSORS)])


async def _until_stored(database: Path, count: int) -> list[tuple[str, int]]:
    """Poll the file another process writes (nothing else tells), bounded."""
    async with asyncio.timeout(DRAIN_LIMIT):
        while len(stored := await asyncio.to_thread(_stored, database)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return stored


def _report(
    capsys: pytest.CaptureFixture[str], fault: str, accepted: int, stored: int, lost: int
) -> None:
    with capsys.disabled():
        print(f"\n{fault}: {accepted} accepted by the broker, {stored} stored, {lost} lost")


async def test_kill_9_during_a_flood_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path,
    broker_factory: BrokerFactory,
    unique_prefix: str,
    notify: NotifySocket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = broker_factory(DEPLOYED_BROKER)
    database = tmp_path / "hub.db"
    hub, sensors = _rig(tmp_path, broker, unique_prefix, database, notify)
    rng = random.Random(KILL_SEED)
    stop = asyncio.Event()

    async def flood() -> None:  # ~500 messages a second, as in the fault campaign
        async with sensors.client() as client:
            while not stop.is_set():
                await sensors.publish(client, rng.choice(SENSORS))
                await asyncio.sleep(0.002)

    try:
        await hub.start()
        publisher = asyncio.create_task(flood())
        for _ in range(KILL_ROUNDS):
            await asyncio.sleep(rng.uniform(0.2, 0.7))  # a random instant of the flood
            hub.kill()
            await hub.start()
        stop.set()
        await publisher
        stored = await _until_stored(database, len(sensors.accepted))
        assert await hub.terminate() == 0
    finally:
        hub.cleanup()
    _report(capsys, f"kill -9 x{KILL_ROUNDS}", len(sensors.accepted), len(stored), 0)
    assert sorted(stored) == sorted(sensors.accepted)  # each once: none lost, none twice


# --- disk faults on a small tmpfs ------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs of our own (root only): filled, remounted read-only, grown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    try:
        _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Fill the disk to the last byte; returns the filler file."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


async def test_a_full_disk_holds_motion_says_so_and_writes_it_all_when_space_returns(
    tmp_path: Path,
    broker_factory: BrokerFactory,
    unique_prefix: str,
    notify: NotifySocket,
    small_disk: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = broker_factory(DEPLOYED_BROKER)
    database = small_disk / "hub.db"
    hub, sensors = _rig(tmp_path, broker, unique_prefix, database, notify)
    try:
        await hub.start()
        filler = await asyncio.to_thread(_fill, small_disk)
        await sensors.burst(FAULT_MOTIONS)  # sessions start and go on while the disk is full
        status = await notify.wait_for("database not writable")
        assert "row(s) held, retrying" in status
        assert hub.running
        _mount("-o", "remount,size=8m", str(small_disk))  # the disk grows: space returns
        assert filler.exists()
        await notify.wait_for("STATUS=")  # told at once, not at the next interval
        stored = await _until_stored(database, FAULT_MOTIONS)
        assert await hub.terminate() == 0
    finally:
        hub.cleanup()
    _report(capsys, "disk full", len(sensors.accepted), len(stored), 0)
    assert sorted(stored) == sorted(sensors.accepted)
    with contextlib.closing(sqlite3.connect(database)) as db:
        counts = dict(db.execute("SELECT sensorId, motionEventsCount FROM sessions").fetchall())
    assert counts == dict.fromkeys(SENSORS, FAULT_MOTIONS // len(SENSORS))
    log = hub.log.read_text(errors="replace")
    assert "database not writable" in log
    assert "database writable again" in log


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Path]:
    """A loop-mounted ext4 with `errors=remount-ro`, as on a Pi's SD card (root only)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("a loop-mounted ext4 needs root and e2fsprogs (CI has both)")
    image, disk = tmp_path / "sd.img", tmp_path / "sd"
    disk.mkdir()
    with image.open("wb") as out:
        out.truncate(16 * 1024 * 1024)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        _mount("-o", "loop,errors=remount-ro", str(image), str(disk))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot loop-mount an ext4 here: {exc}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fail_the_file_system(disk: Path) -> None:
    """An ext4 error, as a failing SD card gives: the kernel remounts it read-only."""
    device = subprocess.run(
        ["findmnt", "-no", "SOURCE", str(disk)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("test\n")


async def test_a_read_only_remount_is_loud_and_a_restart_on_it_refuses_to_start(
    tmp_path: Path,
    broker_factory: BrokerFactory,
    unique_prefix: str,
    notify: NotifySocket,
    ext4_disk: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = broker_factory(DEPLOYED_BROKER)
    database = ext4_disk / "hub.db"
    hub, sensors = _rig(tmp_path, broker, unique_prefix, database, notify)
    try:
        await hub.start()
        await asyncio.to_thread(_fail_the_file_system, ext4_disk)
        await sensors.burst(FAULT_MOTIONS)
        assert "row(s) held" in await notify.wait_for("database not writable")
        assert await hub.terminate() == 0
        restarted = subprocess.run(  # noqa: ASYNC221 - the hub must exit by itself, at once
            hub.command(), capture_output=True, text=True, timeout=30, check=False
        )
    finally:
        hub.cleanup()
    log = hub.log.read_text(errors="replace")
    # Held in memory (acknowledged) until the hub stopped; what the hub had not yet taken
    # stays at the broker, unacknowledged, for when the card is fixed.
    held = re.search(r"stopping with (\d+) motion row\(s\) not written", log)
    assert held is not None, log
    _report(capsys, "read-only card", len(sensors.accepted), 0, int(held.group(1)))
    assert _stored(database) == []
    assert restarted.returncode != 0
    assert "not writable" in restarted.stdout + restarted.stderr


async def test_a_deleted_database_folder_is_loud_and_the_watchdog_check_fails(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    notify: NotifySocket,
) -> None:
    folder = tmp_path / "data"
    config = _config(
        tmp_path, broker, unique_prefix, folder / "hub.db", unwritable_grace_minutes="0.01"
    )
    hub = HubProcess(config, notify, tmp_path / "hub.log", watchdog_seconds=0.2)
    sensors = Sensors(broker, unique_prefix)
    try:
        await hub.start()
        await asyncio.to_thread(shutil.rmtree, folder)
        await sensors.burst(4)
        status = await notify.wait_for("deleted or replaced")
        assert "row(s) held" in status
        # Past the grace (0.6 s) the check fails: no more WATCHDOG=1, and the journal says why.
        await notify.wait_for_silence("WATCHDOG=1", seconds=1.0)
        assert hub.running
    finally:
        hub.cleanup()
    log = hub.log.read_text(errors="replace")
    assert "unhealthy, the watchdog will restart the hub" in log
    assert "was deleted or replaced" in log
    assert "Traceback" not in log


def _remaining_length(length: int) -> bytes:
    """MQTT's variable-length integer."""
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _publish_raw(broker: Broker, topic: str, payload: bytes) -> None:
    """CONNECT, then a QoS-0 PUBLISH of `payload`, on a plain socket: the client libraries
    wait seconds for a broker that hung up on them (it does, on a packet over its limit)."""
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + _mqtt_string(f"huge-{uuid.uuid4().hex[:8]}")
    publish = _mqtt_string(topic) + payload
    with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        sock.sendall(b"\x10" + _remaining_length(len(connect)) + connect)
        assert sock.recv(4)[:1] == b"\x20"  # CONNACK
        with contextlib.suppress(OSError):  # reset by the broker part way: as it should
            sock.sendall(b"\x30" + _remaining_length(len(publish)) + publish)


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM): a 10 MB message read and freed again
    leaves VmRSS where it was, but not this."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_huge_messages_are_refused_at_the_deployed_broker_before_the_hub_reads_them(
    tmp_path: Path,
    broker_factory: BrokerFactory,
    unique_prefix: str,
    notify: NotifySocket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # paho reads a whole message before the hub can look at its size, so the 64 KiB limit
    # must be the broker's (deploy/mosquitto: max_packet_size 65536).
    broker = broker_factory(f"{DEPLOYED_BROKER}max_packet_size 65536\n")
    database = tmp_path / "hub.db"
    hub, sensors = _rig(tmp_path, broker, unique_prefix, database, notify)
    huge = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    try:
        await hub.start()
        assert hub.process is not None
        before = _peak_rss_kib(hub.process.pid)
        for _ in range(20):
            await asyncio.to_thread(_publish_raw, broker, f"{unique_prefix}/s0/motion", huge)
        await sensors.burst(4)  # and the hub goes on
        stored = await _until_stored(database, 4)
        after = _peak_rss_kib(hub.process.pid)
        assert await hub.terminate() == 0
    finally:
        hub.cleanup()
    with capsys.disabled():
        print(f"\n20 x 10 MB messages: hub peak RSS {before} -> {after} KiB")
    assert sorted(stored) == sorted(sensors.accepted)
    assert after - before < 5 * 1024  # not 20 x 10 MB, nor one of them
