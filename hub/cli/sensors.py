"""`spottypotty sensors add|remove|list|retrust`: register, revoke, show and trust sensors.

`retrust ID` is for an encrypted BLE sensor locked out by the replay guard (reset or
re-flashed to a counter the hub has already seen): its next advert is believed whatever
its counter. It goes to the running daemon over the control socket, or, with no daemon,
into the saved guard state for the next one; either way it is logged.

`add` prints the firmware's `config.json` on stdout — the only time the sensor's password
or bindkey is ever shown — and everything else on stderr, so
`spottypotty sensors add bath … > config.json` captures exactly the snippet.
The work is done by hub.registry; this module only parses and prints.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.cli.common import EXIT_FAILURE, load_args_config

if TYPE_CHECKING:
    from hub.config import SensorConfig
    from hub.registry import Reloader
    from hub.store.sensors import SensorState


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    # The one-line summary `spottypotty --help` shows is in hub.cli.main: it lists this
    # group without importing this module.
    sensors = subparsers.add_parser("sensors", parents=[common])
    which = sensors.add_subparsers(metavar="WHAT", required=True)

    broker = argparse.ArgumentParser(add_help=False)
    broker.add_argument(
        "--mosquitto-passwd",
        metavar="FILE",
        type=Path,
        help="mosquitto's password file (default /etc/mosquitto/spottypotty/passwd)",
    )
    reload = broker.add_mutually_exclusive_group()
    reload.add_argument(
        "--mosquitto-pid",
        metavar="PID",
        type=int,
        help="send SIGHUP to this mosquitto (default: systemctl reload under systemd)",
    )
    reload.add_argument(
        "--no-reload", action="store_true", help="change the files only; reload mosquitto later"
    )

    add = which.add_parser(
        "add",
        parents=[common, broker],
        help="register a sensor; prints its firmware config.json once",
        description=(
            "Add a [[sensors]] table to the config and give the sensor its credentials: an "
            "MQTT account named after its id with a new random password, or (--ble-address) "
            "a new BTHome bindkey. The firmware config.json with the secret goes to stdout, "
            "once: it is stored nowhere else in clear."
        ),
    )
    add.add_argument("id", metavar="ID", help="sensor id: 1-64 of A-Z a-z 0-9 _ -")
    add.add_argument("--location", required=True, metavar="NAME", help="e.g. 'Main bathroom'")
    add.add_argument("--user", required=True, metavar="USER", help="whose sessions these are")
    add.add_argument("--ble-address", metavar="MAC", default="", help="a BLE (BTHome) sensor")
    add.add_argument("--playlist", metavar="URI", default="", help="spotify:playlist:… to play")
    add.add_argument("--device", metavar="NAME", default="", help="Spotify Connect device")
    add.add_argument(
        "--broker-host",
        metavar="HOST",
        default=f"{socket.gethostname()}.local",
        help="the broker address the firmware uses (default: this host's mDNS name)",
    )
    add.add_argument("--broker-port", metavar="PORT", type=int, default=1883, help="(default 1883)")
    add.set_defaults(command=_add)

    remove = which.add_parser(
        "remove",
        parents=[common, broker],
        help="revoke a sensor: its broker account and its config table",
    )
    remove.add_argument("id", metavar="ID")
    remove.set_defaults(command=_remove)

    listing = which.add_parser(
        "list", parents=[common], help="availability, last motion, battery, signal"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(command=_list)

    retrust = which.add_parser(
        "retrust",
        parents=[common],
        help="believe a locked-out BLE sensor's next advert, whatever its counter",
        description=(
            "After an encrypted BLE sensor was reset or re-flashed, its encryption counter may "
            "start below what the hub has seen, and the hub refuses its adverts as replays "
            "(the log says 'locked out'). This tells the hub to believe its next advert."
        ),
    )
    retrust.add_argument("id", metavar="ID")
    retrust.set_defaults(command=_retrust)


def sensor_json(sensor: SensorConfig, state: SensorState) -> dict[str, Any]:
    """One sensor as `sensors list --json` shows it: its config plus what the hub saw."""
    from hub.timeutil import iso  # noqa: PLC0415

    def when(stamp: float | None) -> str | None:
        return iso(stamp) if stamp is not None else None

    if sensor.ble_address:
        source = f"ble {sensor.ble_address}"
    elif sensor.mqtt_topic:
        source = f"mqtt {sensor.mqtt_format} {sensor.mqtt_topic}"
    else:
        source = "mqtt"
    return {
        "sensorId": sensor.id,
        "name": sensor.name,
        "userId": sensor.user_id,
        "enabled": sensor.enabled,
        "source": source,
        "availability": state.availability,
        "availabilityChangedAt": when(state.availability_changed_at),
        "lastMotionTime": when(state.last_motion_at),
        "batteryLevel": state.battery_level,
        "signalStrength": state.signal_strength,
        "firmwareVersion": state.firmware_version,
        "activeSessionId": state.active_session_id,
    }


# -- commands -------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    from hub.config import config_path  # noqa: PLC0415
    from hub.registry import NewSensor, add_sensor  # noqa: PLC0415

    registration = add_sensor(
        config_path(args.config),
        NewSensor(
            id=args.id,
            user_id=args.user,
            name=args.location,
            ble_address=args.ble_address,
            context_uri=args.playlist,
            spotify_device=args.device,
        ),
        password_file=_password_file(args),
        reload=_reloader(args),
        broker_host=args.broker_host,
        broker_port=args.broker_port,
    )
    sensor = registration.sensor
    if registration.kind == "mqtt":
        _note(f"registered {sensor.id}: broker account {sensor.id!r} in {_password_file(args)}")
        _note(
            registration.reload_note
            if registration.reloaded
            else f"WARNING: {registration.reload_note}"
        )
    else:
        _note(f"registered {sensor.id}: BLE {sensor.ble_address}, encrypted with a new bindkey")
    _note("the firmware config.json follows; it is shown only this once:")
    print(json.dumps(registration.firmware_config, indent=2, ensure_ascii=False), flush=True)
    _note("restart the hub to start listening to it: sudo systemctl restart spottypotty-hub")
    return 0 if registration.reloaded or registration.kind == "ble" else EXIT_FAILURE


def _remove(args: argparse.Namespace) -> int:
    from hub.config import config_path  # noqa: PLC0415
    from hub.registry import remove_sensor  # noqa: PLC0415

    removal = remove_sensor(
        config_path(args.config),
        args.id,
        password_file=_password_file(args),
        reload=_reloader(args),
    )
    done = [
        *(["its config table"] if removal.removed_from_config else []),
        *([f"its broker account in {_password_file(args)}"] if removal.removed_from_broker else []),
    ]
    print(f"removed {args.id}: {' and '.join(done)}")
    if removal.removed_from_broker:
        if not removal.reloaded:
            print(
                f"WARNING: {removal.reload_note}; until then it can still connect", file=sys.stderr
            )
            return EXIT_FAILURE
        print(removal.reload_note)
    print("restart the hub to stop listening to it: sudo systemctl restart spottypotty-hub")
    return 0


def _list(args: argparse.Namespace) -> int:
    from hub.cli.reports import sensors_report  # noqa: PLC0415
    from hub.store import close_database, open_database  # noqa: PLC0415
    from hub.store.sensors import SensorRepository  # noqa: PLC0415

    config = load_args_config(args)
    db = open_database(config.hub.database, create=False)
    try:
        repository = SensorRepository(db)
        states = [repository.state(sensor.id) for sensor in config.sensors]
    finally:
        close_database(db)
    rows = [
        sensor_json(sensor, state) for sensor, state in zip(config.sensors, states, strict=True)
    ]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(sensors_report(rows))
    return 0


def _retrust(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415

    from hub.control import route  # noqa: PLC0415
    from hub.ingest.ble_state import RETRUST_ACTION, retrust_saved  # noqa: PLC0415
    from hub.store import close_database, open_database  # noqa: PLC0415

    config = load_args_config(args)
    sensor = next((s for s in config.sensors if s.id == args.id), None)
    if sensor is None or not sensor.ble_address or not sensor.ble_bindkey:
        print(
            f"spottypotty sensors retrust: {args.id!r} is not a BLE sensor with a ble_bindkey "
            "(only encrypted sensors have a counter to trust)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    address = sensor.ble_address.upper()

    def here() -> dict[str, Any]:
        db = open_database(config.hub.database)
        try:
            last = retrust_saved(db, address)
        finally:
            close_database(db)
        logging.getLogger(__name__).warning(
            "BLE sensor %s (%s) retrusted by its owner (no hub running: the next one will)",
            sensor.id,
            address,
        )
        return {"statusCode": 200, "sensorId": sensor.id, "address": address, "lastCounter": last}

    answer = route(config.hub.database, {"action": RETRUST_ACTION, "sensorId": sensor.id}, here)
    if answer.get("statusCode") != 200:  # noqa: PLR2004
        print(f"spottypotty sensors retrust: {answer.get('message')}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"retrusted {sensor.id} ({address}): its next encrypted advert is believed whatever its "
        f"counter (last believed: {answer.get('lastCounter')})"
    )
    return 0


def _password_file(args: argparse.Namespace) -> Path:
    from hub.registry import DEFAULT_PASSWORD_FILE  # noqa: PLC0415

    return Path(args.mosquitto_passwd or DEFAULT_PASSWORD_FILE)


def _reloader(args: argparse.Namespace) -> Reloader:
    from hub.registry import mosquitto_reloader, no_reload  # noqa: PLC0415

    return no_reload if args.no_reload else mosquitto_reloader(args.mosquitto_pid)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
