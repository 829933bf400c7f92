"""`spottypotty spotify login | devices | test SENSOR`: thin commands over hub.playback.login.

Failures surface as HubError/ConfigError, which `hub.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import sys

from hub.cli.common import EXIT_FAILURE, load_args_config


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Register `spotify` and its three commands under the main parser's subcommands."""
    # The one-line summary `spottypotty --help` shows is in hub.cli.main: it lists this
    # group without importing this module.
    spotify = subparsers.add_parser("spotify", parents=[common])
    commands = spotify.add_subparsers(metavar="SPOTIFY_COMMAND", required=True)

    login = commands.add_parser(
        "login",
        parents=[common],
        help="log in to Spotify: open the printed URL anywhere, paste back the redirect address",
    )
    login.set_defaults(command=login_command)

    devices = commands.add_parser(
        "devices", parents=[common], help="list Spotify Connect devices (name, id, type, active)"
    )
    devices.add_argument("--json", action="store_true", help="print JSON")
    devices.set_defaults(command=devices_command)

    test = commands.add_parser(
        "test", parents=[common], help="play on a sensor's device for a few seconds, then pause"
    )
    test.add_argument("sensor", metavar="SENSOR", help="a configured sensor id")
    test.add_argument("--seconds", type=float, default=5.0, help="how long to play (default 5)")
    test.set_defaults(command=test_command)


def login_command(args: argparse.Namespace) -> int:
    from hub.playback.login import begin_login, finish_login  # noqa: PLC0415

    config = load_args_config(args)
    request = begin_login(config)
    redirect = config.spotify.redirect_uri
    print(
        "Open this address in a browser on any device, log in to Spotify and allow access:\n\n"
        f"  {request.url}\n\n"
        f"The browser then goes to {redirect}?code=... and shows an error page: that is\n"
        "expected. Copy that whole address from the address bar and paste it here.",
        file=sys.stderr,
    )
    print("Redirect address: ", end="", file=sys.stderr, flush=True)
    pasted = sys.stdin.readline()
    if not pasted.strip():
        print("spottypotty: no address pasted; nothing changed", file=sys.stderr)
        return EXIT_FAILURE
    finish_login(config, request, pasted)
    print(f"Logged in. Token saved to {config.spotify.token_cache} (mode 0600).")
    print("The running hub picks it up at its next session; no restart needed.")
    return 0


def devices_command(args: argparse.Namespace) -> int:
    from hub.playback.login import list_devices  # noqa: PLC0415

    devices = list_devices(load_args_config(args))
    if args.json:
        rows = [{"name": d.name, "id": d.id, "type": d.type, "active": d.active} for d in devices]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not devices:
        print("No devices: open Spotify on the speaker or phone (devices asleep are not listed).")
        return 0
    width = max(len(d.name) for d in devices)
    print(f"{'NAME':<{width}}  {'ID':<40}  {'TYPE':<12}  ACTIVE")
    for device in devices:
        active = "yes" if device.active else ""
        print(f"{device.name:<{width}}  {device.id:<40}  {device.type:<12}  {active}")
    return 0


def test_command(args: argparse.Namespace) -> int:
    from hub.playback.login import play_test  # noqa: PLC0415

    print(play_test(load_args_config(args), args.sensor, seconds=args.seconds))
    return 0
