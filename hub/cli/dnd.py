"""`spottypotty dnd on|off [ROOM] [--for MINUTES]`: do-not-disturb for a room, or the hub.

Through the running daemon's control socket (its runner owns the controls), or in this
process when no daemon runs (saved: the daemon starts with it). Sessions are still
recorded while it holds, with the reason `do_not_disturb`; no music starts, and music the
hub is playing there stops (its session ends).
"""

from __future__ import annotations

import argparse
import json
import sys

from hub.cli.common import EXIT_FAILURE, load_args_config
from hub.controls import CONTROL_ACTION, MAX_MINUTES


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    dnd = subparsers.add_parser(
        "dnd",
        parents=[common],
        help="do-not-disturb: sessions are recorded, no music starts",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    dnd.add_argument("state", choices=["on", "off"])
    dnd.add_argument("room", nargs="?", metavar="ROOM", help="a room (sensor) id; default: all")
    dnd.add_argument(
        "--for",
        dest="minutes",
        type=_minutes,
        metavar="MINUTES",
        help="switch it off by itself after MINUTES (with on)",
    )
    dnd.add_argument("--json", action="store_true", help="print the JSON response")
    dnd.set_defaults(command=dnd_command)


def _minutes(text: str) -> float:
    try:
        minutes = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not 0 < minutes <= MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"minutes must be above 0 and at most {MAX_MINUTES:g}")
    return minutes


def dnd_command(args: argparse.Namespace) -> int:
    from hub.sessions.local import control_owned  # noqa: PLC0415 - the runner only when used

    if args.minutes is not None and args.state == "off":
        print("spottypotty dnd: --for goes with on", file=sys.stderr)
        return EXIT_FAILURE
    event = {
        "action": CONTROL_ACTION,
        "control": "dnd",
        "room": args.room,
        "value": args.state == "on",
        "minutes": args.minutes,
    }
    response = control_owned(load_args_config(args), event)
    if args.json:
        print(json.dumps(response, indent=2))
    elif response["statusCode"] != 200:  # noqa: PLR2004 - HTTP's OK
        print(f"spottypotty dnd: {response['message']}", file=sys.stderr)
    else:
        controls = response["controls"]
        shown = controls["hub"] if args.room is None else controls["rooms"][args.room]
        target = "the hub (every room)" if args.room is None else f"room {args.room}"
        state = "on" if shown["dnd"] else "off"
        until = f" until {shown['dndUntil']}" if shown["dndUntil"] else ""
        print(f"do-not-disturb {state} for {target}{until}")
    return 0 if response["statusCode"] == 200 else EXIT_FAILURE  # noqa: PLR2004
