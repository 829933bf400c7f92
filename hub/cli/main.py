"""Argument parsing and dispatch. Every command calls the library; no logic lives here.

Imports are lazy per command so `spottypotty invoke` starts in tens of milliseconds: the
command groups with a module of their own (`sensors`, `sync`, `spotify`, `ble`, `backup`)
are listed here by name and summary, and their module is imported only when chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hub import __version__
from hub.cli.common import EXIT_CONFIG, EXIT_DATA, EXIT_FAILURE, load_args_config
from hub.cli.lazy import add_subcommands
from hub.errors import ConfigError, DamagedDatabaseError, HubError

if TYPE_CHECKING:
    from sqlite_utils import Database


_E = TypeVar("_E", bound=BaseException)

_FIRST_ERROR_STATUS = 400
CLOUD_ANALYTICS_LIMIT = 100_000  # sessions read back for `analytics --cloud`


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging  # noqa: PLC0415 - not before the parse: `--help` and its errors do not log

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except (ConfigError, DamagedDatabaseError) as exc:
        return _refuse(exc)
    except ExceptionGroup as group:  # from the daemon's TaskGroup, e.g. an unsafe secret file
        refusals, rest = group.split((ConfigError, DamagedDatabaseError))
        if refusals is None or rest is not None:
            raise
        return _refuse(_first_leaf(refusals))
    except HubError as exc:
        print(f"spottypotty: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `spottypotty sessions | head`
        return 0
    except OSError as exc:  # an unreadable --event file, a full disk, …
        print(f"spottypotty: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _refuse(exc: HubError) -> int:
    """A ConfigError or DamagedDatabaseError: restarting cannot fix either, so it is said
    once, with a status the systemd unit does not restart on."""
    if isinstance(exc, ConfigError):
        _print_config_problems(exc)
        return EXIT_CONFIG
    print(f"spottypotty: {exc}", file=sys.stderr)
    return EXIT_DATA


def _first_leaf(group: BaseExceptionGroup[_E]) -> _E:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spottypotty",
        description="SpottyPottySense hub: motion-triggered music, run at home.",
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The subcommands' copies must not overwrite `spottypotty --config X run` with a default.
    common = _common_options(suppress=True)
    sub = add_subcommands(parser, metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", parents=[common], help="the hub daemon, in the foreground (systemd Type=notify)"
    )
    run.set_defaults(command=_run)

    invoke = sub.add_parser(
        "invoke",
        parents=[common],
        help="run one Session Manager event (JSON from --event FILE or stdin)",
    )
    invoke.add_argument("--event", metavar="FILE", help="event JSON file (default: stdin)")
    invoke.set_defaults(command=_invoke)

    sessions = sub.add_parser("sessions", parents=[common], help="list and query sessions")
    _add_range_options(sessions)
    sessions.add_argument("--status", choices=["active", "completed"])
    sessions.add_argument("--limit", type=int, default=20, help="rows to show (default 20)")
    sessions.add_argument("--json", action="store_true", help="print the JSON response")
    sessions.add_argument(
        "--explain",
        metavar="ID",
        help="one session and why: which sensor, which rule, what the player was asked",
    )
    sessions.set_defaults(command=_sessions)

    analytics = sub.add_parser(
        "analytics", parents=[common], help="analytics for a sensor, a user or everyone"
    )
    _add_range_options(analytics)
    analytics.add_argument("--json", action="store_true", help="print the JSON response")
    analytics.set_defaults(command=_analytics)

    check = sub.add_parser("check-config", parents=[common], help="validate the config file")
    check.set_defaults(command=_check_config)

    doctor = sub.add_parser(
        "doctor", parents=[common], help="check broker, database, Spotify, BLE and cloud"
    )
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.set_defaults(command=_doctor)

    sub.add_module(
        "sensors", "hub.cli.sensors", common, summary="register, revoke, list and retrust sensors"
    )
    sub.add_module(
        "dnd", "hub.cli.dnd", common, summary="do-not-disturb on|off [ROOM] [--for MINUTES]"
    )

    simulate = sub.add_parser(
        "simulate", parents=[common], help="publish sensor messages as the firmware does"
    )
    simulate_sub = simulate.add_subparsers(metavar="WHAT", required=True)
    motion = simulate_sub.add_parser(
        "motion", parents=[common], help="a sensor's motion on {topic_prefix}/SENSOR/motion"
    )
    motion.add_argument("sensor", metavar="SENSOR", help="the sensor id")
    motion.add_argument("--count", type=_positive_int, default=1, help="motion events (1)")
    motion.add_argument(
        "--interval", type=float, default=0.0, metavar="SECONDS", help="between events (0)"
    )
    motion.set_defaults(command=_simulate_motion)

    sub.add_module(
        "sync",
        "hub.cli.sync",
        common,
        summary="upload new and changed sessions to the cloud table ([cloud] in the config)",
    )
    sub.add_module(
        "spotify",
        "hub.cli.spotify",
        common,
        summary="Spotify login (headless), devices, play test",
    )
    sub.add_module(
        "ble",
        "hub.cli.ble",
        common,
        summary="BTHome Bluetooth sensors: scan nearby, decode an advert",
    )
    sub.add_module(
        "backup",
        "hub.cli.backup",
        common,
        summary="copy the database to PATH while the hub runs (SQLite backup API)",
    )

    demo = sub.add_parser(
        "demo", parents=[common], help="a simulated sensor driving real sessions, then analytics"
    )
    demo.add_argument("--dir", default="var/demo", help="where the demo keeps its files")
    demo.set_defaults(command=_demo)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """`--config` and `-v`, accepted before and after the command name."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS if suppress else None,
        help="config file (default: $SPOTTYPOTTY_CONFIG, else /etc/spottypotty/hub.toml)",
    )
    options.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="debug logging",
    )
    return options


def _add_range_options(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--sensor", metavar="ID", help="only this sensor")
    who.add_argument("--user", metavar="ID", help="only this user's sensors")
    parser.add_argument("--since", metavar="DATE", help="from this date/time (inclusive)")
    parser.add_argument("--until", metavar="DATE", help="to this date/time (a date: whole day)")
    parser.add_argument(
        "--cloud", action="store_true", help="read the cloud table (SensorIdIndex) instead"
    )


def _print_config_problems(exc: ConfigError) -> None:
    source = f" in {exc.source}" if exc.source else ""
    print(f"spottypotty: {len(exc.problems)} problem(s){source}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)


# -- shared plumbing ------------------------------------------------------------------


def _operation(args: argparse.Namespace, event: object, *, create: bool = False) -> dict[str, Any]:
    """Answer a read. Reports (`sessions`, `analytics`) never create a database; `invoke`
    may, as its changes would (the seed's contract answers reads on an empty store)."""
    from hub.sessions.operations import OperationContext, handle  # noqa: PLC0415
    from hub.store import close_database, open_database  # noqa: PLC0415

    config = load_args_config(args)
    db: Database = open_database(config.hub.database, create=create)
    try:
        return handle(event, OperationContext(config=config, db=db))
    finally:
        close_database(db)


def _range_event(args: argparse.Namespace, action: str) -> dict[str, Any]:
    options = {
        "sensorId": args.sensor,
        "userId": args.user,
        "startDate": args.since,
        "endDate": args.until,
    }
    return {"action": action} | {key: value for key, value in options.items() if value is not None}


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- commands -------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from hub.daemon import serve  # noqa: PLC0415
    from hub.systemd import configure_logging  # noqa: PLC0415

    configure_logging(args.verbose)
    return serve(load_args_config(args))


def _invoke(args: argparse.Namespace) -> int:
    raw = Path(args.event).read_text(encoding="utf-8") if args.event else sys.stdin.read()
    try:
        event = json.loads(raw)
    except json.JSONDecodeError as exc:
        response: dict[str, Any] = {
            "statusCode": 400,
            "action": None,
            "error": "ValidationError",
            "message": f"the event is not JSON: {exc}",
            "field": "event",
        }
    else:
        response = _invoke_owner(args, event)
    _print_json(response)
    return 0 if response["statusCode"] < _FIRST_ERROR_STATUS else EXIT_FAILURE


def _invoke_owner(args: argparse.Namespace, event: object) -> dict[str, Any]:
    """Changes: the running daemon answers over its control socket; with none, this
    process does the same work with the same engine and writer, holding the lock file
    meanwhile. Reads change nothing: they are answered from the database directly."""
    from hub.sessions.operations import CHANGES  # noqa: PLC0415

    if not isinstance(event, dict) or event.get("action") not in CHANGES:
        return _operation(args, event, create=True)
    from hub.sessions.local import invoke_owned  # noqa: PLC0415 - only a change runs the runner

    return invoke_owned(load_args_config(args), event)


def _sessions(args: argparse.Namespace) -> int:
    from hub.cli.reports import sessions_report  # noqa: PLC0415

    if args.explain:
        return _explain(args)
    if args.cloud:
        records = _cloud_records(args, limit=args.limit)
        if args.status:
            records = [r for r in records if r["status"] == args.status]
        response = {
            "statusCode": 200,
            "action": "query_sessions",
            "sessions": records,
            "count": len(records),
            "hasMore": len(records) >= args.limit,
        }
        return _report(args, response, sessions_report)
    event = _range_event(args, "query_sessions") | {"limit": args.limit}
    if args.status:
        event["status"] = args.status
    return _report(args, _operation(args, event), sessions_report)


def _explain(args: argparse.Namespace) -> int:
    from hub.cli.reports import explain_report  # noqa: PLC0415
    from hub.errors import NotFoundError  # noqa: PLC0415
    from hub.sessions.operations import explain  # noqa: PLC0415
    from hub.store import close_database, open_database  # noqa: PLC0415

    config = load_args_config(args)
    db: Database = open_database(config.hub.database, create=False)
    try:
        explained = explain(db, args.explain)
    except NotFoundError as exc:
        print(f"spottypotty: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        close_database(db)
    if args.json:
        _print_json(explained)
    else:
        print(explain_report(explained))
    return 0


def _analytics(args: argparse.Namespace) -> int:
    from hub.cli.reports import analytics_report  # noqa: PLC0415

    if args.cloud:
        from hub.sessions.analytics import aggregate_records, summarize  # noqa: PLC0415
        from hub.timeutil import local_zone  # noqa: PLC0415

        tz = local_zone(load_args_config(args).hub.timezone)
        records = _cloud_records(args, limit=CLOUD_ANALYTICS_LIMIT)
        analytics = summarize(aggregate_records(records), tz)
        response = {"statusCode": 200, "action": "get_session_analytics", "analytics": analytics}
    else:
        response = _operation(args, _range_event(args, "get_session_analytics"))
    return _report(args, response, lambda r: analytics_report(r["analytics"]))


def _cloud_records(args: argparse.Namespace, *, limit: int) -> list[dict[str, Any]]:
    """Sessions from the cloud table for --sensor, --user's sensors, or every sensor."""
    from hub.errors import ValidationError  # noqa: PLC0415
    from hub.sync.cloud_read import query_sessions  # noqa: PLC0415
    from hub.timeutil import local_zone, parse_instant  # noqa: PLC0415

    config = load_args_config(args)
    tz = local_zone(config.hub.timezone)
    try:
        start = parse_instant(args.since, tz) if args.since else None
        end = parse_instant(args.until, tz, end_of_day=True) if args.until else None
    except HubError as exc:
        raise ValidationError("--since/--until", str(exc)) from exc
    if args.sensor:
        sensor_ids = [args.sensor]
    else:
        sensor_ids = [s.id for s in config.sensors if args.user in (None, s.user_id)]
    return query_sessions(config.cloud, sensor_ids, start=start, end=end, limit=limit)


def _report(
    args: argparse.Namespace,
    response: dict[str, Any],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """`--json` prints the response as is; otherwise the report, or the error."""
    failed = response["statusCode"] >= _FIRST_ERROR_STATUS
    if args.json:
        _print_json(response)
    elif failed:
        print(f"spottypotty: {response['error']}: {response['message']}", file=sys.stderr)
    else:
        print(render(response))
    return EXIT_FAILURE if failed else 0


def _check_config(args: argparse.Namespace) -> int:
    from hub.config import config_path  # noqa: PLC0415

    config = load_args_config(args)
    enabled = sum(1 for s in config.sensors if s.enabled)
    print(
        f"{config_path(args.config)}: OK — {len(config.sensors)} sensor(s), {enabled} enabled, "
        f"database {config.hub.database}"
    )
    return 0


def _simulate_motion(args: argparse.Namespace) -> int:
    from hub.simulate import simulate_motion  # noqa: PLC0415

    simulate_motion(load_args_config(args), args.sensor, count=args.count, interval=args.interval)
    print(f"published {args.count} motion event(s) for {args.sensor}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from hub.cli.render import table  # noqa: PLC0415
    from hub.doctor import run_checks  # noqa: PLC0415

    checks = run_checks(load_args_config(args))
    if args.json:
        _print_json([c.as_json() for c in checks])
    else:
        marks = {"ok": "✓", "warn": "!", "fail": "✗", "off": "-"}
        rows = [(f"{marks[c.verdict]} {c.part}", c.detail, c.fix or None) for c in checks]
        print(table(["part", "state", "what to do"], rows))
    return EXIT_FAILURE if any(c.verdict == "fail" for c in checks) else 0


def _demo(args: argparse.Namespace) -> int:
    from hub.demo import run_demo  # noqa: PLC0415

    return run_demo(Path(args.dir))
