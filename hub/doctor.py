"""`spottypotty doctor`: check every part the hub depends on, and say what to fix.

Each check is independent and bounded in time; one failing part never hides the others.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from hub.clock import system_clock_synchronised
from hub.config import HubConfig
from hub.errors import HubError

Verdict = Literal["ok", "warn", "fail", "off"]
SPOTIFY_TOPIC = "spottypotty/hub/spotify"
HUB_TOPICS = [
    "spottypotty/hub/status",
    "spottypotty/hub/stats",
    SPOTIFY_TOPIC,
    "spottypotty/hub/storage",
]


@dataclass(frozen=True, slots=True)
class Check:
    part: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def run_checks(config: HubConfig) -> list[Check]:
    checks: list[Callable[[HubConfig], Check]] = [
        check_database,
        check_broker,
        check_spotify,
        check_ble,
        check_cloud,
        check_clock,
    ]
    results = []
    for check in checks:
        try:
            results.append(check(config))
        except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
            name = check.__name__.removeprefix("check_")
            results.append(Check(name, "fail", f"the check itself failed: {exc}"))
    return results


def check_database(config: HubConfig) -> Check:
    from hub.store import close_database, open_database  # noqa: PLC0415

    path = config.hub.database
    if not path.exists():
        return Check(
            "database", "warn", f"{path} does not exist yet", "start the hub: it creates it"
        )
    try:
        db = open_database(path, integrity_check=True)
    except HubError as exc:
        return Check("database", "fail", str(exc), "restore a backup (spottypotty backup)")
    try:
        sessions = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        active = db.execute("SELECT count(*) FROM sessions WHERE status = 'active'").fetchone()[0]
    finally:
        close_database(db)
    if not os.access(path, os.W_OK):
        return Check("database", "fail", f"{path} is not writable", "check its owner and mode")
    return Check("database", "ok", f"{path}: intact, {sessions} sessions, {active} active")


def check_broker(config: HubConfig) -> Check:
    from hub.ingest.mqtt import read_retained  # noqa: PLC0415

    where = f"{config.mqtt.host}:{config.mqtt.port}"
    try:
        retained = asyncio.run(read_retained(config, HUB_TOPICS))
    except HubError as exc:
        return Check(
            "broker",
            "fail",
            str(exc),
            "is mosquitto running (systemctl status mosquitto)? are mqtt.host/port, "
            "mqtt.username and the password right?",
        )
    hub_status = retained.get(HUB_TOPICS[0], b"").decode(errors="replace") or "never seen"
    detail = f"{where} reachable; the hub says: {hub_status}"
    stats = retained.get(HUB_TOPICS[1])
    if stats:
        counters = json.loads(stats)
        dropped = sum(v for k, v in counters.items() if "unknown_sensor:" in k)
        errors = sum(v for k, v in counters.items() if "parse_error:" in k)
        detail += f"; {dropped} motion message(s) from unknown sensors, {errors} malformed"
    if hub_status != "online":
        return Check("broker", "warn", detail, "start the hub: systemctl start spottypotty-hub")
    storage = retained.get(HUB_TOPICS[3], b"ok").decode(errors="replace")
    if storage != "ok":
        return Check(
            "broker",
            "fail",
            f"{detail}; the running hub cannot write its database: {storage}",
            "free space on its disk or remount it read-write (journalctl -u spottypotty-hub)",
        )
    return Check("broker", "ok", detail)


def check_spotify(config: HubConfig) -> Check:
    from hub.playback.login import list_devices  # noqa: PLC0415
    from hub.playback.spotify import STATUS_PREMIUM_REQUIRED  # noqa: PLC0415

    spotify = config.spotify
    if spotify.dry_run or not spotify.client_id:
        why = "spotify.dry_run = true" if spotify.dry_run else "no spotify.client_id"
        return Check("spotify", "off", f"dry run ({why}): music is only logged")
    token = Path(spotify.token_cache)
    if token.exists() and token.stat().st_mode & 0o077:
        return Check("spotify", "fail", f"{token} is readable by others", f"chmod 600 {token}")
    try:
        devices = list_devices(config)
    except HubError as exc:
        return Check("spotify", "fail", str(exc), "run: spottypotty spotify login")
    hub_says = _hub_spotify_status(config)
    if hub_says == STATUS_PREMIUM_REQUIRED:
        return Check(
            "spotify",
            "fail",
            f"logged in, but Spotify refuses playback: {hub_says} (the account is free)",
            "log in with a Premium account: spottypotty spotify login",
        )
    wanted = {s.spotify_device for s in config.sensors if s.spotify_device}
    known = {d.name for d in devices} | {d.id for d in devices}
    missing = sorted(wanted - known)
    detail = f"logged in; {len(devices)} device(s) visible"
    if hub_says and hub_says != "Spotify ready":
        return Check("spotify", "warn", f"{detail}; the hub says: {hub_says}")
    if missing:
        return Check(
            "spotify",
            "warn",
            f"{detail}; not visible now: {', '.join(missing)}",
            "wake those speakers (or fix spotify_device): sleeping devices drop off the list",
        )
    return Check("spotify", "ok", detail)


def _hub_spotify_status(config: HubConfig) -> str | None:
    """What the running hub last said about Spotify (its retained topic), if reachable."""
    from hub.ingest.mqtt import read_retained  # noqa: PLC0415

    try:
        retained = asyncio.run(read_retained(config, [SPOTIFY_TOPIC]))
    except HubError:
        return None  # the broker check says why
    said = retained.get(SPOTIFY_TOPIC)
    return said.decode(errors="replace") if said else None


def check_ble(config: HubConfig) -> Check:
    if not config.ble.enabled:
        return Check("ble", "off", "BLE is disabled (ble.enabled = false)")
    adapter = config.ble.adapter
    if not Path("/sys/class/bluetooth", adapter).exists():
        return Check(
            "ble",
            "fail",
            f"no Bluetooth adapter {adapter}",
            "plug the adapter in, or set ble.adapter (hciconfig lists them)",
        )
    return Check("ble", "ok", f"adapter {adapter} present")


def check_cloud(config: HubConfig) -> Check:
    cloud = config.cloud
    if not cloud.enabled:
        return Check("cloud", "off", "cloud sync is disabled (cloud.enabled = false)")
    from hub.sync.uploader import make_client  # noqa: PLC0415

    try:
        client = make_client(cloud)
        table = client.describe_table(TableName=cloud.table)["Table"]
    except Exception as exc:  # noqa: BLE001 - botocore's errors, reported as they are
        return Check(
            "cloud",
            "fail",
            f"cannot describe table {cloud.table}: {type(exc).__name__}: {exc}",
            "check AWS credentials (environment, ~/.aws or systemd credentials), "
            "cloud.region and cloud.table",
        )
    return Check("cloud", "ok", f"table {cloud.table} is {table.get('TableStatus', '?')}")


def check_clock(config: HubConfig) -> Check:
    """Whether recorded times are confirmed (hub/clock.py): a Pi has no real-time clock."""
    if config.hub.trust_clock:
        return Check("clock", "ok", "trusted without NTP (hub.trust_clock = true)")
    if system_clock_synchronised():
        return Check("clock", "ok", "the system clock is synchronised (NTP)")
    return Check(
        "clock",
        "warn",
        "the system clock is not synchronised: sessions are recorded unconfirmed and "
        "the sync holds them back until it is",
        "enable NTP: timedatectl set-ntp true (or, with a battery-backed RTC, set "
        "hub.trust_clock = true)",
    )
