"""Uploading the outbox to DynamoDB: the only module that imports boto3 (lazily).

`Uploader.write()` sends one BatchWriteItem (≤ 25 items, no duplicate keys) and sees it
through: `UnprocessedItems`, throttling and network errors are retried with capped
exponential backoff and full jitter (botocore's own retries are off, so the backoff is
ours and tests inject sleep and randomness). A permanent error on the batch splits it
into single PutItem calls, so the bad item is reported with its reason and the others
still go; an error about the request itself (missing table, refused credentials) stops
the run, since every further call would fail the same way.

`sync()` drives a run: stream due rows from the outbox, map them, upload batch by batch,
and mark each batch synced right after DynamoDB accepted it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hub.errors import HubError, TransientError
from hub.sync.mapping import (
    EVENT_KEY,
    SESSION_KEY,
    Item,
    UnmappableRowError,
    event_item,
    session_item,
)
from hub.sync.outbox import Outbox

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef

    from hub.config import CloudSection

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_BATCH = 25  # BatchWriteItem's limit
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0

# Worth another try after a pause.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
    }
)
# About the request, not an item: every call would fail alike, so the run stops.
REQUEST_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnknownOperationException",
    }
)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full jitter: a pause drawn from [0, min(cap, base * 2**attempt)] seconds."""

    base: float = 0.05
    cap: float = 10.0
    tries: int = 8  # calls per request before giving up on a transient error

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2.0**attempt))


@dataclass(frozen=True, slots=True)
class Failure:
    """An item DynamoDB refused for good: left due for the next run."""

    key: str
    code: str
    reason: str


@dataclass(slots=True)
class BatchOutcome:
    """What became of one batch: accepted keys, refused items, and whether the run must stop."""

    accepted: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    retries: int = 0
    stopped: str | None = None  # why items were left unsent (neither accepted nor failed)


class SyncStoppedError(TransientError):
    """The cloud could not be reached or refused the request itself; the rest waits."""


class _RefusedError(HubError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if message else code)


class Uploader:
    """BatchWriteItem with our own retries, on a boto3 client made on first use."""

    def __init__(
        self,
        cloud: CloudSection,
        *,
        client: DynamoDBClient | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.cloud = cloud
        self._client = client
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        # botocore (boto3's core) is imported here, not at the top: daemon start-up stays fast.
        import botocore.exceptions as boto_errors  # noqa: PLC0415

        self._client_error = boto_errors.ClientError
        self._network_errors: tuple[type[Exception], ...] = (
            boto_errors.ConnectionError,
            boto_errors.HTTPClientError,
        )
        self._botocore_error = boto_errors.BotoCoreError

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = make_client(self.cloud)
        return self._client

    def check_table(self, table: str) -> None:
        """DescribeTable once, so a missing table or bad credentials stop the run up front."""
        try:
            self._call(lambda: self.client.describe_table(TableName=table), BatchOutcome())
        except _RefusedError as exc:
            raise SyncStoppedError(f"table {table}: {exc}") from exc

    def write(self, table: str, key: str, items: Sequence[Item]) -> BatchOutcome:
        """Put `items` (≤ 25, distinct `key` values) into `table`; never raises for the cloud."""
        pending = {_key(item, key): item for item in items}
        if len(pending) != len(items) or len(items) > MAX_BATCH:
            raise ValueError(f"a batch takes at most {MAX_BATCH} items with distinct keys")
        outcome = BatchOutcome()
        stalls = 0
        while pending:
            requests: list[WriteRequestTypeDef] = [
                {"PutRequest": {"Item": item}} for item in pending.values()
            ]
            try:
                response = self._call(
                    partial(self.client.batch_write_item, RequestItems={table: requests}),
                    outcome,
                )
            except SyncStoppedError as exc:
                outcome.stopped = str(exc)
                return outcome
            except _RefusedError as exc:
                if exc.code in REQUEST_CODES:
                    outcome.stopped = f"table {table}: {exc}"
                    return outcome
                _LOGGER.info(
                    "batch refused (%s): trying its %d items one by one", exc, len(pending)
                )
                self._one_by_one(table, pending, outcome)
                return outcome
            unprocessed = response.get("UnprocessedItems", {}).get(table, [])
            left = {
                _key(request["PutRequest"]["Item"], key)
                for request in unprocessed
                if "PutRequest" in request
            }
            done = [k for k in pending if k not in left]
            outcome.accepted.extend(done)
            pending = {k: item for k, item in pending.items() if k in left}
            if not pending:
                break
            stalls = 0 if done else stalls + 1
            if stalls >= self.backoff.tries:
                outcome.stopped = (
                    f"table {table}: {len(pending)} item(s) still unprocessed (throttled) "
                    f"after {self.backoff.tries} tries without progress"
                )
                return outcome
            outcome.retries += 1
            self._sleep(self.backoff.delay(stalls, self._rng))
        return outcome

    def _one_by_one(self, table: str, pending: Mapping[str, Item], outcome: BatchOutcome) -> None:
        for key, item in pending.items():
            try:
                self._call(partial(self.client.put_item, TableName=table, Item=item), outcome)
            except SyncStoppedError as exc:
                outcome.stopped = str(exc)
                return
            except _RefusedError as exc:
                if exc.code in REQUEST_CODES:
                    outcome.stopped = f"table {table}: {exc}"
                    return
                _LOGGER.warning("%s %s refused: %s", table, key, exc)
                outcome.failed.append(Failure(key, exc.code, str(exc)))
            else:
                outcome.accepted.append(key)

    def _call(self, request: Callable[[], _T], outcome: BatchOutcome) -> _T:
        """`request()`, retried on throttling and network errors; _RefusedError otherwise."""
        attempt = 0
        while True:
            try:
                return request()
            except self._client_error as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", "Unknown"))
                message = str(error.get("Message", ""))
                if code not in RETRYABLE_CODES:
                    raise _RefusedError(code, message) from exc
                reason = f"{code}: {message}"
            except self._network_errors as exc:
                reason = f"network error: {exc}"
            except self._botocore_error as exc:  # no credentials, bad parameters, …
                raise _RefusedError(type(exc).__name__, str(exc)) from exc
            attempt += 1
            if attempt >= self.backoff.tries:
                raise SyncStoppedError(f"gave up after {attempt} tries: {reason}")
            outcome.retries += 1
            delay = self.backoff.delay(attempt, self._rng)
            _LOGGER.info("retrying in %.2f s after %s", delay, reason)
            self._sleep(delay)


def make_client(cloud: CloudSection) -> DynamoDBClient:
    """A DynamoDB client on the standard credential chain, with timeouts and no retries."""
    import boto3  # noqa: PLC0415 - boto3 takes ~0.3 s to import: only when syncing
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        # One attempt per call: Uploader retries with its own backoff and jitter.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return boto3.client(
        "dynamodb",
        region_name=cloud.region,
        endpoint_url=cloud.endpoint_url or None,
        config=config,
    )


def _key(item: Mapping[str, Mapping[str, Any]], key: str) -> str:
    return str(item[key]["S"])


# -- a whole run ---------------------------------------------------------------------------

TableKind = Literal["sessions", "events"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run is, for a progress bar."""

    kind: TableKind
    done: int  # rows handled (uploaded or failed)
    total: int  # rows due when the run started
    batches: int
    elapsed: float  # seconds


@dataclass(slots=True)
class SyncSummary:
    uploaded: dict[str, int] = field(default_factory=lambda: {"sessions": 0, "events": 0})
    due: dict[str, int] = field(default_factory=lambda: {"sessions": 0, "events": 0})
    batches: int = 0
    retries: int = 0
    failed: list[Failure] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0
    dry_run: bool = False
    # Sessions not uploaded because their times wait for the system clock (hub/clock.py).
    held_back: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None

    @property
    def left(self) -> int:
        """Rows still due after this run."""
        return sum(self.due.values()) - sum(self.uploaded.values())


def _chunks(rows: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def sync(
    outbox: Outbox,
    uploader: Uploader,
    *,
    progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SyncSummary:
    """Upload every due session (and motion event, when `cloud.events_table` is set).

    Never raises for cloud trouble: it ends up in the summary (`failed`, `stopped`) and
    the rows it concerns stay due.
    """
    started = clock()
    summary = SyncSummary()
    cloud = uploader.cloud
    tables: list[tuple[TableKind, str]] = [("sessions", cloud.table)]
    summary.due["sessions"] = outbox.count_due_sessions()
    summary.held_back = outbox.count_unconfirmed()
    if cloud.events_table:
        tables.append(("events", cloud.events_table))
        summary.due["events"] = outbox.count_due_events()
    if sum(summary.due.values()):
        run = _Run(outbox, uploader, outbox.hub_id(), summary, progress, clock)
        try:
            for kind, table in tables:
                if summary.due[kind]:
                    uploader.check_table(table)
                    run.upload(kind, table)
                if summary.stopped is not None:
                    break
        except SyncStoppedError as exc:
            summary.stopped = str(exc)
    summary.seconds = clock() - started
    return summary


@dataclass(frozen=True, slots=True)
class _Run:
    outbox: Outbox
    uploader: Uploader
    hub_id: str
    summary: SyncSummary
    progress: Callable[[Progress], None] | None
    clock: Callable[[], float]

    def upload(self, kind: TableKind, table: str) -> None:
        started = self.clock()
        summary = self.summary
        key = SESSION_KEY if kind == "sessions" else EVENT_KEY
        done = 0
        for due, versions in self._prepared(kind):
            done += len(versions) - len(due)  # unmappable rows are handled (failed)
            for batch in _chunks(due, MAX_BATCH):
                outcome = self.uploader.write(table, key, [item for _, item in batch])
                # Committed now: a run killed after this line does not send them again.
                if kind == "sessions":
                    self.outbox.mark_sessions_synced((k, versions[k]) for k in outcome.accepted)
                else:
                    self.outbox.mark_events_synced(outcome.accepted)
                summary.batches += 1
                summary.retries += outcome.retries
                summary.failed.extend(outcome.failed)
                summary.uploaded[kind] += len(outcome.accepted)
                done += len(outcome.accepted) + len(outcome.failed)
                if self.progress is not None:
                    elapsed = self.clock() - started
                    self.progress(Progress(kind, done, summary.due[kind], summary.batches, elapsed))
                if outcome.stopped is not None:
                    summary.stopped = outcome.stopped
                    return

    def _prepared(self, kind: TableKind) -> Iterator[tuple[list[tuple[str, Item]], dict[str, int]]]:
        """Chunks of (key, item) ready to send, and each key's version (events: 0)."""
        chunks: Iterator[list[tuple[str, int, dict[str, Any]]]] = (
            (
                [(d.session_id, d.version, d.row) for d in chunk]
                for chunk in self.outbox.due_sessions()
            )
            if kind == "sessions"
            else ([(d.event_id, 0, d.row) for d in chunk] for chunk in self.outbox.due_events())
        )
        make = session_item if kind == "sessions" else event_item
        for chunk in chunks:
            due: list[tuple[str, Item]] = []
            versions: dict[str, int] = {}
            for key, version, row in chunk:
                versions[key] = version
                try:
                    due.append((key, make(row, self.hub_id)))
                except UnmappableRowError as exc:
                    self.summary.failed.append(Failure(key, "UnmappableRow", str(exc)))
            yield due, versions
