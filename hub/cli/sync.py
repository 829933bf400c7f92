"""`spottypotty sync [--dry-run]`: upload new and changed sessions to DynamoDB, once.

A progress bar on stderr (rows, batches, rate, ETA; plain lines when stderr is not a
terminal, e.g. under systemd), a summary on stdout, exit 1 when anything failed or the
run stopped early (what was not uploaded stays due for the next run).

With `[cloud] enabled = false` it refuses (exit 1) and says how to turn it on; `--dry-run`
still works then, as it touches no network.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from hub.cli.common import EXIT_FAILURE, load_args_config
from hub.cli.render import table
from hub.timeutil import iso

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.sync.outbox import Outbox
    from hub.sync.uploader import Progress, SyncSummary

DRY_RUN_SHOWN = 20
_BAR_WIDTH = 24
_TTY_EVERY = 0.1  # seconds between redraws on a terminal
_LINE_EVERY = 10.0  # seconds between plain progress lines (journal)
_SHOW_FAILURES = 20


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    # The one-line summary `spottypotty --help` shows is in hub.cli.main: it lists this
    # group without importing this module.
    parser = subparsers.add_parser(
        "sync",
        parents=[common],
        description=(
            "Upload sessions (and motion events, with [cloud] events_table) created or "
            "changed since their last upload. Safe to run beside the daemon and to "
            "interrupt: the next run resumes."
        ),
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would be uploaded; send nothing"
    )
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    from hub.store import close_database, open_database  # noqa: PLC0415
    from hub.sync.outbox import Outbox  # noqa: PLC0415

    config = load_args_config(args)
    if not config.cloud.enabled and not args.dry_run:
        print(
            f"spottypotty sync: cloud sync is off ([cloud] enabled = false in {config.source}); "
            "set enabled = true and the table name there, or use --dry-run to see what would go",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    db = open_database(config.hub.database)
    try:
        outbox = Outbox(db)
        if args.dry_run:
            print(dry_run_report(outbox, config))
            return 0
        return _upload(outbox, config)
    finally:
        close_database(db)


def _upload(outbox: Outbox, config: HubConfig) -> int:
    from hub.sync.uploader import Uploader, sync  # noqa: PLC0415

    bar = ProgressBar(sys.stderr)
    summary = sync(outbox, Uploader(config.cloud), progress=bar.update)
    bar.finish()
    report = summary_report(summary, config)
    print(report)
    outbox.record_run(at=iso(time.time()), result=report.splitlines()[0])
    return 0 if summary.ok else EXIT_FAILURE


# -- output ----------------------------------------------------------------------------------


class ProgressBar:
    """`sessions [######......] 1,250/2,000 rows · 50 batches · 410 rows/s · ETA 0:02`."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._last_draw: float | None = None
        self._drawn = False

    def update(self, progress: Progress) -> None:
        now = self._clock()
        last = progress.done >= progress.total
        every = _TTY_EVERY if self.tty else _LINE_EVERY
        if not last and self._last_draw is not None and now - self._last_draw < every:
            return
        self._last_draw = now
        line = render_progress(progress)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False


def render_progress(progress: Progress) -> str:
    total = max(progress.total, 1)
    share = min(progress.done / total, 1.0)
    filled = round(share * _BAR_WIDTH)
    rate = progress.done / progress.elapsed if progress.elapsed > 0 else 0.0
    left = max(progress.total - progress.done, 0)
    eta = _clock_time(left / rate) if rate > 0 else "?"
    return (
        f"{progress.kind} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
        f"{progress.done:,}/{progress.total:,} rows · {progress.batches:,} batches · "
        f"{rate:,.0f} rows/s · ETA {eta}"
    )


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def summary_report(summary: SyncSummary, config: HubConfig) -> str:
    tables = config.cloud.table + (
        f" + {config.cloud.events_table}" if config.cloud.events_table else ""
    )
    if sum(summary.due.values()) == 0:
        return f"sync: nothing to upload ({tables} is up to date)" + _held_back(summary.held_back)
    lines = [
        f"sync: uploaded {summary.uploaded['sessions']:,} of {summary.due['sessions']:,} "
        f"session(s)"
        + (
            f" and {summary.uploaded['events']:,} of {summary.due['events']:,} motion event(s)"
            if config.cloud.events_table
            else ""
        )
        + f" to {tables} in {summary.batches:,} batch(es), {summary.seconds:.1f} s; "
        f"{summary.retries:,} request(s) retried",
    ]
    if summary.failed:
        lines.append(f"failed: {len(summary.failed):,} item(s), left for the next run:")
        shown = summary.failed[:_SHOW_FAILURES]
        lines.append(table(["key", "error", "reason"], [(f.key, f.code, f.reason) for f in shown]))
        if len(summary.failed) > len(shown):
            lines.append(f"… and {len(summary.failed) - len(shown):,} more")
    if summary.stopped is not None:
        lines.append(f"stopped early: {summary.stopped}")
    if not summary.ok:
        lines.append(f"{summary.left:,} row(s) left for the next run")
    return "\n".join(lines) + _held_back(summary.held_back)


def _held_back(sessions: int) -> str:
    if not sessions:
        return ""
    return (
        f"\nheld back: {sessions:,} session(s) recorded before the system clock was "
        "synchronised (uploaded once their times are corrected; see README, Time on a Pi)"
    )


def dry_run_report(outbox: Outbox, config: HubConfig) -> str:
    """What a run would send now: counts, the first rows, and rows that cannot be mapped."""
    from hub.sync.mapping import UnmappableRowError, session_item  # noqa: PLC0415

    sessions = outbox.count_due_sessions()
    events = outbox.count_due_events() if config.cloud.events_table else 0
    hub_id = "hub-dry-run"  # the real id is made on the first real run
    shown: list[tuple[object, ...]] = []
    unmappable: list[tuple[str, str]] = []
    for chunk in outbox.due_sessions():
        for due in chunk:
            try:
                session_item(due.row, hub_id)
            except UnmappableRowError as exc:
                unmappable.append((due.session_id, str(exc)))
            if len(shown) < DRY_RUN_SHOWN:
                row = due.row
                shown.append(
                    (due.session_id, row["sensorId"], row["status"], row["startTime"], due.version)
                )
    state = "" if config.cloud.enabled else " (cloud sync is off: [cloud] enabled = false)"
    batches = -(-sessions // 25) + -(-events // 25)
    lines = [
        f"dry run{state}: would upload {sessions:,} session(s)"
        + (f" and {events:,} motion event(s)" if config.cloud.events_table else "")
        + f" to {config.cloud.table} in about {batches:,} batch(es); nothing was sent"
    ]
    if shown:
        lines.append(table(["sessionId", "sensorId", "status", "startTime", "version"], shown))
        if sessions > len(shown):
            lines.append(f"… and {sessions - len(shown):,} more")
    if unmappable:
        lines.append(f"{len(unmappable):,} row(s) cannot be uploaded:")
        lines.extend(f"  {key}: {reason}" for key, reason in unmappable[:_SHOW_FAILURES])
    return "\n".join(lines) + _held_back(outbox.count_unconfirmed())
