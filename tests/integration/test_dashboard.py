"""The dashboard in a real headless Chromium, against an in-process Daemon with the HTTP API,
fed through a real mosquitto: the page loads, a simulated motion makes a session appear live
(no reload), the charts render. Screenshots go to var/screenshots/.

Also here, because they need the same running daemon: the API flood that must not slow
motion handling, and Home Assistant discovery published by `hub.http.wiring`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import zoneinfo
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiomqtt
import pytest

from hub.config import HubConfig, load_config
from hub.daemon import Daemon
from hub.model import SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.systemd import Notifier
from tests.broker import free_port

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
HOUR = 3600


def _config(
    tmp_path: Path, broker: Broker, prefix: str, sensors: list[tuple[str, str]]
) -> HubConfig:
    tables = "".join(
        f'[[sensors]]\nid = "{sid}"\nuser_id = "u1"\nname = "{name}"\n' for sid, name in sensors
    )
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[hub]
database = "hub.db"
timezone = "Europe/London"
[mqtt]
port = {broker.port}
topic_prefix = "{prefix}"
[sessions]
timeout_minutes = 5
[spotify]
dry_run = true
[http]
enabled = true
port = {free_port()}
{tables}""",
        encoding="utf-8",
    )
    return load_config(path)


def _history(config: HubConfig, now: float) -> None:
    """Two weeks of completed sessions, evenings and mornings heavier, for the charts."""
    rng = random.Random(7)
    zone = zoneinfo.ZoneInfo(config.hub.timezone)
    today = dt.datetime.fromtimestamp(now, zone).date()
    midnight = dt.datetime.combine(today, dt.time(), zone).timestamp()
    db = open_database(config.hub.database)
    repository = SessionRepository(db, ttl_days=30)
    try:
        for day in range(14):
            for _ in range(rng.randint(1, 6)):
                hour = rng.choice([7, 7, 8, 8, 12, 18, 19, 19, 20, 21, 22])
                start = midnight - day * 86400 + hour * HOUR + rng.randint(0, 50) * 60
                if start > now - HOUR:
                    continue
                sensor = rng.choice(config.sensors)
                session = open_session(
                    session_id=f"session-{sensor.id}-{int(start)}-{rng.getrandbits(32):08x}",
                    sensor_id=sensor.id,
                    user_id=sensor.user_id,
                    start=start,
                    now=start,
                    ttl_days=30,
                )
                length = rng.randint(3, 25) * 60
                repository.save(
                    session.with_changes(
                        status=SessionStatus.COMPLETED,
                        end=start + length,
                        last_motion=start + length - 300,
                        motion_events_count=rng.randint(1, 9),
                        playback_started=rng.random() < 0.9,
                        updated_at=start + length,
                    ),
                    created=True,
                )
    finally:
        close_database(db)


class HubFactory(Protocol):
    async def __call__(self, sensors: list[tuple[str, str]], *, history: bool) -> Hub: ...


@dataclass
class Hub:
    config: HubConfig
    daemon: Daemon
    base: str


@pytest.fixture
async def hub_factory(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> AsyncIterator[HubFactory]:
    tasks: list[asyncio.Task[Any]] = []
    daemons: list[Daemon] = []

    async def start(sensors: list[tuple[str, str]], *, history: bool) -> Hub:
        config = _config(tmp_path, broker, unique_prefix, sensors)
        if history:
            _history(config, time.time())
        daemon = Daemon(config, notifier=Notifier.from_environment({}), client_id="test-dash")
        daemons.append(daemon)
        tasks.append(asyncio.create_task(daemon.run(), name="daemon"))
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        # The daemon itself serves the API (http.enabled) and runs the Home Assistant task.
        base = f"http://127.0.0.1:{config.http.port}"
        async with asyncio.timeout(10):
            while not await asyncio.to_thread(_answers, base + "/health"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return Hub(config, daemon, base)

    yield start
    for daemon in daemons:
        daemon.stop()
    await asyncio.gather(*tasks, return_exceptions=True)


def _answers(url: str) -> bool:
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310
            return True
    except OSError:
        return False


def _motion(sensor: str, seq: int) -> bytes:
    return json.dumps(
        {
            "event": "motion_detected",
            "sensorId": sensor,
            "timestamp": int(time.time()),
            "seq": seq,
            "metadata": {"batteryLevel": 82, "signalStrength": -61, "firmwareVersion": "1.0.0"},
        }
    ).encode()


# --- the browser -------------------------------------------------------------------------


def _browser() -> Any:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            "needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    profile = SCREENSHOTS.parent / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def _full_screenshot(driver: Any, path: Path, width: int) -> None:
    """The whole page (not just the viewport) at `width` CSS pixels."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": int(height), "deviceScaleFactor": 1, "mobile": width < 600},
    )
    time.sleep(0.3)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": int(height), "deviceScaleFactor": 1, "mobile": width < 600},
    )
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _wait(driver: Any, condition: str, limit: float = 15.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {condition}")
        if value:
            return value
        time.sleep(0.05)
    logs = driver.execute_script("return document.getElementById('updated').textContent")
    pytest.fail(f"timed out waiting for {condition} (page says: {logs})")


async def test_dashboard_shows_a_motion_live(
    hub_factory: HubFactory, unique_prefix: str, broker: Broker
) -> None:
    hub: Hub = await hub_factory(
        [("bath", "Main bathroom"), ("ensuite", "Ensuite"), ("downstairs", "Downstairs loo")],
        history=True,
    )
    driver = await asyncio.to_thread(_browser)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        await asyncio.to_thread(driver.get, hub.base + "/")
        await asyncio.to_thread(_wait, driver, "document.body.dataset.loaded === 'true'")
        await asyncio.to_thread(_wait, driver, "document.querySelector('#pill-live.ok')")
        assert (
            await asyncio.to_thread(
                driver.execute_script, "return document.querySelectorAll('.card.active').length"
            )
            == 0
        )
        marker = "window.__sameDocument = true"
        await asyncio.to_thread(driver.execute_script, marker)

        async with aiomqtt.Client("127.0.0.1", broker.port) as sensor:
            await sensor.publish(f"{unique_prefix}/bath/motion", _motion("bath", 1), qos=1)
            await sensor.publish(
                f"{unique_prefix}/ensuite/status", b'{"status":"online"}', qos=1, retain=True
            )
            await sensor.publish(
                f"{unique_prefix}/downstairs/status", b'{"status":"offline"}', qos=1, retain=True
            )

        shown = "document.querySelector('.card.active[data-sensor=\"bath\"]')"
        await asyncio.to_thread(_wait, driver, shown)
        # Live, not reloaded: the marker set before the motion is still there.
        assert (
            await asyncio.to_thread(driver.execute_script, "return window.__sameDocument") is True
        )
        await asyncio.to_thread(
            _wait,
            driver,
            "document.querySelector('#health-rows tr[data-sensor=\"bath\"]')"
            ".textContent.includes('82%')",
        )
        daily = await asyncio.to_thread(
            driver.execute_script,
            "return document.querySelectorAll('#chart-daily svg rect.bar').length",
        )
        hours = await asyncio.to_thread(
            driver.execute_script,
            "return document.querySelectorAll('#chart-hours svg rect.bar').length",
        )
        assert daily == 14
        assert hours == 24
        today = await asyncio.to_thread(
            driver.execute_script, "return document.getElementById('glance-today').textContent"
        )
        assert int(today) >= 1
        await asyncio.sleep(1.2)  # let the session clock tick once
        await asyncio.to_thread(
            _full_screenshot, driver, SCREENSHOTS / "dashboard-desktop.png", 1280
        )
        await asyncio.to_thread(_full_screenshot, driver, SCREENSHOTS / "dashboard-phone.png", 390)
    finally:
        await asyncio.to_thread(driver.quit)


# --- Home Assistant -------------------------------------------------------------------------


async def test_home_assistant_discovery_and_stats(
    hub_factory: HubFactory, unique_prefix: str, broker: Broker, tmp_path: Path
) -> None:
    db = open_database(tmp_path / "hub.db")  # the hub announced "old" last time
    db.execute(
        "INSERT INTO hub_meta (key, value) VALUES (?, ?)", ["haDiscoverySensors", '["bath", "old"]']
    )
    db.conn.commit()
    close_database(db)
    hub: Hub = await hub_factory([("bath", "Main bathroom")], history=False)
    assert hub.daemon.link is not None
    seen: dict[str, bytes] = {}

    async def until(done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                seen[str(message.topic)] = message.payload
                if done():
                    return

    def stats() -> dict[str, Any]:
        raw = seen.get("spottypotty/sensors/bath/stats")
        return json.loads(raw) if raw else {}

    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe("homeassistant/#", qos=1)
        await client.subscribe("spottypotty/sensors/+/stats", qos=1)
        await client.publish(f"{unique_prefix}/bath/motion", _motion("bath", 1), qos=1)
        await until(lambda: stats().get("sessionsToday") == 1 and len(seen) >= 5)
        config = "homeassistant/binary_sensor/spottypotty_bath/session/config"
        assert json.loads(seen[config])["state_topic"] == "spottypotty/sensors/bath/stats"
        assert stats()["lastSessionDurationMinutes"] is None
        # Entities of a sensor no longer configured are removed (empty retained configs).
        assert seen["homeassistant/binary_sensor/spottypotty_old/motion/config"] == b""
        # Home Assistant restarts: its "online" (with the proposed MqttLink.ha_online)
        # makes the hub announce again.
        seen.clear()
        online = asyncio.Event()
        object.__setattr__(hub.daemon.link, "ha_online", online)  # works with or without it
        online.set()
        await until(lambda: config in seen)
        assert not online.is_set()


# --- an API flood must not slow ingest ----------------------------------------------------

FLOOD = r"""
import random, sys, threading, time, urllib.request
base, seconds = sys.argv[1], float(sys.argv[2])
paths = ["/sessions?limit=200", "/analytics", "/health", "/sensors", "/sessions?status=active"]
# Half the requests bust the answer cache: new queries every time.
busting = ["/sessions?limit={}", "/analytics?sensorId=s{}", "/sessions?sensorId=s{}&limit=50"]
count = [0]
ok = [0]
def hammer(n):
    end = time.monotonic() + seconds
    i = n
    while time.monotonic() < end:
        try:
            if i % 2:
                path = random.choice(busting).format(random.randint(1, 39))
            else:
                path = paths[i % len(paths)]
            with urllib.request.urlopen(base + path, timeout=5) as r:
                r.read()
                ok[0] += 1
        except Exception:
            pass
        count[0] += 1
        i += 1
threads = [threading.Thread(target=hammer, args=(n,)) for n in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
print(count[0], ok[0])
"""


async def _latencies(broker: Broker, prefix: str, sensors: list[str]) -> list[float]:
    """Motion published → the new session's record back on MQTT, per sensor (ms)."""
    found: list[float] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe("spottypotty/sessions/+", qos=1)
        await asyncio.sleep(0.2)  # retained records from earlier rounds arrive first
        for sensor in sensors:
            started = time.perf_counter()
            await client.publish(f"{prefix}/{sensor}/motion", _motion(sensor, 1), qos=1)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    if str(message.topic).endswith(f"/{sensor}"):
                        found.append((time.perf_counter() - started) * 1000)
                        break
            await asyncio.sleep(0.05)
    return found


async def test_an_api_flood_does_not_slow_motion_handling(
    hub_factory: HubFactory, unique_prefix: str, broker: Broker
) -> None:
    sensors = [(f"s{n}", f"Sensor {n}") for n in range(40)]
    hub: Hub = await hub_factory(sensors, history=True)
    quiet = await _latencies(broker, unique_prefix, [f"s{n}" for n in range(20)])
    flood = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FLOOD,
        hub.base,
        "8",
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    await asyncio.sleep(1.0)  # the flood is in full swing
    loaded = await _latencies(broker, unique_prefix, [f"s{n}" for n in range(20, 40)])
    out, _ = await flood.communicate()
    requests, answered = (int(n) for n in out.decode().split())
    report = (
        f"motion→session latency: quiet median {statistics.median(quiet):.1f} ms "
        f"(max {max(quiet):.1f}); under an API flood of {requests / 8:.0f} req/s "
        f"({answered / 8:.0f}/s answered 200, the rest 503 Busy) "
        f"median {statistics.median(loaded):.1f} ms (max {max(loaded):.1f})"
    )
    print(report)
    SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS.parent / "api-flood.txt").write_text(report + "\n", encoding="utf-8")
    assert requests > 100, "the flood did not reach the API"
    assert len(loaded) == 20
    assert statistics.median(loaded) < max(50.0, 3 * statistics.median(quiet)), report
    # The worst case under the flood, against the worst case without it: a machine busy
    # with other work stalls both (a quiet max of 309 ms was seen beside another test run).
    assert max(loaded) < max(250.0, 1.5 * max(quiet)), report
